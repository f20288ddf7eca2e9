"""``mtasts resolver``: the MTA-STS policy daemon for Postfix (``serve``) and its answers (``query``).

Mounted by :mod:`mtasts.cli.main` as ``mtasts resolver``; runnable alone for tests
(``python -c "from mtasts.cli.resolver import app; app()" serve ...``).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import print_json
from mtasts.cli.text import plural
from mtasts.net.settings import DEFAULT_TIMEOUT, NetworkSettings, parse_nameserver

if TYPE_CHECKING:
    from mtasts.resolver.service import Lookup, PolicyResolver, ResolverSettings
    from mtasts.resolver.store import PolicyStore

__all__ = ["app", "default_db_path"]

app = typer.Typer(
    help="The sending-side MTA-STS policy daemon for Postfix (smtp_tls_policy_maps = socketmap:...).",
    no_args_is_help=True,
)

_NETWORK = "Network"
_TESTING = "For testing (the lab)"
DEFAULT_LISTEN = "inet:127.0.0.1:8461"

Nameserver = Annotated[
    str | None,
    typer.Option(
        "--nameserver",
        help="Resolve through this server, IP[:PORT], instead of the system resolver.",
        rich_help_panel=_NETWORK,
    ),
]
CaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", help="Trust the CAs in this PEM file instead of the system store.", rich_help_panel=_NETWORK
    ),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="Seconds allowed for each lookup and fetch.", rich_help_panel=_NETWORK),
]
RefusePrivate = Annotated[
    bool,
    typer.Option(
        "--refuse-private",
        help="Never fetch a policy from an address that is not globally reachable.",
        rich_help_panel=_NETWORK,
    ),
]
HttpsPort = Annotated[
    int,
    typer.Option(
        "--https-port", min=1, max=65535, help="Fetch policies on this port (RFC 8461: 443).", rich_help_panel=_TESTING
    ),
]
StrictTesting = Annotated[
    bool,
    typer.Option("--strict-testing", help="Enforce 'testing' policies too (RFC 8461 says not to)."),
]
FailOpenTemp = Annotated[
    bool,
    typer.Option(
        "--fail-open-temp",
        help="Answer TEMP (the mail waits) instead of NOTFOUND when nothing is cached and DNS or HTTPS fail.",
    ),
]


def default_db_path(environ: dict[str, str] | None = None) -> Path:
    """``resolver-cache.sqlite3`` in the user data directory (``$XDG_DATA_HOME/mtasts`` on Linux)."""
    from platformdirs import user_data_path

    environ = dict(os.environ) if environ is None else environ
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg) / "mtasts" if xdg else user_data_path("mtasts", appauthor=False)
    return base / "resolver-cache.sqlite3"


def _network(
    nameserver: str | None, ca_file: Path | None, timeout: float, https_port: int, refuse_private: bool
) -> NetworkSettings:
    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(f"--nameserver: {exc}", ExitCode.USAGE)
    if ca_file is not None and not ca_file.is_file():
        fail(f"--ca-file: {ca_file} is not a file", ExitCode.USAGE)
    return NetworkSettings(
        nameserver=server, ca_file=ca_file, timeout=timeout, https_port=https_port, allow_private=not refuse_private
    )


def _settings(strict_testing: bool, fail_open_temp: bool, timeout: float) -> ResolverSettings:
    from mtasts.resolver.answers import AnswerSettings
    from mtasts.resolver.service import ResolverSettings

    return ResolverSettings(
        answers=AnswerSettings(strict_testing=strict_testing),
        fail_open_temp=fail_open_temp,
        answer_timeout=max(1.0, timeout * 1.5),
    )


@app.command()
def serve(
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen",
            help=f"Listen on inet:HOST:PORT or unix:PATH (repeatable) [default: {DEFAULT_LISTEN}].",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="The SQLite cache file [default: resolver-cache.sqlite3 in the user data directory].",
            show_default=False,
        ),
    ] = None,
    memory_only: Annotated[
        bool, typer.Option("--memory-only", help="Keep the cache in memory only (lost at exit).")
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis",
            help="Share the cache through Redis at this URL (redis://HOST:PORT/DB) instead of the SQLite file.",
            show_default=False,
        ),
    ] = None,
    redis_prefix: Annotated[
        str, typer.Option("--redis-prefix", help="The prefix of the resolver's Redis keys.")
    ] = "mtasts:resolver:",
    unix_mode: Annotated[str, typer.Option("--unix-mode", help="Mode of UNIX sockets, in octal.")] = "660",
    unix_owner: Annotated[str | None, typer.Option("--unix-owner", help="Owner of UNIX sockets.")] = None,
    unix_group: Annotated[
        str | None, typer.Option("--unix-group", help="Group of UNIX sockets (e.g. postfix).")
    ] = None,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="Connections served at once.")
    ] = 1000,
    strict_testing: StrictTesting = False,
    fail_open_temp: FailOpenTemp = False,
    nameserver: Nameserver = None,
    ca_file: CaFile = None,
    timeout: Timeout = 5.0,
    https_port: HttpsPort = 443,
    refuse_private: RefusePrivate = False,
) -> None:
    """Answer Postfix's TLS policy lookups from the MTA-STS cache, kept fresh in the background.

    In main.cf: smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix (Postfix 3.4 to 3.9;
    the map name 'postfix-tlsrpt' for 3.10 and later, 'postfix-legacy' before 3.4). Stop: SIGTERM
    or Ctrl-C. See docs/resolver.md."""
    import asyncio
    import dataclasses
    import logging
    import signal

    from mtasts.cli._run import run_async
    from mtasts.net.server import ServerLimits
    from mtasts.resolver.redis_store import RedisStore
    from mtasts.resolver.server import SocketmapServer, parse_listen
    from mtasts.resolver.service import PolicyResolver
    from mtasts.resolver.sources import NetworkSources
    from mtasts.resolver.store import MemoryStore, SqliteStore

    try:
        mode = int(unix_mode, 8)
    except ValueError:
        fail(f"--unix-mode: {unix_mode!r} is not an octal mode such as 660", ExitCode.USAGE)
    specs = []
    for text in listen or [DEFAULT_LISTEN]:
        try:
            spec = parse_listen(text)
        except ValueError as exc:
            fail(f"--listen: {exc}", ExitCode.USAGE)
        if spec.path is not None:
            spec = dataclasses.replace(spec, mode=mode, owner=unix_owner, group=unix_group)
        specs.append(spec)
    network = _network(nameserver, ca_file, timeout, https_port, refuse_private)
    if redis_url is not None and (memory_only or db is not None):
        fail("--redis: choose one of --redis, --db and --memory-only", ExitCode.USAGE)
    if redis_url is not None and not redis_prefix:
        fail("--redis-prefix: must not be empty", ExitCode.USAGE)
    path = db or default_db_path()
    store: PolicyStore
    if redis_url is not None:
        store = RedisStore(redis_url, prefix=redis_prefix)
        where = f"Redis {redis_url.rpartition('@')[2]}, prefix {redis_prefix}"
    elif memory_only:
        store, where = MemoryStore(), "memory only"
    else:
        store, where = SqliteStore(path), str(path)
    resolver = PolicyResolver(NetworkSources(network), store, _settings(strict_testing, fail_open_temp, timeout))
    limits = ServerLimits(max_connections=max_connections, max_connections_per_client=max_connections)
    server = SocketmapServer(resolver, specs, limits=limits)
    logging.basicConfig(level=logging.INFO, format="mtasts resolver: %(levelname)s: %(message)s", stream=sys.stderr)

    async def run() -> None:
        await resolver.start()
        try:
            await server.start()
        except BaseException:
            await resolver.stop()
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        cache = where if memory_only else f"{where}, {plural(len(resolver), 'cached domain')}"
        sys.stderr.write(
            f"mtasts: resolver listening on {', '.join(server.addresses)} (cache: {cache}); pid {os.getpid()}\n"
        )
        sys.stderr.flush()
        try:
            await stop.wait()
        finally:
            await server.stop()
            await resolver.stop()

    try:
        run_async(run())
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")


@app.command()
def query(
    domain: Annotated[str, typer.Argument(help="The mail domain (as Postfix would ask for it).", show_default=False)],
    profile: Annotated[
        str, typer.Option("--profile", help="The answer profile: postfix, postfix-tlsrpt or postfix-legacy.")
    ] = "postfix",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    strict_testing: StrictTesting = False,
    fail_open_temp: FailOpenTemp = False,
    nameserver: Nameserver = None,
    ca_file: CaFile = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    https_port: HttpsPort = 443,
    refuse_private: RefusePrivate = False,
) -> None:
    """The answer Postfix would get for DOMAIN, and why (resolved directly, as a fresh daemon would).

    Exit status 0 with an answer (OK or NOTFOUND), 1 when the answer is fail-open because DNS or HTTPS failed."""
    from mtasts.cli._run import run_async
    from mtasts.resolver.answers import Profile
    from mtasts.resolver.keys import classify_key
    from mtasts.resolver.service import PolicyResolver, Source
    from mtasts.resolver.sources import NetworkSources
    from mtasts.resolver.store import MemoryStore

    try:
        chosen = Profile(profile)
    except ValueError:
        fail(f"--profile: {profile!r} is not one of {', '.join(p.value for p in Profile)}", ExitCode.USAGE)
    network = _network(nameserver, ca_file, timeout, https_port, refuse_private)
    settings = _settings(strict_testing, fail_open_temp, timeout)
    resolver = PolicyResolver(NetworkSources(network), MemoryStore(), settings)

    async def run() -> Lookup | None:
        name = classify_key(domain).domain
        if name is None:
            return None
        try:
            return await resolver.lookup(name, chosen, key=domain)
        finally:
            await resolver.stop()

    found = run_async(run())
    if found is None:
        document: dict[str, Any] = {
            "domain": domain,
            "profile": chosen.value,
            "answer": "NOTFOUND",
            "source": Source.NOT_A_DOMAIN.value,
            "reason": "not a mail domain (parent probe, address, [host] or host:port): answered at once",
            "policy": None,
            "id": None,
            "fetched": None,
            "expires": None,
            "last_error": None,
        }
    else:
        document = _document(found, resolver)
    if json_output:
        print_json(document)
    else:
        _print(document)
    if document["source"] == Source.FAIL_OPEN.value:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _document(found: Lookup, resolver: PolicyResolver) -> dict[str, Any]:
    entry = found.entry
    policy = None if entry is None or entry.policy is None else entry.policy
    reply = found.reply.decode()
    payload = reply[reply.index(":") + 1 : -1].rstrip()
    return {
        "domain": found.domain,
        "profile": found.profile.value,
        "answer": payload,
        "source": found.source.value,
        "reason": None if found.answer.reason is None else found.answer.reason.value,
        "policy": None
        if policy is None
        else {
            "mode": policy.mode.value,
            "max_age": policy.max_age,
            "mx": list(policy.mx),
            "id": entry.policy_id if entry else None,
        },
        "id": None if entry is None else entry.policy_id,
        "fetched": _time(entry.fetched_at) if entry is not None and entry.policy is not None else None,
        "expires": _time(entry.expires_at) if entry is not None and entry.policy is not None else None,
        "mx_hosts": [] if entry is None else list(entry.mx_hosts),
        "last_error": (entry.last_error or None) if entry is not None else None,
    }


def _time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _print(document: dict[str, Any]) -> None:
    lines = [
        f"{document['domain']}: {document['answer']}",
        f"  profile     {document['profile']}",
        f"  source      {document['source']}",
    ]
    if document["reason"]:
        lines.append(f"  why         {document['reason']}")
    policy = document["policy"]
    if policy is not None:
        lines.append(
            f"  policy      mode {policy['mode']}, max_age {policy['max_age']}, mx {', '.join(policy['mx']) or '-'}"
        )
        lines.append(f"  id          {policy['id']}")
        lines.append(f"  expires     {document['expires']}")
    if document.get("last_error"):
        lines.append(f"  last error  {document['last_error']}")
    sys.stdout.write("\n".join(lines) + "\n")

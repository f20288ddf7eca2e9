"""``mtasts resolver``: the MTA-STS policy daemon for Postfix (``serve``) and its answers (``query``).

Mounted by :mod:`mtasts.cli.main` as ``mtasts resolver``; runnable alone for tests
(``python -c "from mtasts.cli.resolver import app; app()" serve ...``).
"""

from __future__ import annotations

import contextlib
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
OverridesFile = Annotated[
    Path | None,
    typer.Option(
        "--overrides",
        help="Per-domain overrides (force-none, force-enforce, pin) from this TOML file; serve re-reads it on SIGHUP.",
        show_default=False,
    ),
]
Db = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="The SQLite cache file [default: resolver-cache.sqlite3 in the user data directory].",
        show_default=False,
    ),
]
RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis",
        help="Share the cache through Redis at this URL (redis://HOST:PORT/DB) instead of the SQLite file.",
        show_default=False,
    ),
]
RedisPrefix = Annotated[str, typer.Option("--redis-prefix", help="The prefix of the resolver's Redis keys.")]
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
    admin: Annotated[
        str | None,
        typer.Option(
            "--admin",
            help="Serve Prometheus metrics (GET /metrics) and GET /healthz over plain HTTP on HOST:PORT "
            "(a bare PORT: 127.0.0.1) [default: off].",
            show_default=False,
        ),
    ] = None,
    strict_testing: StrictTesting = False,
    fail_open_temp: FailOpenTemp = False,
    overrides: OverridesFile = None,
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
    from mtasts.resolver.metrics import AdminServer, parse_admin
    from mtasts.resolver.server import SocketmapServer, parse_listen
    from mtasts.resolver.service import PolicyResolver
    from mtasts.resolver.sources import NetworkSources
    from mtasts.resolver.store import MemoryStore

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
    admin_address = None
    if admin is not None:
        try:
            admin_address = parse_admin(admin)
        except ValueError as exc:
            fail(f"--admin: {exc}", ExitCode.USAGE)
    network = _network(nameserver, ca_file, timeout, https_port, refuse_private)
    if redis_url is not None and (memory_only or db is not None):
        fail("--redis: choose one of --redis, --db and --memory-only", ExitCode.USAGE)
    if redis_url is not None and not redis_prefix:
        fail("--redis-prefix: must not be empty", ExitCode.USAGE)
    store: PolicyStore
    if memory_only:
        store, where = MemoryStore(), "memory only"
    else:
        store, where = _store(db, redis_url, redis_prefix)
    resolver = PolicyResolver(NetworkSources(network), store, _settings(strict_testing, fail_open_temp, timeout))
    if overrides is not None:
        resolver.overrides = _load_overrides(overrides)
    limits = ServerLimits(max_connections=max_connections, max_connections_per_client=max_connections)
    server = SocketmapServer(resolver, specs, limits=limits)
    admin_server = None if admin_address is None else AdminServer(resolver, *admin_address)
    logging.basicConfig(level=logging.INFO, format="mtasts resolver: %(levelname)s: %(message)s", stream=sys.stderr)

    async def run() -> None:
        await resolver.start()
        try:
            await server.start()
            if admin_server is not None:
                await admin_server.start()
        except BaseException:
            await server.stop()
            await resolver.stop()
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if overrides is not None:
            loop.add_signal_handler(signal.SIGHUP, _reload_overrides, resolver, overrides)
        cache = where if memory_only else f"{where}, {plural(len(resolver), 'cached domain')}"
        sys.stderr.write(
            f"mtasts: resolver listening on {', '.join(server.addresses)} (cache: {cache}); pid {os.getpid()}\n"
        )
        if admin_server is not None:
            sys.stderr.write(f"mtasts: resolver metrics on http://{admin_server.address}/metrics\n")
        sys.stderr.flush()
        try:
            await stop.wait()
        finally:
            if admin_server is not None:
                await admin_server.stop()
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
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Ask the daemon running on inet:HOST:PORT or unix:PATH (a plain socketmap lookup, as Postfix makes).",
            show_default=False,
        ),
    ] = None,
    overrides: OverridesFile = None,
    strict_testing: StrictTesting = False,
    fail_open_temp: FailOpenTemp = False,
    nameserver: Nameserver = None,
    ca_file: CaFile = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    https_port: HttpsPort = 443,
    refuse_private: RefusePrivate = False,
) -> None:
    """The answer Postfix would get for DOMAIN, and why (resolved directly, as a fresh daemon would;
    with --listen, the running daemon's answer).

    Exit status 0 with an answer (OK or NOTFOUND), 1 when the answer is fail-open because DNS or HTTPS failed
    (with --listen: when the daemon answers TEMP, TIMEOUT or PERM, or cannot be reached: 3)."""
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
    if listen is not None:
        _query_daemon(listen, domain, chosen.value, json_output, timeout)
        return
    network = _network(nameserver, ca_file, timeout, https_port, refuse_private)
    settings = _settings(strict_testing, fail_open_temp, timeout)
    resolver = PolicyResolver(NetworkSources(network), MemoryStore(), settings)
    if overrides is not None:
        resolver.overrides = _load_overrides(overrides)

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
        "override": None if found.override is None else found.override.to_dict(),
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
    override = document.get("override")
    if override:
        lines.append(f"  override    {override['action']} until {override['expires']}: {override['reason']}")
    sys.stdout.write("\n".join(lines) + "\n")


def _load_overrides(path: Path) -> dict[str, Any]:
    from mtasts.resolver.overrides import OverrideError, parse_overrides

    try:
        return dict(parse_overrides(path.read_text(encoding="utf-8")))
    except OSError as exc:
        fail(f"--overrides: cannot read {path}: {exc.strerror or exc}", ExitCode.USAGE)
    except (OverrideError, UnicodeDecodeError) as exc:
        fail(f"--overrides: {path}: {exc}", ExitCode.USAGE)


def _reload_overrides(resolver: PolicyResolver, path: Path) -> None:
    """SIGHUP: re-read the overrides file; a broken file keeps the overrides in force (logged)."""
    import logging

    from mtasts.resolver.overrides import OverrideError, parse_overrides

    log = logging.getLogger("mtasts.resolver")
    try:
        resolver.overrides = parse_overrides(path.read_text(encoding="utf-8"))
    except (OSError, OverrideError, UnicodeDecodeError) as exc:
        log.error("overrides %s not reloaded, the previous ones stay in force: %s", path, exc)
        return
    log.info("overrides reloaded from %s: %s", path, plural(len(resolver.overrides), "domain"))


def _store(db: Path | None, redis_url: str | None, redis_prefix: str) -> tuple[PolicyStore, str]:
    """The persistent store the options name, and how to show it."""
    from mtasts.resolver.redis_store import RedisStore
    from mtasts.resolver.store import SqliteStore

    if redis_url is not None and db is not None:
        fail("--redis: choose one of --redis and --db", ExitCode.USAGE)
    if redis_url is not None:
        if not redis_prefix:
            fail("--redis-prefix: must not be empty", ExitCode.USAGE)
        where = f"Redis {redis_url.rpartition('@')[2]}, prefix {redis_prefix}"
        return RedisStore(redis_url, prefix=redis_prefix), where
    path = db or default_db_path()
    return SqliteStore(path), str(path)


def _query_daemon(listen: str, domain: str, profile: str, json_output: bool, timeout: float) -> None:
    """Ask a running daemon, as Postfix does: one socketmap request, one reply."""
    import asyncio

    from mtasts.cli._run import run_async
    from mtasts.resolver.server import parse_listen

    try:
        spec = parse_listen(listen)
    except ValueError as exc:
        fail(f"--listen: {exc}", ExitCode.USAGE)
    payload = f"{profile} {domain}".encode()

    async def ask() -> str:
        if spec.path is not None:
            reader, writer = await asyncio.open_unix_connection(str(spec.path))
        else:
            reader, writer = await asyncio.open_connection(spec.host, spec.port)
        try:
            writer.write(b"%d:%s," % (len(payload), payload))
            await writer.drain()
            length = await reader.readuntil(b":")
            data = await reader.readexactly(int(length[:-1]))
            if await reader.readexactly(1) != b",":
                raise ValueError("the reply is not a netstring")
            return data.decode("utf-8", "replace")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        reply = run_async(asyncio.wait_for(ask(), timeout))
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        fail(f"cannot ask the daemon on {listen}: {getattr(exc, 'strerror', None) or exc or type(exc).__name__}")
    answer = reply.rstrip()
    status = answer.partition(" ")[0]
    if json_output:
        print_json({"domain": domain, "profile": profile, "answer": answer, "source": "daemon", "policy": None})
    else:
        sys.stdout.write(f"{domain}: {answer}\n  profile     {profile}\n  source      daemon on {listen}\n")
    if status not in ("OK", "NOTFOUND"):
        raise typer.Exit(int(ExitCode.PROBLEMS))


cache_app = typer.Typer(
    help="The persistent cache (--db or --redis): list, show, flush, export for a warm standby.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


def _with_store(db: Path | None, redis_url: str | None, redis_prefix: str, work: Any) -> Any:
    """Run ``work(store)`` on the named store; a store failure is one line, exit 3."""
    from mtasts.cli._run import run_async
    from mtasts.resolver.store import StoreError

    if redis_url is None:
        path = db or default_db_path()
        if not path.is_file():
            fail(f"--db: {path} does not exist (no daemon has used it)")
    store, _ = _store(db, redis_url, redis_prefix)

    async def run() -> Any:
        try:
            return await work(store)
        finally:
            with contextlib.suppress(StoreError):
                await store.close()

    try:
        return run_async(run())
    except StoreError as exc:
        fail(str(exc))


def _entry_row(entry: Any, now: float) -> dict[str, Any]:
    """One cache entry as the JSON of ``cache list``/``show`` (keys are a public contract)."""
    policy = entry.policy
    if entry.valid(now):
        state = "policy"
    elif now < entry.negative_until:
        state = "no-policy"
    elif now < entry.fail_open_until:
        state = "failing"
    else:
        state = "expired"
    return {
        "domain": entry.domain,
        "state": state,
        "mode": None if policy is None else policy.mode.value,
        "id": entry.policy_id,
        "mx": [] if policy is None else list(policy.mx),
        "fetched": _time(entry.fetched_at) if policy is not None else None,
        "expires": _time(entry.expires_at) if policy is not None else None,
        "next_txt_check": _time(entry.txt_next_check) if entry.txt_next_check else None,
        "mx_hosts": list(entry.mx_hosts),
        "last_error": entry.last_error or None,
    }


@cache_app.command("list")
def cache_list(
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = "mtasts:resolver:",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Every cached domain: state (policy, no-policy, failing, expired), mode, id, expiry."""
    import time

    async def work(store: PolicyStore) -> list[Any]:
        return sorted(await store.load_all(), key=lambda e: e.domain)

    entries = _with_store(db, redis_url, redis_prefix, work)
    now = time.time()
    rows = [_entry_row(entry, now) for entry in entries]
    if json_output:
        print_json({"domains": rows})
        return
    width = max((len(r["domain"]) for r in rows), default=6)
    lines = [f"{'domain':<{width}}  {'state':<9}  {'mode':<7}  {'id':<20}  expires"]
    for r in rows:
        mode, record_id, expires = r["mode"] or "-", r["id"] or "-", r["expires"] or "-"
        lines.append(f"{r['domain']:<{width}}  {r['state']:<9}  {mode:<7}  {record_id:<20}  {expires}")
    lines.append(plural(len(rows), "cached domain"))
    sys.stdout.write("\n".join(lines) + "\n")


@cache_app.command("show")
def cache_show(
    domain: Annotated[str, typer.Argument(help="The mail domain.", show_default=False)],
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = "mtasts:resolver:",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """One cached domain in full. Exit status 1 when it is not cached."""
    import time

    from mtasts.resolver.keys import classify_key

    name = classify_key(domain).domain
    if name is None:
        fail(f"{domain!r} is not a mail domain", ExitCode.USAGE)

    async def work(store: PolicyStore) -> Any:
        return await store.get(name)

    entry = _with_store(db, redis_url, redis_prefix, work)
    if entry is None:
        fail(f"{name} is not cached", ExitCode.PROBLEMS)
    row = _entry_row(entry, time.time())
    if json_output:
        print_json(row)
        return
    lines = [f"{row['domain']}: {row['state']}"]
    for key, label in (
        ("mode", "mode"),
        ("id", "id"),
        ("mx", "mx"),
        ("fetched", "fetched"),
        ("expires", "expires"),
        ("next_txt_check", "next check"),
        ("mx_hosts", "mx hosts"),
        ("last_error", "last error"),
    ):
        value = row[key]
        if value:
            lines.append(f"  {label:<11} {', '.join(value) if isinstance(value, list) else value}")
    sys.stdout.write("\n".join(lines) + "\n")


@cache_app.command("flush")
def cache_flush(
    domain: Annotated[
        str | None, typer.Argument(help="The mail domain [default: every domain].", show_default=False)
    ] = None,
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = "mtasts:resolver:",
) -> None:
    """Forget DOMAIN (or every domain) in the persistent store.

    A running daemon keeps its in-memory copy until it expires or the daemon restarts; a restarted
    daemon, and every daemon of a fleet on a miss, then fetches afresh."""
    from mtasts.resolver.keys import classify_key

    name = None
    if domain is not None:
        name = classify_key(domain).domain
        if name is None:
            fail(f"{domain!r} is not a mail domain", ExitCode.USAGE)

    async def work(store: PolicyStore) -> int:
        if name is not None:
            if await store.get(name) is None:
                return 0
            await store.delete(name)
            return 1
        entries = await store.load_all()
        for entry in entries:
            await store.delete(entry.domain)
        return len(entries)

    count = _with_store(db, redis_url, redis_prefix, work)
    sys.stdout.write(f"flushed {plural(count, 'cached domain')}\n")


@cache_app.command("export")
def cache_export(
    postfix: Annotated[
        bool,
        typer.Option("--postfix", help="A Postfix hash: map text (domain, TAB, answer), for postmap. Required."),
    ] = False,
    profile: Annotated[
        str, typer.Option("--profile", help="The answer profile: postfix, postfix-tlsrpt or postfix-legacy.")
    ] = "postfix",
    strict_testing: StrictTesting = False,
    db: Db = None,
    redis_url: RedisUrl = None,
    redis_prefix: RedisPrefix = "mtasts:resolver:",
) -> None:
    """The answers the daemon gives now, as a static map for a warm standby (postmap hash:FILE).

    Only domains with a valid cached policy and an answer (enforce; testing with --strict-testing)."""
    import time

    from mtasts.resolver.answers import AnswerSettings, Profile, render_answer

    if not postfix:
        fail("export: choose the format: --postfix", ExitCode.USAGE)
    try:
        chosen = Profile(profile)
    except ValueError:
        fail(f"--profile: {profile!r} is not one of {', '.join(p.value for p in Profile)}", ExitCode.USAGE)

    async def work(store: PolicyStore) -> list[Any]:
        return sorted(await store.load_all(), key=lambda e: e.domain)

    now = time.time()
    settings = AnswerSettings(strict_testing=strict_testing)
    lines = []
    for entry in _with_store(db, redis_url, redis_prefix, work):
        if entry.policy is None or not entry.valid(now):
            continue
        answer = render_answer(
            entry.domain, entry.policy, chosen, mx_hosts=entry.mx_hosts, body=entry.body, settings=settings
        )
        if answer.data is not None:
            lines.append(f"{entry.domain}\t{answer.data}\n")
    sys.stdout.write("".join(lines))

"""``mtasts resolver serve``: the socketmap daemon.

Its settings come from the configuration file (``--config``, default ``resolver.toml`` in the
user config directory, used when it exists), then the command line: an option given replaces
what the file says (:func:`mtasts.resolver.config.apply_command_line`). Under systemd socket
activation (``LISTEN_FDS``/``LISTEN_PID``) the sockets systemd bound are served instead of
binding the configured addresses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.text import plural

if TYPE_CHECKING:
    import socket

    from mtasts.resolver.config import CommandLine, ResolverConfig

from mtasts.cli.resolver._common import (
    DEFAULT_LISTEN,
    CaFile,
    Nameserver,
    OverridesFile,
    read_config,
    reload_overrides,
    store_of,
)

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The configuration file [default: resolver.toml in the user config directory, if it exists].",
        show_default=False,
    ),
]
_SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first socket systemd passes


def serve(
    config_file: ConfigFile = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen",
            help=f"Listen on inet:HOST:PORT or unix:PATH (repeatable; replaces the file's) "
            f"[default: {DEFAULT_LISTEN}].",
            show_default=False,
        ),
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="The cache store: memory, sqlite:PATH, redis://HOST:PORT/DB or postgresql://USER@HOST/DB "
            "[default: the SQLite file in the user data directory].",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="The SQLite cache file (as --store sqlite:FILE).", show_default=False)
    ] = None,
    memory_only: Annotated[
        bool, typer.Option("--memory-only", help="Keep the cache in memory only (lost at exit).")
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis", help="Share the cache through Redis at this URL (as --store redis://...).", show_default=False
        ),
    ] = None,
    redis_prefix: Annotated[
        str | None,
        typer.Option(
            "--redis-prefix",
            help="The prefix of the resolver's Redis keys [default: mtasts:resolver:].",
            show_default=False,
        ),
    ] = None,
    unix_mode: Annotated[
        str | None,
        typer.Option("--unix-mode", help="Mode of UNIX sockets, in octal [default: 660].", show_default=False),
    ] = None,
    unix_owner: Annotated[str | None, typer.Option("--unix-owner", help="Owner of UNIX sockets.")] = None,
    unix_group: Annotated[
        str | None, typer.Option("--unix-group", help="Group of UNIX sockets (e.g. postfix).")
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections", min=1, help="Connections served at once [default: 1000].", show_default=False
        ),
    ] = None,
    admin: Annotated[
        str | None,
        typer.Option(
            "--admin",
            help="Serve Prometheus metrics (GET /metrics) and GET /healthz over plain HTTP on HOST:PORT "
            "(a bare PORT: 127.0.0.1; 'off': none) [default: off].",
            show_default=False,
        ),
    ] = None,
    strict_testing: Annotated[
        bool | None,
        typer.Option(
            "--strict-testing/--no-strict-testing",
            help="Enforce 'testing' policies too, in every zone (RFC 8461 says not to) [default: off].",
            show_default=False,
        ),
    ] = None,
    fail_open_temp: Annotated[
        bool | None,
        typer.Option(
            "--fail-open-temp/--fail-open-notfound",
            help="In every zone, answer TEMP (the mail waits) instead of NOTFOUND when nothing is cached and DNS "
            "or HTTPS fail [default: NOTFOUND].",
            show_default=False,
        ),
    ] = None,
    overrides: OverridesFile = None,
    nameserver: Nameserver = None,
    ca_file: CaFile = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.1, help="Seconds allowed for each lookup and fetch [default: 5].", show_default=False
        ),
    ] = None,
    https_port: Annotated[
        int | None,
        typer.Option(
            "--https-port",
            min=1,
            max=65535,
            help="Fetch policies on this port (RFC 8461: 443) [default: 443].",
            rich_help_panel="For testing (the lab)",
            show_default=False,
        ),
    ] = None,
    refuse_private: Annotated[
        bool | None,
        typer.Option(
            "--refuse-private/--allow-private",
            help="Never fetch a policy from an address that is not globally reachable [default: allow].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Answer Postfix's TLS policy lookups from the MTA-STS cache, kept fresh in the background.

    In main.cf: smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix (Postfix 3.4 to 3.9;
    the map name 'postfix-tlsrpt' for 3.10 and later, 'postfix-legacy' before 3.4, or a zone of the
    configuration file). Stop: SIGTERM or Ctrl-C; SIGHUP re-reads the overrides file. See docs/resolver.md."""
    from mtasts.resolver.config import apply_command_line

    given = command_line(
        listen=listen,
        store_url=store_url,
        db=db,
        memory_only=memory_only,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        unix_mode=unix_mode,
        unix_owner=unix_owner,
        unix_group=unix_group,
        max_connections=max_connections,
        admin=admin,
        strict_testing=strict_testing,
        fail_open_temp=fail_open_temp,
        overrides=overrides,
        nameserver=nameserver,
        ca_file=ca_file,
        timeout=timeout,
        https_port=https_port,
        refuse_private=refuse_private,
    )
    config = apply_command_line(read_config(config_file), given)
    run_daemon(config, inherited_sockets(os.environ, os.getpid()))


def command_line(**options: Any) -> CommandLine:
    """The options as a :class:`CommandLine` (``None``: not given); a bad value is one line, exit 2."""
    from mtasts.net.settings import parse_nameserver
    from mtasts.resolver.config import (
        CommandLine,
        StoreKind,
        StoreSettings,
        parse_admin_address,
        parse_mode,
        parse_store,
    )
    from mtasts.resolver.server import parse_listen

    listen = None
    if options["listen"]:
        specs = []
        for text in options["listen"]:
            try:
                specs.append(parse_listen(text))
            except ValueError as exc:
                fail(f"--listen: {exc}", ExitCode.USAGE)
        listen = tuple(specs)
    mode = None
    if options["unix_mode"] is not None:
        try:
            mode = parse_mode(options["unix_mode"])
        except ValueError:
            fail(f"--unix-mode: {options['unix_mode']!r} is not an octal mode such as 660", ExitCode.USAGE)
    named = [
        name
        for name, value in (
            ("--store", options["store_url"]),
            ("--db", options["db"]),
            ("--memory-only", options["memory_only"]),
            ("--redis", options["redis_url"]),
        )
        if value
    ]
    if len(named) > 1:
        fail(f"{named[-1]}: choose one of --store, --db, --redis and --memory-only", ExitCode.USAGE)
    prefix = options["redis_prefix"]
    if prefix is not None and not prefix:
        fail("--redis-prefix: must not be empty", ExitCode.USAGE)
    store: StoreSettings | None = None
    if options["store_url"]:
        try:
            store = parse_store(options["store_url"])
        except ValueError as exc:
            fail(f"--store: {exc}", ExitCode.USAGE)
    elif options["db"] is not None:
        store = StoreSettings(StoreKind.SQLITE, path=options["db"])
    elif options["memory_only"]:
        store = StoreSettings(StoreKind.MEMORY)
    elif options["redis_url"]:
        store = StoreSettings(StoreKind.REDIS, url=options["redis_url"])
    admin, admin_off = None, False
    if options["admin"] is not None:
        try:
            admin = parse_admin_address(options["admin"])
        except ValueError as exc:
            fail(f"--admin: {exc}", ExitCode.USAGE)
        admin_off = admin is None
    server = None
    if options["nameserver"] is not None:
        try:
            server = parse_nameserver(options["nameserver"])
        except ValueError as exc:
            fail(f"--nameserver: {exc}", ExitCode.USAGE)
    ca = options["ca_file"]
    if ca is not None and not ca.is_file():
        fail(f"--ca-file: {ca} is not a file", ExitCode.USAGE)
    return CommandLine(
        listen=listen,
        unix_mode=mode,
        unix_owner=options["unix_owner"],
        unix_group=options["unix_group"],
        max_connections=options["max_connections"],
        admin=admin,
        admin_off=admin_off,
        overrides=options["overrides"],
        strict_testing=options["strict_testing"],
        fail_open_temp=options["fail_open_temp"],
        nameserver=server,
        ca_file=ca,
        timeout=options["timeout"],
        https_port=options["https_port"],
        refuse_private=options["refuse_private"],
        store=store,
        redis_prefix=prefix,
    )


def inherited_sockets(environ: Mapping[str, str], pid: int) -> list[socket.socket]:
    """The listening sockets systemd passed (socket activation, sd_listen_fds(3)), or none.

    Only when ``LISTEN_PID`` is this process: a child started by the daemon must not take
    them. The variables are left in place (the daemon starts no child that could inherit)."""
    import socket

    if environ.get("LISTEN_PID", "").strip() != str(pid):
        return []
    try:
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    sockets = []
    for fd in range(_SD_LISTEN_FDS_START, _SD_LISTEN_FDS_START + max(0, min(count, 64))):
        os.set_inheritable(fd, False)
        inherited = socket.socket(fileno=fd)
        inherited.setblocking(False)  # systemd passes them blocking; the event loop needs otherwise
        sockets.append(inherited)
    return sockets


def run_daemon(config: ResolverConfig, inherited: list[socket.socket]) -> None:
    """Run the daemon ``config`` describes until SIGTERM or SIGINT."""
    import asyncio
    import logging
    import signal

    from mtasts.cli._run import run_async
    from mtasts.cli.resolver._common import load_overrides
    from mtasts.net.server import ServerLimits
    from mtasts.resolver.answers import AnswerSettings
    from mtasts.resolver.config import StoreKind
    from mtasts.resolver.metrics import AdminServer
    from mtasts.resolver.server import SocketmapServer
    from mtasts.resolver.service import PolicyResolver, ResolverSettings
    from mtasts.resolver.sources import NetworkSources
    from mtasts.resolver.zones import ZonedResolver, builtin_zones

    if not config.listen and not inherited:
        fail("--listen: no address to listen on", ExitCode.USAGE)
    own = config.zones["postfix"]
    settings = ResolverSettings(
        answers=AnswerSettings(strict_testing=own.strict_testing),
        fail_open_temp=own.fail_open_temp,
        answer_timeout=max(1.0, config.network.timeout * 1.5),
    )
    store, where = store_of(config.store)
    resolver: PolicyResolver
    if config.zones == builtin_zones(strict_testing=own.strict_testing, fail_open_temp=own.fail_open_temp):
        resolver = PolicyResolver(NetworkSources(config.network), store, settings)  # the profiles alone
    else:
        resolver = ZonedResolver(NetworkSources(config.network), store, settings, zones=config.zones)
    if config.overrides is not None:
        resolver.overrides = load_overrides(config.overrides)
    limits = ServerLimits(max_connections=config.max_connections, max_connections_per_client=config.max_connections)
    server_options: dict[str, Any] = {"limits": limits}
    if inherited:
        server_options["sockets"] = inherited
    server = SocketmapServer(resolver, [] if inherited else config.listen, **server_options)
    admin_server = None if config.admin is None else AdminServer(resolver, config.admin.host, config.admin.port)
    logging.basicConfig(level=logging.INFO, format="mtasts resolver: %(levelname)s: %(message)s", stream=sys.stderr)
    overrides = config.overrides

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
            loop.add_signal_handler(signal.SIGHUP, reload_overrides, resolver, overrides)
        memory = config.store.kind is StoreKind.MEMORY
        cache = where if memory else f"{where}, {plural(len(resolver), 'cached domain')}"
        zones = ", ".join(sorted(set(config.zones) - {"postfix", "postfix-tlsrpt", "postfix-legacy"}))
        sys.stderr.write(
            f"mtasts: resolver listening on {', '.join(server.addresses)} (cache: {cache}); pid {os.getpid()}\n"
        )
        if zones:
            sys.stderr.write(f"mtasts: resolver zones beyond the built-in profiles: {zones}\n")
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

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

from mtasts.cli.exitcodes import ExitCode, fail, in_language
from mtasts.i18n import current
from mtasts.i18n.words import counted, plural

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from mtasts.net.server import ServerLimits
    from mtasts.resolver.config import CommandLine, ResolverConfig
    from mtasts.resolver.overrides import Override
    from mtasts.resolver.server import SocketmapServer
    from mtasts.resolver.service import ResolverSettings
    from mtasts.resolver.zones import ZonedResolver

from mtasts.cli.resolver._common import (
    DEFAULT_LISTEN,
    CaFile,
    Nameserver,
    OverridesFile,
    read_config,
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
    configuration file). SIGHUP reloads the configuration file and the overrides file; SIGTERM or
    Ctrl-C stops after answering the lookups in progress. See docs/resolver.md."""
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
    run_daemon(
        config, inherited_sockets(os.environ, os.getpid()), lambda: reread_config(config_file, given, os.environ)
    )


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


def resolver_settings_of(config: ResolverConfig) -> ResolverSettings:
    """The resolver's own settings (those of the built-in ``postfix`` zone; other zones differ
    from them where the file says so) and the time a first lookup may wait."""
    from mtasts.resolver.answers import AnswerSettings
    from mtasts.resolver.service import ResolverSettings

    own = config.zones["postfix"]
    return ResolverSettings(
        answers=AnswerSettings(strict_testing=own.strict_testing),
        fail_open_temp=own.fail_open_temp,
        answer_timeout=max(1.0, config.network.timeout * 1.5),
    )


def limits_of(config: ResolverConfig) -> ServerLimits:
    from mtasts.net.server import ServerLimits

    return ServerLimits(max_connections=config.max_connections, max_connections_per_client=config.max_connections)


def files_problems(config: ResolverConfig) -> tuple[list[str], dict[str, Override]]:
    """What is wrong with the files ``config`` names (the overrides file, the CA file), one
    line each, and the overrides read."""
    from mtasts.resolver.overrides import OverrideError, parse_overrides

    problems: list[str] = []
    overrides: dict[str, Override] = {}
    if config.overrides is not None:
        try:
            overrides = dict(parse_overrides(config.overrides.read_text(encoding="utf-8")))
        except OSError as exc:
            problems.append(f"overrides: cannot read {config.overrides}: {exc.strerror or exc}")
        except (OverrideError, UnicodeDecodeError) as exc:
            problems.append(f"overrides: {config.overrides}: {exc}")
    ca_file = config.network.ca_file
    if ca_file is not None:
        problems.extend(ca_file_problems(ca_file))
    return problems, overrides


def ca_file_problems(ca_file: Path) -> list[str]:
    """Why ``ca_file`` cannot verify a policy host, if it cannot: checked by loading it as the
    fetcher will. A CA file the service user cannot read would otherwise fail every fetch
    later, quietly: uncached domains would get ``NOTFOUND`` and enforcement would be off."""
    import ssl

    try:
        if not ca_file.is_file():
            return [f"network.ca_file: {ca_file} is not a file"]
        ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError as exc:  # before OSError, its base class
        return [f"network.ca_file: {ca_file} holds no usable CA certificate: {exc.reason or exc}"]
    except OSError as exc:
        return [f"network.ca_file: cannot read {ca_file}: {exc.strerror or exc}"]
    return []


def reread_config(
    config_file: Path | None, given: CommandLine, environ: Mapping[str, str]
) -> tuple[ResolverConfig, dict[str, Override]] | list[str]:
    """SIGHUP: the configuration as a restart would read it now (the same file, the same
    command line over it) with its overrides, or every problem found, one line each."""
    from mtasts.resolver.config import (
        ConfigError,
        ResolverConfig,
        apply_command_line,
        default_config_path,
        parse_config,
    )

    where = config_file or default_config_path(environ)
    if config_file is None and not where.exists():
        config = ResolverConfig()
    else:
        try:
            text = where.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return [f"{where}: cannot read: {getattr(exc, 'strerror', None) or exc}"]
        try:
            config = parse_config(text, where)
        except ConfigError as exc:
            return [problem.to_text() for problem in exc.problems]
    config = apply_command_line(config, given)
    problems, overrides = files_problems(config)
    return problems or (config, overrides)


class _Daemon:
    """The running daemon's parts, and the reload that changes them in place."""

    def __init__(
        self,
        config: ResolverConfig,
        resolver: ZonedResolver,
        server: SocketmapServer,
        *,
        inherited: bool,
        reread: Callable[[], tuple[ResolverConfig, dict[str, Override]] | list[str]],
    ) -> None:
        self.config = config
        self.resolver = resolver
        self.server = server
        self.inherited = inherited
        self.reread = reread

    def reload(self) -> None:
        """Re-read the configuration and apply what can change in place (logged); a
        configuration with a problem is refused whole, one log line per problem."""
        import logging

        from mtasts.resolver.reload import plan_reload
        from mtasts.resolver.sources import NetworkSources

        log = logging.getLogger("mtasts.resolver")
        read = self.reread()
        if isinstance(read, list):
            for problem in read:
                log.error("reload: %s", problem)
            log.error("reload refused (%s): the configuration in force is kept", plural(len(read), "problem"))
            return
        new, overrides = read
        plan = plan_reload(self.config, new, inherited_sockets=self.inherited)
        config = plan.config
        resolver = self.resolver
        changed = list(plan.changed)
        if overrides != resolver.overrides and "overrides" not in changed:
            changed.append("overrides")  # the same file, new contents
        if "network" in plan.changed:
            resolver.sources = NetworkSources(config.network)
        resolver.reconfigure(resolver_settings_of(config))
        resolver.set_zones(config.zones)
        resolver.overrides = overrides
        if "max_connections" in plan.changed:
            self.server.set_limits(limits_of(config))
        self.config = config
        for part in plan.needs_restart:
            log.warning("reload: %s changed: needs a restart (%s kept)", part, self._shown(part))
        source = config.path or "the command line (no configuration file)"
        lines = [f"configuration reloaded from {source}; changed: {', '.join(changed) or 'nothing'}"]
        if config.overrides is not None:
            lines.append(f"overrides reloaded from {config.overrides}: {plural(len(overrides), 'domain')}")
        lines.append(f"zones beyond the built-in: {', '.join(sorted(set(config.zones) - _BUILTIN_ZONES)) or 'none'}")
        log.info("%s", "; ".join(lines))

    def _shown(self, part: str) -> str:
        """The value in force of a restart-only part, for the log (listen: where it listens)."""
        if part == "listen":
            return ", ".join(self.server.addresses)
        if part == "admin":
            return "off" if self.config.admin is None else self.config.admin.to_text()
        return self.config.store.shown()


_BUILTIN_ZONES = {"postfix", "postfix-tlsrpt", "postfix-legacy"}


def configuration_shown(config: ResolverConfig, environ: Mapping[str, str]) -> str:
    """The configuration file the daemon read, for its start line, or that it read none (and
    which default file it looked for), so an operator can tell whether the file was found."""
    from mtasts.resolver.config import default_config_path

    if config.path is not None:
        return str(config.path)
    return f"none ({default_config_path(environ)} does not exist: defaults and the command line)"


def run_daemon(
    config: ResolverConfig,
    inherited: list[socket.socket],
    reread: Callable[[], tuple[ResolverConfig, dict[str, Override]] | list[str]],
) -> None:
    """Run the daemon ``config`` describes until SIGTERM or SIGINT (a graceful stop: see
    :meth:`SocketmapServer.stop`); on SIGHUP, apply what ``reread`` returns (:class:`_Daemon`)."""
    import asyncio
    import logging
    import signal

    from mtasts.cli._run import run_async
    from mtasts.resolver.config import StoreKind
    from mtasts.resolver.metrics import AdminServer
    from mtasts.resolver.server import SocketmapServer, freeze_heap
    from mtasts.resolver.sources import NetworkSources
    from mtasts.resolver.zones import ZonedResolver

    if not config.listen and not inherited:
        fail("--listen: no address to listen on", ExitCode.USAGE)
    problems, overrides = files_problems(config)
    for problem in problems[:-1]:
        sys.stderr.write(f"mtasts: error: {in_language(str(problem))}\n")
    if problems:
        fail(problems[-1], ExitCode.USAGE)
    settings = resolver_settings_of(config)
    store, where = store_of(config.store)
    # always the zoned resolver (the built-in zones take its fast path), so that a reload can
    # add zones to a daemon started without any
    resolver = ZonedResolver(NetworkSources(config.network), store, settings, zones=config.zones)
    resolver.overrides = overrides
    server_options: dict[str, Any] = {"limits": limits_of(config)}
    if inherited:
        server_options["sockets"] = inherited
    server = SocketmapServer(resolver, [] if inherited else config.listen, **server_options)
    admin_server = None if config.admin is None else AdminServer(resolver, config.admin.host, config.admin.port)
    logging.basicConfig(level=logging.INFO, format="mtasts resolver: %(levelname)s: %(message)s", stream=sys.stderr)
    daemon = _Daemon(config, resolver, server, inherited=bool(inherited), reread=reread)
    log = logging.getLogger("mtasts.resolver")

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
        freeze_heap()  # the cache loaded from the store, the zones, the modules: see there
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, daemon.reload)
        memory = config.store.kind is StoreKind.MEMORY
        tr = current()
        cache = where if memory else f"{where}, {counted(len(resolver), 'cached domain')}"
        zones = ", ".join(sorted(set(config.zones) - _BUILTIN_ZONES))
        started = {
            "addresses": ", ".join(server.addresses),
            "cache": cache,
            "configuration": configuration_shown(config, os.environ),
            "pid": os.getpid(),
        }
        line = "resolver listening on %(addresses)s (cache: %(cache)s); configuration: %(configuration)s; pid %(pid)s"
        sys.stderr.write(f"mtasts: {tr.gettext(line) % started}\n")
        if zones:
            zones_line = tr.gettext("resolver zones beyond the built-in profiles: %(zones)s") % {"zones": zones}
            sys.stderr.write(f"mtasts: {zones_line}\n")
        if admin_server is not None:
            metrics = {"url": f"http://{admin_server.address}/metrics"}
            sys.stderr.write(f"mtasts: {tr.gettext('resolver metrics on %(url)s') % metrics}\n")
        sys.stderr.flush()
        try:
            await stop.wait()
            stop.clear()  # a second SIGTERM or Ctrl-C: stop without waiting for the lookups
            grace = daemon.resolver.settings.answer_timeout + 1.0
            server.stop_accepting()
            closing = server.drain()  # idle connections close now, the others once answered
            log.info(
                "stopping: no longer accepting connections; %s answered first (at most %g s)",
                plural(server.lookups_in_progress, "lookup in progress", "lookups in progress"),
                grace,
            )
            if closing:
                drained = asyncio.ensure_future(asyncio.wait(closing, timeout=grace))
                hurry = asyncio.ensure_future(stop.wait())
                await asyncio.wait([drained, hurry], return_when=asyncio.FIRST_COMPLETED)
                hurry.cancel()
                if not drained.done():
                    drained.cancel()
                    log.info("stopping now: %s abandoned", plural(server.lookups_in_progress, "lookup"))
        finally:
            if admin_server is not None:
                await admin_server.stop()
            await server.stop()
            await resolver.stop()
        log.info("stopped")

    try:
        run_async(run())
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")

"""``mtasts resolver serve``: the socketmap daemon."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.text import plural

if TYPE_CHECKING:
    from mtasts.resolver.store import PolicyStore

from mtasts.cli.resolver._common import (
    DEFAULT_LISTEN,
    CaFile,
    FailOpenTemp,
    HttpsPort,
    Nameserver,
    OverridesFile,
    RefusePrivate,
    StrictTesting,
    Timeout,
    load_overrides,
    network_settings,
    open_store,
    reload_overrides,
    resolver_settings,
)


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
    network = network_settings(nameserver, ca_file, timeout, https_port, refuse_private)
    if redis_url is not None and (memory_only or db is not None):
        fail("--redis: choose one of --redis, --db and --memory-only", ExitCode.USAGE)
    if redis_url is not None and not redis_prefix:
        fail("--redis-prefix: must not be empty", ExitCode.USAGE)
    store: PolicyStore
    if memory_only:
        store, where = MemoryStore(), "memory only"
    else:
        store, where = open_store(db, redis_url, redis_prefix)
    resolver = PolicyResolver(
        NetworkSources(network), store, resolver_settings(strict_testing, fail_open_temp, timeout)
    )
    if overrides is not None:
        resolver.overrides = load_overrides(overrides)
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
            loop.add_signal_handler(signal.SIGHUP, reload_overrides, resolver, overrides)
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

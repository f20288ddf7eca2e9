"""``mtasts report serve``: the RFC 8460 §5.4 HTTPS endpoint."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer

from mtasts.cli._run import log_to_stderr
from mtasts.cli.output import console
from mtasts.cli.report._common import (
    DbOption,
    open_store,
)
from mtasts.i18n import current

_OPTIONS: Final = {"cert": "--cert", "key": "--key", "host": "--host", "port": "--port", "spool_dir": "--spool-dir"}
"""The option of each setting :class:`mtasts.report.server.StartupError` can name."""


def serve_command(
    cert: Annotated[
        Path | None, typer.Option("--cert", help="TLS certificate chain (PEM).", metavar="FILE", readable=False)
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="TLS private key (PEM, unencrypted).", metavar="FILE", readable=False)
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (a host name: every address it resolves to).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8443,
    path: Annotated[
        str | None,
        typer.Option("--path", help="Receive reports only at this URL path (others get 404); default: any path."),
    ] = None,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option("--allow-domain", help="Accept reports only for these policy domains (repeatable).", metavar="D"),
    ] = None,
    max_body: Annotated[int, typer.Option("--max-body", min=1, help="Largest request body, in bytes.")] = 4_194_304,
    rate: Annotated[float, typer.Option("--rate", help="Reports per minute per client (burst: --burst).")] = 60.0,
    burst: Annotated[int, typer.Option("--burst", min=1, help="Reports a client may send at once.")] = 20,
    no_tls: Annotated[
        bool, typer.Option("--no-tls", help="Serve plain HTTP (only behind a TLS-terminating reverse proxy).")
    ] = False,
    trust_proxy: Annotated[
        bool, typer.Option("--trust-proxy", help="Take the client address from X-Forwarded-For (from 127.0.0.1).")
    ] = False,
    handshake_timeout: Annotated[
        float, typer.Option("--handshake-timeout", min=0.1, help="Seconds a client has to finish the TLS handshake.")
    ] = 10.0,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", min=0.1, help="Seconds a client has to send the request head.")
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option("--body-timeout", min=0.1, help="Close a request whose body sends no byte for this many seconds."),
    ] = 10.0,
    min_body_rate: Annotated[
        float,
        typer.Option("--min-body-rate", min=0, help="Close a request whose body arrives slower (bytes/s, averaged)."),
    ] = 1024.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="Open connections, all clients together.")
    ] = 256,
    max_connections_per_client: Annotated[
        int, typer.Option("--max-connections-per-client", min=1, help="Open connections per client address.")
    ] = 32,
    max_uploads: Annotated[
        int, typer.Option("--max-uploads", min=1, help="Large or chunked bodies being received at once; more get 503.")
    ] = 64,
    memory_budget: Annotated[
        int, typer.Option("--memory-budget", min=1, help="Bytes of request bodies kept in memory, all together.")
    ] = 64 * 1024 * 1024,
    spool_budget: Annotated[
        int, typer.Option("--spool-budget", min=1, help="Bytes of request bodies spooled to disk, all together.")
    ] = 1024 * 1024 * 1024,
    spool_dir: Annotated[
        Path | None,
        typer.Option("--spool-dir", help="Where bodies are spooled (default: the temp dir).", readable=False),
    ] = None,
    parse_workers: Annotated[
        int, typer.Option("--parse-workers", min=1, help="Worker processes per lane (small and large reports).")
    ] = 1,
    parse_queue: Annotated[
        int, typer.Option("--parse-queue", min=0, help="Reports waiting for a worker, per lane; more get 503.")
    ] = 8,
    log_window: Annotated[
        float, typer.Option("--log-window", min=0.1, help="Seconds over which repeated failures are summarised.")
    ] = 60.0,
    db: DbOption = None,
) -> None:
    """Receive reports over HTTPS (RFC 8460 §5.4): POST application/tlsrpt+gzip or +json, reply 201.

    Logs one access line per request (and per failed TLS handshake) on stderr: client,
    "METHOD PATH", status, in=/out= body bytes, duration, then "stored" or "duplicate" with the
    organisation and report-id, or the error code. Repeated failures are summarised per
    --log-window (MTASTS_DEBUG=1 adds debug lines, with tracebacks of bugs). A file or setting
    that keeps the server from starting is named in one line, exit status 3."""
    import logging
    import signal

    from sqlalchemy.exc import DatabaseError

    from mtasts.cli._run import run_async
    from mtasts.cli.exitcodes import ExitCode, fail
    from mtasts.net.listen import ListenAddress
    from mtasts.report.server import EndpointSettings, ReportServer, StartupError, parse_domains, server_tls_context
    from mtasts.store.errors import StoreError, describe_store_error

    if not no_tls and (cert is None or key is None):
        fail(current().text("give --cert and --key (RFC 8460 §5.4 requires HTTPS), or --no-tls"), ExitCode.USAGE)
    if rate <= 0:
        fail(current().text(f"--rate {rate:g}: must be above 0 (reports per minute per client)"), ExitCode.USAGE)
    if path is not None and not path.startswith("/"):
        fail(current().text(f"--path {path}: must begin with / (e.g. /tlsrpt)"), ExitCode.USAGE)

    def cannot_start(exc: StartupError) -> NoReturn:
        fail(f"{_OPTIONS.get(exc.setting, exc.setting)} {exc.value}: {exc.message}", ExitCode.CANNOT_RUN)

    settings = EndpointSettings(
        path=path,
        max_body=max_body,
        rate_per_minute=rate,
        burst=burst,
        allowed_domains=parse_domains(allow_domain),
        trust_proxy_headers=trust_proxy,
        handshake_timeout=handshake_timeout,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        min_body_rate=min_body_rate,
        max_connections=max_connections,
        max_connections_per_client=max_connections_per_client,
        max_uploads=max_uploads,
        memory_budget=memory_budget,
        spool_budget=spool_budget,
        spool_dir=spool_dir,
        parse_workers=parse_workers,
        parse_queue=parse_queue,
        log_window=log_window,
    )
    store = open_store(db)
    try:
        tls = None if no_tls or cert is None or key is None else server_tls_context(cert, key)
    except StartupError as exc:
        cannot_start(exc)
    server = ReportServer(store, host=host, port=port, tls=tls, settings=settings)
    log_to_stderr("%(asctime)s %(levelname)s %(message)s", {"mtasts": logging.INFO, "uvicorn": logging.WARNING})
    err = console(stderr=True)

    async def run() -> None:
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        scheme = "http" if no_tls else "https"
        where = ", ".join(f"{scheme}://{ListenAddress(*address).to_text()}/" for address in server.addresses)
        err.print(current().gettext("[ok]listening[/] on %(url)s; Ctrl-C stops") % {"url": where}, soft_wrap=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        run_async(run())
    except StartupError as exc:
        cannot_start(exc)
    except (StoreError, DatabaseError) as exc:
        # DatabaseError: the one thing that can fail so is opening the store (a file that is
        # not a database); the store does not say it is unusable yet, but it is
        where = "--db" if db else "$MTASTS_DB" if os.environ.get("MTASTS_DB") else "the default database"
        fail(current().text(f"{where}: {describe_store_error(exc, store.url)}"), ExitCode.CANNOT_RUN)
    except OSError as exc:
        fail(current().text(f"cannot start the server on {host}:{port}: {exc.strerror or exc}"), ExitCode.CANNOT_RUN)

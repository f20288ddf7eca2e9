"""``mtasts web``: the web inspector (``serve``): pages and their JSON API over HTTP.

Mounted by :mod:`mtasts.cli.main` as ``mtasts web``; runnable alone for tests
(``python -c "from mtasts.cli.web import app; app()" serve ...``). Plain HTTP: put it behind a
TLS-terminating reverse proxy to face the internet (docs/web.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli._run import log_to_stderr
from mtasts.cli.cafile import check_ca_file
from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.publish._common import ReportersOption, TestingDaysOption  # apply's guard options, as they are
from mtasts.net.settings import DEFAULT_TIMEOUT, NetworkSettings, parse_nameserver

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mtasts.net.asgi_limits import AsgiLimits

__all__ = ["app"]

app = typer.Typer(
    help="The web inspector: check a domain in the browser (English and Japanese), with a JSON API.",
    no_args_is_help=True,
)
app.add_typer(__import__("mtasts.cli.web_users", fromlist=["app"]).app, name="user")  # accounts: cli/web_users.py

_NETWORK = "Network"
_TESTING = "For testing (the lab)"
DEFAULT_LISTEN = "127.0.0.1:8080"
_GRACE_SECONDS = 5  # open progress streams get this long to end when the server stops


@app.callback()
def web() -> None:
    """The web inspector: check a domain in the browser (English and Japanese), with a JSON API."""


class PageLanguage(StrEnum):
    EN = "en"
    JA = "ja"


@app.command("serve")
def serve(
    listen: Annotated[
        str, typer.Option("--listen", help="Listen on HOST:PORT ([IPv6]:PORT; port 0: any free port).")
    ] = DEFAULT_LISTEN,
    public: Annotated[
        bool,
        typer.Option(
            "--public",
            help="An internet-facing inspector: never connect to non-global addresses (--refuse-private), "
            "rate limits per client and in total, recent results reused for 5 minutes, nothing kept after an hour.",
        ),
    ] = False,
    lang: Annotated[
        PageLanguage,
        typer.Option("--lang", help="The pages' language when the browser's Accept-Language names none we have."),
    ] = PageLanguage.EN,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="The report store of the dashboard and the domain pages: a database URL (sqlite:///path, "
            "postgresql://...) or SQLite file. Default: $MTASTS_DB, else reports.sqlite3 in the user data directory "
            "(as mtasts report). The report pages only read it; with accounts it also keeps the accounts, sessions "
            "and audit trail (made when missing) and an admin's publish actions record the published history in it. "
            "With --no-login nothing is written or created.",
            metavar="URL",
        ),
    ] = None,
    publish_config: Annotated[
        Path | None,
        typer.Option(
            "--publish-config",
            help="mtasts publish's configuration, for the roll-out state on the domain pages "
            "(default: mtasts publish's, when it exists).",
            metavar="FILE",
        ),
    ] = None,
    publish_admin: Annotated[
        str | None,
        typer.Option(
            "--publish-admin",
            help="The running 'mtasts publish serve' admin listener, HOST:PORT, that the domain pages' publish "
            "actions reload ('off': none); default: [server] admin of --publish-config.",
            metavar="ADDR",
        ),
    ] = None,
    testing_days: TestingDaysOption = 14,
    reporters: ReportersOption = 2,
    retire_max_age: Annotated[
        int,
        typer.Option(
            "--retire-max-age",
            min=0,
            help="The max_age, in seconds, of the mode none policy the retire action serves first "
            "(as mtasts publish retire --max-age); the retire page can change it for one run.",
            metavar="S",
        ),
    ] = 86400,
    nameserver: Annotated[
        str | None,
        typer.Option(
            "--nameserver",
            help="Resolve through this server, IP[:PORT], instead of the system resolver.",
            rich_help_panel=_NETWORK,
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file", help="Trust the CAs in this PEM file instead of the system store.", rich_help_panel=_NETWORK
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, help="Seconds allowed for each lookup, fetch and probe.", rich_help_panel=_NETWORK
        ),
    ] = DEFAULT_TIMEOUT,
    https_port: Annotated[
        int, typer.Option("--https-port", help="Policy hosts' HTTPS port (RFC 8461: 443).", rich_help_panel=_TESTING)
    ] = 443,
    smtp_port: Annotated[
        int, typer.Option("--smtp-port", help="MX hosts' SMTP port (RFC 8461: 25).", rich_help_panel=_TESTING)
    ] = 25,
    no_login: Annotated[
        bool,
        typer.Option(
            "--no-login",
            help="Open every page to anyone, without accounts (a machine only you can reach; not with --public).",
            rich_help_panel="Accounts",
        ),
    ] = False,
    trust_proxy_user: Annotated[
        str | None,
        typer.Option(
            "--trust-proxy-user",
            metavar="HEADER",
            help="Sign in whoever this header of the reverse proxy names (e.g. X-Remote-User); "
            "only from --trusted-proxy addresses.",
            rich_help_panel="Accounts",
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            metavar="ADDRESS",
            help="The reverse proxy's address or network (repeatable): its user header and "
            "X-Forwarded-Proto/-For are believed.",
            rich_help_panel="Accounts",
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            "--header-timeout",
            min=0.1,
            hidden=True,
            help="Seconds a client has to send a whole request head (default 10).",
            metavar="S",
        ),
    ] = None,
) -> None:
    """Serve the inspector: / is the form, /check?domain=D runs the live check and shows every
    finding with its fix, /result/ID is the permanent link, /api/check?domain=D the JSON of
    'mtasts check --json'. Results are kept in memory only. /reports is the TLS-report dashboard
    and /domains/D the domain page (roll-out state, report trend, monitor history; publish
    actions for admins, which reload --publish-admin), read from --db; /openapi.json describes
    the JSON API. Ctrl-C stops (exit 0)."""
    from mtasts.publish.config import parse_address
    from mtasts.publish.rollout import Rules
    from mtasts.store.errors import UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url
    from mtasts.web import PUBLIC_DEFAULTS, WebSettings, create_app

    try:
        address = parse_address(listen)
    except ValueError as exc:
        fail(f"--listen {listen}: {exc}", ExitCode.USAGE)
    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(f"--nameserver {nameserver!r}: {exc}", ExitCode.USAGE)
    if ca_file is not None:
        check_ca_file(ca_file)
    try:
        network = NetworkSettings(
            nameserver=server,
            ca_file=ca_file,
            timeout=timeout,
            https_port=https_port,
            smtp_port=smtp_port,
            allow_private=not public,
            ehlo_name=_ehlo_name(),
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    store_url = db or default_db_url(os.environ)
    try:
        ReportStore(store_url, create=False)  # checks the URL; connects to nothing
    except UnsupportedDatabase as exc:
        fail(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}", ExitCode.USAGE)
    if publish_config is not None and not publish_config.is_file():
        fail(f"--publish-config {publish_config}: no such file", ExitCode.CANNOT_RUN)
    admin_address = None
    if publish_admin is not None and publish_admin != "off":
        try:
            admin_address = parse_address(publish_admin)
        except ValueError as exc:
            fail(f"--publish-admin {publish_admin}: {exc}", ExitCode.USAGE)
    extra = PUBLIC_DEFAULTS if public else {}
    settings = WebSettings(
        network=network,
        public=public,
        language=lang.value,
        db=store_url,
        publish_config=publish_config,
        publish_admin=admin_address,
        publish_admin_off=publish_admin == "off",
        publish_rules=Rules(testing_days=testing_days, reporters=reporters, retire_max_age=retire_max_age),
        **extra,  # type: ignore[arg-type]
    )
    if header_timeout is not None:
        settings = dataclasses.replace(
            settings, serve=dataclasses.replace(settings.serve, header_timeout=header_timeout)
        )
    from mtasts.cli.web_users import serve_auth  # accounts: sign-in, sessions, roles

    if no_login and (public or trust_proxy_user or trusted_proxy):
        fail("--no-login opens every page: it cannot go with --public or --trust-proxy-user", ExitCode.USAGE)
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    try:
        sock = socket.create_server((address.host, address.port), family=family, reuse_port=False)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)  # create_server appends the address
        fail(f"cannot listen on {address.to_text()}: {why}", ExitCode.CANNOT_RUN)
    auth = None  # accounts (after the listen check: a mistake there leaves no database behind)
    if not no_login:
        auth = serve_auth(
            settings.db, public=public, proxy_user_header=trust_proxy_user, trusted_proxies=trusted_proxy or []
        )
    _log_to_stderr()
    host, port = sock.getsockname()[:2]
    where = f"http://[{host}]:{port}/" if family == socket.AF_INET6 else f"http://{host}:{port}/"
    mode = "public mode: private addresses refused, rate limited" if public else "private mode"
    sys.stderr.write(f"mtasts web: listening on {where} ({mode}); Ctrl-C stops\n")
    sys.stderr.write(f"mtasts web: TLS reports and roll-out state from {ReportStore(store_url).display_url}\n")
    sys.stderr.flush()

    from mtasts.cli._run import run_async

    with contextlib.closing(sock):
        run_async(_serve(create_app(settings, auth=auth), sock, settings.serve, behind_proxy=bool(trusted_proxy)))


async def _serve(web: Starlette, sock: socket.socket, limits: AsgiLimits, *, behind_proxy: bool) -> None:
    """The app on this loop (uvloop, as every mtasts command) through the shared, bounded HTTP
    plumbing (:mod:`mtasts.net.asgi`: connection caps, head deadline and size cap, keep-alive
    timeout), on the socket bound already; stopped by SIGINT or SIGTERM through the loop, so
    that a stop is a clean exit 0 and not a re-raised signal. Requests under way then get
    ``_GRACE_SECONDS`` to end before the app's shut-down."""
    from mtasts.net.asgi import AsgiServer, debug_logger

    logger = logging.getLogger("mtasts.web.serve")
    server = AsgiServer(
        web,
        name="web serve",
        limits=dataclasses.replace(limits, behind_proxy=behind_proxy),
        logger=debug_logger("mtasts.web.http", logger),
        sockets=[sock],
        lifespan=True,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await server.start()
        await stopping.wait()
    finally:
        await server.stop(grace=_GRACE_SECONDS)


def _log_to_stderr() -> None:
    levels = {"mtasts": logging.INFO, "uvicorn": logging.WARNING}
    log_to_stderr("%(asctime)s %(levelname)s %(name)s %(message)s", levels)


def _ehlo_name() -> str:
    """This host's name for EHLO, without a DNS lookup (getfqdn can block on reverse DNS)."""
    name = socket.gethostname()
    return name if "." in name else "mtasts.invalid"

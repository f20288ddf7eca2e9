"""``mtasts publish serve`` and ``mtasts publish reload``: the policy host and its reload."""

from __future__ import annotations

import errno
import http.client
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.publish._common import (
    AdminOption,
    ConfigOption,
    config_failed,
    listen_address,
    log_to_stderr,
    say,
)
from mtasts.i18n import current
from mtasts.i18n.words import counted
from mtasts.publish.config import Challenge, ConfigError, ListenAddress, ReportSettings, default_config_path

if TYPE_CHECKING:
    from mtasts.publish.host import ListenFailed
    from mtasts.report.server import ReportEndpoint

_SHOWN_UNSERVED = 10  # unserved domains named at start; the rest are counted


def serve_command(
    config: ConfigOption = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen",
            help="Listen on HOST:PORT ([IPv6]:PORT); repeatable; replaces [server] listen.",
            metavar="ADDR",
        ),
    ] = None,
    admin: AdminOption = None,
) -> None:
    """Serve https://mta-sts.<domain>/.well-known/mta-sts.txt for every configured domain.

    The certificate is chosen by SNI; a name that is not served (no cert and key, or its ACME
    certificate not issued yet) gets a fallback certificate no client trusts, never a policy.
    SIGHUP or `mtasts publish reload` re-reads the configuration, bodies and certificates
    without dropping a connection; a configuration with any problem is refused and the previous
    state kept. One access-log line per request on stderr; metrics on the admin listener (GET
    /metrics, /healthz). With an [acme] section, domains without cert and key get certificates
    from the ACME CA (HTTP-01 on [acme] listen, port 80; or tls-alpn-01 on the policy
    listeners), renewed at two thirds of their lifetime and served without a restart; with
    [acme] and no domain yet, the host starts and serves nothing until a reload adds one. With a
    [report] section, TLS reports posted to https://mta-sts.<domain>/v1/report (or [report]
    path) are stored too. An address that cannot be listened on is named with its listener
    (policy, admin, ACME challenge), exit 3."""
    import asyncio
    import signal

    from mtasts.cli._run import run_async
    from mtasts.publish.host import ListenFailed, PolicyHost
    from mtasts.publish.snapshot import load_snapshot

    path = config or default_config_path()
    addresses = [listen_address(text, "--listen") for text in listen or []]
    admin_address: ListenAddress | bool | None = True
    if admin is not None:
        admin_address = None if admin == "off" else listen_address(admin, "--admin")
    try:
        snapshot = load_snapshot(path)
    except ConfigError as exc:
        config_failed(exc)
    tr = current()
    unserved = snapshot.unserved
    for name, why in unserved[:_SHOWN_UNSERVED]:
        sys.stderr.write(f"mtasts: warning: {say(f'{name}: not served ({why}): its policy host gets no policy')}\n")
    if len(unserved) > _SHOWN_UNSERVED:
        more = counted(len(unserved) - _SHOWN_UNSERVED, "more domain")
        sys.stderr.write(
            "mtasts: warning: " + tr.gettext("and %(more)s not served (no certificate yet)") % {"more": more} + "\n"
        )
    acme = snapshot.config.acme
    if not snapshot.config.domains:  # only with [acme]: without, the snapshot refuses no domain
        nothing = tr.gettext(
            "no [[domain]] is configured: nothing is served until a reload adds one "
            "(its certificate then comes from ACME)"
        )
        sys.stderr.write(f"mtasts: warning: {nothing}\n")
    log_to_stderr()
    host = PolicyHost(
        snapshot,
        loader=lambda generation: load_snapshot(path, generation=generation),
        listen=addresses or None,
        admin=admin_address,
        tune_collector=True,  # this process is the host: its start-up objects live as long as it
    )

    report = snapshot.config.report
    endpoint = _report_endpoint(report) if report is not None else None

    async def run() -> None:
        if endpoint is not None and report is not None:
            await _start_endpoint(endpoint)
            from mtasts.publish.reports import ReportRoute

            host.mount_reports(ReportRoute(report, endpoint.app))
        try:
            await host.start()
        except BaseException:
            if endpoint is not None:
                await endpoint.stop()
            raise
        manager = None
        if acme is not None:
            from mtasts.publish.acme import AcmeManager, managed_hosts

            manager = AcmeManager(host)
            try:
                await manager.start()
            except OSError as exc:  # its HTTP-01 listener (tls-alpn-01 binds nothing of its own)
                await host.stop()
                raise ListenFailed.of("acme", acme.listen, exc) from exc
            except BaseException:
                await host.stop()
                raise
            if acme.challenge is Challenge.HTTP_01:
                on = ", ".join(f"http://{a.to_text()}" for a in manager.bound)
                challenge = tr.gettext("http-01 on %(where)s") % {"where": on}
            else:
                on = ", ".join(f"https://{a.to_text()}" for a in host.bound)
                challenge = tr.gettext("tls-alpn-01 on %(where)s") % {"where": on}
            started = tr.gettext("ACME: %(domains)s from %(directory)s, %(challenge)s; certificates in %(storage)s")
            values = {"directory": acme.directory, "challenge": challenge, "storage": acme.storage}
            sys.stderr.write(
                f"mtasts: {started % {'domains': counted(len(managed_hosts(host)), 'domain'), **values}}\n"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[object]] = set()

        def reload() -> None:
            task: asyncio.Task[object] = loop.create_task(host.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload)
        where = ", ".join(f"https://{a.to_text()}" for a in host.bound)
        if host.admin_bound:
            admin_text = tr.gettext("admin http://%(address)s") % {"address": host.admin_bound.to_text()}
        else:
            admin_text = tr.gettext("no admin listener")
        if endpoint is not None and report is not None:
            from mtasts.store.errors import redact_url

            if report.accept.value == "configured":
                reports = (
                    "TLS reports: POST https://mta-sts.<domain>%(path)s on every served name, "
                    "for the configured domains, into %(store)s"
                )
            else:
                reports = (
                    "TLS reports: POST https://mta-sts.<domain>%(path)s on every served name, "
                    "for any domain, into %(store)s"
                )
            store_url = redact_url(endpoint.store.url)
            sys.stderr.write(f"mtasts: {tr.gettext(reports) % {'path': report.path, 'store': store_url}}\n")
        serving = tr.gettext(
            "serving %(domains)s on %(where)s; %(admin)s; pid %(pid)s "
            "(reload: SIGHUP or mtasts publish reload; stop: Ctrl-C)"
        ) % {
            "domains": counted(len(host.snapshot.sites), "domain"),
            "where": where,
            "admin": admin_text,
            "pid": os.getpid(),
        }
        sys.stderr.write(f"mtasts: {serving}\n")
        sys.stderr.flush()
        try:
            await stop.wait()
        finally:
            if manager is not None:
                await manager.stop()
            await host.stop()
            if endpoint is not None:
                await endpoint.stop()

    try:
        run_async(run())
    except ListenFailed as exc:
        _listen_failed(exc, option_given={"policy": bool(addresses), "admin": admin is not None})
    except OSError as exc:  # not a listener's address (the fallback certificate's temporary file, say)
        fail(say(f"cannot start the policy host: {exc.strerror or exc}"), ExitCode.CANNOT_RUN)


# which listener, the option that sets it and the configuration key that does
_LISTENERS = {
    "policy": ("policy listener", "--listen", "[server] listen"),
    "admin": ("admin listener", "--admin", "[server] admin"),
    "acme": ("ACME HTTP-01 challenge listener", "", "[acme] listen"),
}


def _listen_failed(exc: ListenFailed, *, option_given: dict[str, bool]) -> NoReturn:
    """One line: the address that cannot be listened on, whose it is, why and what to do."""
    tr = current()
    what, option, key = _LISTENERS[exc.listener]
    setting = option if option and option_given.get(exc.listener) else key
    where = ", ".join(a.to_text() for a in exc.addresses)
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        if exc.listener == "admin":
            hint = tr.gettext('; another program listens there: stop it, or give %(setting)s another address or "off"')
        else:
            hint = tr.gettext("; another program listens there: stop it, or give %(setting)s another address")
        hint %= {"setting": setting}
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = tr.gettext(" (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
    values = {"where": where, "what": tr.gettext(what), "setting": setting, "reason": say(str(exc.strerror or exc))}
    fail(
        tr.gettext("cannot listen on %(where)s (the %(what)s, %(setting)s): %(reason)s") % values + hint,
        ExitCode.CANNOT_RUN,
    )


def _report_endpoint(report: ReportSettings) -> ReportEndpoint:
    """The endpoint of ``[report]`` over its store (not opened yet); a database URL that is
    not usable is a usage error, said before anything starts."""
    from mtasts.publish.reports import endpoint_settings
    from mtasts.report.server import ReportEndpoint
    from mtasts.store.errors import UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url

    try:
        store = ReportStore(report.store or default_db_url(os.environ))
    except UnsupportedDatabase as exc:
        fail(say(f"[report] store: {exc.message}" if report.store else f"$MTASTS_DB: {exc.message}"), ExitCode.USAGE)
    return ReportEndpoint(store, endpoint_settings(report))


async def _start_endpoint(endpoint: ReportEndpoint) -> None:
    from mtasts.report.server import StartupError
    from mtasts.store.errors import StoreError

    try:
        await endpoint.start()
    except StoreError as exc:
        fail(say(f"[report] store: {exc.message}"), ExitCode.CANNOT_RUN)
    except StartupError as exc:
        fail(say(f"[report]: {exc}"), ExitCode.CANNOT_RUN)


def reload_command(
    config: ConfigOption = None,
    admin: AdminOption = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the answer.")] = 60.0,
) -> None:
    """Make the running `mtasts publish serve` re-read its configuration, bodies and certificates.

    Asks its admin listener (POST /reload; the address comes from --admin or the configuration's
    [server] admin) and says whether the new state is served or, if not, every problem (the
    host then keeps serving the previous state). Exit 0 reloaded, 2 the configuration has
    problems, 3 a file cannot be read or the host cannot be reached."""
    from mtasts.publish.snapshot import read_config

    if admin is not None:
        if admin == "off":
            fail(say("--admin off: reload needs the admin listener's address"), ExitCode.USAGE)
        address = listen_address(admin, "--admin")
    else:
        try:
            settings = read_config(config or default_config_path())
        except ConfigError as exc:
            config_failed(exc)
        if settings.server.admin is None:
            fail(say("[server] admin is off: send SIGHUP to the serve process instead"), ExitCode.USAGE)
        address = settings.server.admin
    connection = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        connection.request("POST", "/reload", headers={"Content-Length": "0"})
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        fail(
            say(
                f"cannot reach the admin listener at http://{address.to_text()}: {detail}; "
                "is `mtasts publish serve` running?"
            ),
            ExitCode.CANNOT_RUN,
        )
    finally:
        connection.close()
    try:
        outcome = json.loads(raw)
        ok, generation, served = bool(outcome["ok"]), int(outcome["generation"]), int(outcome["served"])
    except (ValueError, KeyError, TypeError):
        fail(
            say(f"unexpected answer from http://{address.to_text()}/reload: HTTP {response.status}"),
            ExitCode.CANNOT_RUN,
        )
    tr = current()
    if ok:
        reloaded = tr.gettext("reloaded: generation %(generation)s, %(domains)s served")
        typer.echo(reloaded % {"generation": generation, "domains": counted(served, "domain")})
        return
    for line in outcome.get("problems", []):
        sys.stderr.write(f"mtasts: error: {say(str(line))}\n")
    refused = tr.gettext("reload refused: still serving generation %(generation)s") % {"generation": generation}
    sys.stderr.write(f"mtasts: error: {refused}\n")
    sys.stderr.flush()
    raise typer.Exit(int(ExitCode.CANNOT_RUN if outcome.get("unreadable") else ExitCode.USAGE))

"""``mtasts monitor``: scheduled checks with a history, events when something changes, alerts.

``run`` checks the domains that are due once and exits (for cron); ``serve`` is a daemon that
checks each domain at its interval and serves Prometheus metrics. Both compare each check with
the previous one and with the stored TLS reports, keep runs and events in the database
(``--db``, the one the reports are in), and send what opened or cleared by mail (the digest's
mailer and options) and/or to a webhook. See docs/monitor.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli._run import log_to_stderr, run_async
from mtasts.cli.cafile import check_ca_file
from mtasts.cli.exitcodes import ExitCode, fail, in_language
from mtasts.cli.report._common import DbOption, json_text, open_store
from mtasts.cli.report.digest import DEFAULT_SMTP, PASSWORD_ENV, smtp_settings
from mtasts.core.untrusted import printable
from mtasts.i18n import current
from mtasts.i18n.words import counted, plural
from mtasts.monitor.schedule import DEFAULT_JITTER, MAX_INTERVAL, Monitored, parse_interval
from mtasts.net.mailer import SmtpSecurity, compose
from mtasts.net.settings import DEFAULT_TIMEOUT, NetworkSettings, parse_nameserver

if TYPE_CHECKING:
    from mtasts.monitor.notify import Notifier
    from mtasts.monitor.service import Delivery, DomainOutcome, Monitor

app = typer.Typer(
    help="Scheduled checks with a history: events when something changes (findings, policy, MX, "
    "certificates, TLS reports), by mail and webhook; 'run' for cron, 'serve' as a daemon.",
    no_args_is_help=True,
)

_DOMAINS = "Domains"
_NETWORK = "Network"
_TESTING = "For testing (the lab)"
_NOTIFY = "Notifications"

DomainsArgument = Annotated[
    list[str] | None, typer.Argument(help="Domains to monitor (with --file and --config).", show_default=False)
]
FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Domains from FILE, one per line: DOMAIN [INTERVAL] ('#' starts a comment; INTERVAL as 15m, 1h, 1d).",
        rich_help_panel=_DOMAINS,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Also the domains of this mtasts publish configuration.", rich_help_panel=_DOMAINS),
]
IntervalOption = Annotated[
    str,
    typer.Option(
        "--interval", help="Check each domain this often (1m to 7d) unless its line says.", rich_help_panel=_DOMAINS
    ),
]
JitterOption = Annotated[
    float,
    typer.Option(
        "--jitter",
        min=0,
        max=0.5,
        help="Check up to this share of the interval early, by a hash of the domain, to spread the checks.",
        rich_help_panel=_DOMAINS,
    ),
]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", "-c", min=1, max=1000, help="Domains checked at the same time.")
]
SilentOption = Annotated[
    int,
    typer.Option(
        "--silent-days", min=1, help="A reporter, or the whole domain, without a TLS report this long is an event."
    ),
]
ReportEventsOption = Annotated[
    bool,
    typer.Option(
        "--report-events/--no-report-events",
        help="Events from the stored TLS reports (off when the reports go to another service, not to --db).",
    ),
]
NameserverOption = Annotated[
    str | None,
    typer.Option("--nameserver", help="Resolve through this server, IP[:PORT].", rich_help_panel=_NETWORK),
]
CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", help="Trust the CAs in this PEM file instead of the system store.", rich_help_panel=_NETWORK
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout", min=0.1, help="Seconds allowed for each lookup, fetch and probe.", rich_help_panel=_NETWORK
    ),
]
RefusePrivateOption = Annotated[
    bool,
    typer.Option(
        "--refuse-private", help="Never connect to an address that is not globally reachable.", rich_help_panel=_NETWORK
    ),
]
HttpsPortOption = Annotated[
    int, typer.Option("--https-port", help="Policy hosts' HTTPS port (RFC 8461: 443).", rich_help_panel=_TESTING)
]
SmtpPortOption = Annotated[
    int, typer.Option("--smtp-port", help="MX hosts' SMTP port (RFC 8461: 25).", rich_help_panel=_TESTING)
]
MailToOption = Annotated[
    list[str] | None,
    typer.Option("--mail-to", help="Mail events to this address (repeatable).", rich_help_panel=_NOTIFY),
]
MailFromOption = Annotated[
    str, typer.Option("--mail-from", help="Sender address of the mails.", rich_help_panel=_NOTIFY)
]
SmtpOption = Annotated[
    str,
    typer.Option(
        "--smtp",
        help="SMTP server HOST[:PORT]; the port defaults to 587 (starttls), 465 (tls) or 25 (none).",
        rich_help_panel=_NOTIFY,
    ),
]
SecurityOption = Annotated[
    SmtpSecurity,
    typer.Option(
        "--smtp-security",
        case_sensitive=False,
        help="starttls (verified), tls (implicit, port 465) or none (a local relay, no AUTH).",
        rich_help_panel=_NOTIFY,
    ),
]
SmtpUserOption = Annotated[
    str | None,
    typer.Option(
        "--smtp-user",
        help=f"Log in as USER; the password: --smtp-password-file or ${PASSWORD_ENV}.",
        metavar="USER",
        rich_help_panel=_NOTIFY,
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--smtp-password-file", help="The SMTP password (first line of FILE).", metavar="FILE", rich_help_panel=_NOTIFY
    ),
]
SmtpCaOption = Annotated[
    Path | None,
    typer.Option(
        "--smtp-ca-file",
        help="Trust only these CAs (PEM) for the SMTP server.",
        metavar="FILE",
        rich_help_panel=_NOTIFY,
    ),
]
SmtpTimeoutOption = Annotated[
    float,
    typer.Option(
        "--smtp-timeout", min=1, help="Seconds to wait for the SMTP server.", metavar="SECONDS", rich_help_panel=_NOTIFY
    ),
]
WebhookOption = Annotated[
    str | None,
    typer.Option(
        "--webhook",
        help="POST events as JSON to this URL (retried with backoff).",
        metavar="URL",
        rich_help_panel=_NOTIFY,
    ),
]
WebhookCaOption = Annotated[
    Path | None,
    typer.Option(
        "--webhook-ca-file", help="Trust only these CAs (PEM) for the webhook.", metavar="FILE", rich_help_panel=_NOTIFY
    ),
]


def _domain_key(text: str) -> str | None:
    from mtasts.check.inspect import normalize_domain

    name, _ = normalize_domain(text)
    return name


def _watched(domains: list[str] | None, file: Path | None, config: Path | None, interval: timedelta) -> list[Monitored]:
    """The domains to monitor, each once (the first interval given wins), in the order given."""
    found: dict[str, Monitored] = {}

    def add(text: str, every: timedelta, where: str) -> None:
        key = _domain_key(text)
        if key is None:
            fail(f"{where}{text!r} is not a valid domain name", ExitCode.USAGE)
        found.setdefault(key, Monitored(key, every))

    for text in domains or []:
        add(text, interval, "")
    if file is not None:
        for number, line in enumerate(_lines(file), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) > 2:
                fail(f"{file}:{number}: write DOMAIN [INTERVAL], not {line.strip()!r}", ExitCode.USAGE)
            every = interval
            if len(words) == 2:
                try:
                    every = parse_interval(words[1])
                except ValueError as exc:
                    fail(f"{file}:{number}: {exc}", ExitCode.USAGE)
            add(words[0], every, f"{file}:{number}: ")
    if config is not None:
        from mtasts.cli.publish._common import config_failed
        from mtasts.publish.config import ConfigError
        from mtasts.publish.snapshot import read_config

        try:
            configuration = read_config(config)
        except ConfigError as exc:
            config_failed(exc)
        for entry in configuration.domains:
            add(entry.name, interval, f"{config}: ")
    if not found:
        fail("give at least one domain (arguments, --file or --config)", ExitCode.USAGE)
    return list(found.values())


def _lines(file: Path) -> Iterator[str]:
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        fail(f"{file} is not UTF-8 text (byte {exc.start})")
    yield from text.splitlines()


def _settings(
    nameserver: str | None, ca_file: Path | None, timeout: float, https_port: int, smtp_port: int, refuse: bool
) -> NetworkSettings:
    from mtasts.cli.check import _ehlo_name

    if ca_file is not None:
        check_ca_file(ca_file)
    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(f"--nameserver {nameserver!r}: {exc}", ExitCode.USAGE)
    try:
        return NetworkSettings(
            nameserver=server,
            ca_file=ca_file,
            timeout=timeout,
            https_port=https_port,
            smtp_port=smtp_port,
            allow_private=not refuse,
            ehlo_name=_ehlo_name(),
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)


def _notifiers(
    mail_to: list[str] | None,
    mail_from: str,
    smtp: str,
    security: SmtpSecurity,
    smtp_user: str | None,
    password_file: Path | None,
    smtp_ca: Path | None,
    smtp_timeout: float,
    webhook: str | None,
    webhook_ca: Path | None,
) -> list[Notifier]:
    """The notifiers the options ask for, every mistake said before anything is checked."""
    from mtasts.monitor.notify import MailNotifier, WebhookNotifier
    from mtasts.monitor.webhook import WebhookTarget

    out: list[Notifier] = []
    if mail_to:
        try:
            compose(sender=mail_from, recipients=mail_to, subject="", body="", now=datetime.now(UTC))
        except ValueError as exc:
            fail(f"--mail-from/--mail-to: {exc}", ExitCode.USAGE)
        settings = smtp_settings(smtp, security, smtp_user, password_file, smtp_ca, smtp_timeout, os.environ)
        out.append(MailNotifier(settings, mail_from, tuple(mail_to)))
    if webhook is not None:
        if webhook_ca is not None and not webhook_ca.is_file():
            fail(f"cannot read the CA file {webhook_ca}: no such file")
        try:
            out.append(WebhookNotifier(WebhookTarget(webhook, ca_file=webhook_ca)))
        except ValueError as exc:
            fail(f"--webhook: {exc}", ExitCode.USAGE)
    return out


def _build(
    db: str | None,
    settings: NetworkSettings,
    notifiers: list[Notifier],
    silent_days: int,
    report_events: bool,
    concurrency: int,
    clock: Callable[[], datetime],
    stack: ExitStack,
) -> Monitor:
    from mtasts.check.inspect import Inspector
    from mtasts.monitor.history import SqlMonitorHistory
    from mtasts.monitor.rules import ReportRules
    from mtasts.monitor.service import Monitor
    from mtasts.store.errors import StoreError
    from mtasts.store.store import ReportStore

    store = open_store(db, create=True)
    assert isinstance(store, ReportStore)
    try:
        store.open()
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    stack.callback(store.close)
    return Monitor(
        SqlMonitorHistory(store),
        Inspector(settings, clock=clock, expiry_warning_days=14),
        reports=store if report_events else None,
        notifiers=notifiers,
        clock=clock,
        rules=ReportRules(silent_days=silent_days),
        concurrency=concurrency,
    )


def _now() -> datetime:
    return datetime.now(UTC)


# the shapes of mtasts.i18n.cli_messages, filled in here (English: the catalogue's identity)
_STATUS_LINES = {
    "ok": "%(domain)s: check ok; %(events)s",
    "warning": "%(domain)s: check warning; %(events)s",
    "error": "%(domain)s: check error; %(events)s",
}
_UNKNOWN_LINE = "%(domain)s: check unknown (%(reason)s); %(events)s"
_CHANGES = " (%(opened)s new, %(cleared)s cleared)"
_EVENT_LINES = {  # (opened, with a subject): the line of Transition.to_text
    (True, False): "NEW %(severity)s %(domain)s: %(code)s: %(message)s",
    (True, True): "NEW %(severity)s %(domain)s: %(code)s [%(about)s]: %(message)s",
    (False, False): "CLEARED %(severity)s %(domain)s: %(code)s: %(message)s",
    (False, True): "CLEARED %(severity)s %(domain)s: %(code)s [%(about)s]: %(message)s",
}


def _outcome_text(outcome: DomainOutcome) -> list[str]:
    """A domain's status line and a line per event that opened or cleared, in the reader's
    language (codes, names and subjects stay as they are; English as
    :meth:`~mtasts.monitor.events.Transition.to_text` says it, the log's line)."""
    tr = current()
    snapshot = outcome.run.snapshot
    values = {"domain": outcome.domain, "events": counted(len(outcome.open_events), "open event")}
    if not snapshot.conclusive:
        head = tr.gettext(_UNKNOWN_LINE) % {**values, "reason": tr.text(snapshot.inconclusive_reason)}
    elif snapshot.status in _STATUS_LINES:
        head = tr.gettext(_STATUS_LINES[snapshot.status]) % values
    else:  # not a status of mtasts.monitor.snapshot: said as it is
        head = f"{outcome.domain}: check {snapshot.status}; {values['events']}"
    opened = sum(1 for t in outcome.transitions if t.kind.value == "opened")
    if outcome.transitions:
        head += tr.gettext(_CHANGES) % {"opened": opened, "cleared": len(outcome.transitions) - opened}
    lines = [head]
    for t in outcome.transitions:
        shape = _EVENT_LINES[t.kind.value == "opened", bool(t.subject)]
        event = {
            "severity": tr.gettext(t.severity.value),
            "domain": t.domain,
            "code": t.code,
            "about": t.subject,
            "message": tr.text(t.message),
        }
        lines.append(printable(f"  {tr.gettext(shape) % event}"))  # a sender's name, a server's reply: text
    return lines


@app.command("run")
def run_command(
    domains: DomainsArgument = None,
    file: FileOption = None,
    config: ConfigOption = None,
    interval: IntervalOption = "1h",
    jitter: JitterOption = DEFAULT_JITTER,
    due_only: Annotated[
        bool,
        typer.Option(
            "--due-only/--all",
            help="Check only the domains whose interval has passed since their last run (--all: every one).",
            rich_help_panel=_DOMAINS,
        ),
    ] = True,
    db: DbOption = None,
    concurrency: ConcurrencyOption = 16,
    silent_days: SilentOption = 7,
    report_events: ReportEventsOption = True,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    refuse_private: RefusePrivateOption = False,
    https_port: HttpsPortOption = 443,
    smtp_port: SmtpPortOption = 25,
    mail_to: MailToOption = None,
    mail_from: MailFromOption = "mtasts@localhost",
    smtp: SmtpOption = DEFAULT_SMTP,
    security: SecurityOption = SmtpSecurity.STARTTLS,
    smtp_user: SmtpUserOption = None,
    password_file: PasswordFileOption = None,
    smtp_ca: SmtpCaOption = None,
    smtp_timeout: SmtpTimeoutOption = 30.0,
    webhook: WebhookOption = None,
    webhook_ca: WebhookCaOption = None,
    exit_status: Annotated[
        bool, typer.Option("--exit-status", help="Exit with status 1 when an event opened (for monitoring).")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the runs as one JSON document.")] = False,
) -> None:
    """Check the domains that are due once, store the runs, send the events that opened or
    cleared, and exit (for cron: run it every --interval). A notification that cannot be sent
    is kept and sent again by the next run."""
    every = _interval(interval)
    watched = _watched(domains, file, config, every)
    settings = _settings(nameserver, ca_file, timeout, https_port, smtp_port, refuse_private)
    notifiers = _notifiers(
        mail_to, mail_from, smtp, security, smtp_user, password_file, smtp_ca, smtp_timeout, webhook, webhook_ca
    )
    with ExitStack() as stack:
        monitor = _build(db, settings, notifiers, silent_days, report_events, concurrency, _now, stack)
        outcomes, deliveries = _guarded(lambda: run_async(_run_once(monitor, watched, jitter, due_only)))
    if json_output:
        sys.stdout.write(
            json_text(
                {
                    "runs": [o.to_dict() for o in outcomes],
                    "failed": [{"domain": d, "error": why} for d, why in monitor.failures],
                    "deliveries": [
                        {"channel": d.channel, "events": d.count, "error": d.error or None} for d in deliveries
                    ],
                }
            )
        )
    else:
        lines = [line for outcome in outcomes for line in _outcome_text(outcome)]
        if not outcomes:
            nothing = "nothing due: %(counted)s checked within their interval (--all checks them now)"
            lines.append(current().gettext(nothing) % {"counted": counted(len(watched), "domain")})
        sys.stdout.write("\n".join(lines) + "\n")
    for domain, why in monitor.failures:
        sys.stderr.write(f"mtasts: error: {domain}: {why}\n")
    for delivery in deliveries:
        if delivery.error:
            sys.stderr.write(f"mtasts: warning: {_delivery_warning(delivery)}\n")
    if monitor.failures:
        raise typer.Exit(int(ExitCode.CANNOT_RUN))
    if exit_status and any(t.kind.value == "opened" for o in outcomes for t in o.transitions):
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _delivery_warning(delivery: Delivery) -> str:
    """Why a channel's notifications were not sent and that they are kept, in the reader's
    language when the catalogue knows all of the error (else in English, whole, as an error
    line is: :func:`mtasts.cli.exitcodes.in_language`)."""
    kept = f"{plural(delivery.count, 'notification')} kept, sent again at the next run"
    english = f"{delivery.error} ({kept})"
    tr = current()
    error = in_language(delivery.error)
    if tr.tag == "en" or error == delivery.error:
        return english
    # the shapes of mtasts.i18n.cli_messages, filled in here: the error may hold " (" itself
    shape = "%(detail)s (%(count)s notification kept, sent again at the next run)"
    if delivery.count != 1:
        shape = "%(detail)s (%(count)s notifications kept, sent again at the next run)"
    return tr.gettext(shape) % {"detail": error, "count": delivery.count}


def _interval(text: str) -> timedelta:
    try:
        return parse_interval(text)
    except ValueError as exc:
        fail(f"--interval: {exc}", ExitCode.USAGE)


def _guarded(call: Callable[[], Any]) -> Any:
    """``call()``, a database failure on the way said in one line (exit 3)."""
    from mtasts.store.errors import StoreError

    try:
        return call()
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)


async def _run_once(
    monitor: Monitor, watched: list[Monitored], jitter: float, due_only: bool
) -> tuple[list[DomainOutcome], list[Any]]:
    from mtasts.monitor.schedule import due_domains
    from mtasts.store.errors import translate_store_errors

    with translate_store_errors(monitor.history.store.url):  # type: ignore[attr-defined]
        names = [item.domain for item in watched]
        if due_only:
            last = await asyncio.to_thread(monitor.history.last_run_times)
            now = monitor.clock()
            # a domain never checked is due at once (the daemon spreads those; a cron run does not)
            due, _ = due_domains(watched, last, now=now, start=now - MAX_INTERVAL, jitter=jitter)
            due_names = {item.domain for item in due}
            names = [name for name in names if name in due_names]  # in the order given
        outcomes = await monitor.run(names)
        deliveries = await monitor.deliver()
    return outcomes, deliveries


@app.command("serve")
def serve_command(
    domains: DomainsArgument = None,
    file: FileOption = None,
    config: ConfigOption = None,
    interval: IntervalOption = "1h",
    jitter: JitterOption = DEFAULT_JITTER,
    admin: Annotated[
        str | None,
        typer.Option("--admin", help="Serve Prometheus metrics on HOST:PORT (GET /metrics, /healthz).", metavar="ADDR"),
    ] = None,
    db: DbOption = None,
    concurrency: ConcurrencyOption = 16,
    silent_days: SilentOption = 7,
    report_events: ReportEventsOption = True,
    nameserver: NameserverOption = None,
    ca_file: CaFileOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    refuse_private: RefusePrivateOption = False,
    https_port: HttpsPortOption = 443,
    smtp_port: SmtpPortOption = 25,
    mail_to: MailToOption = None,
    mail_from: MailFromOption = "mtasts@localhost",
    smtp: SmtpOption = DEFAULT_SMTP,
    security: SecurityOption = SmtpSecurity.STARTTLS,
    smtp_user: SmtpUserOption = None,
    password_file: PasswordFileOption = None,
    smtp_ca: SmtpCaOption = None,
    smtp_timeout: SmtpTimeoutOption = 30.0,
    webhook: WebhookOption = None,
    webhook_ca: WebhookCaOption = None,
) -> None:
    """Run as a daemon: check each domain every --interval (jittered; domains never checked
    are spread over the first interval × jitter), send events as they open and clear, retry
    notifications that failed, and serve metrics with --admin. Stops on SIGTERM or Ctrl-C."""
    from mtasts.monitor.metrics import AdminServer, render_metrics
    from mtasts.monitor.service import Scheduler
    from mtasts.resolver.metrics import parse_admin

    every = _interval(interval)
    watched = _watched(domains, file, config, every)
    address = None
    if admin is not None:
        try:
            address = parse_admin(admin)
        except ValueError as exc:
            fail(f"--admin: {exc}", ExitCode.USAGE)
    settings = _settings(nameserver, ca_file, timeout, https_port, smtp_port, refuse_private)
    notifiers = _notifiers(
        mail_to, mail_from, smtp, security, smtp_user, password_file, smtp_ca, smtp_timeout, webhook, webhook_ca
    )
    log_to_stderr("mtasts monitor: %(message)s", {"mtasts.monitor": logging.INFO})  # not the libraries' lines
    with ExitStack() as stack:
        monitor = _build(db, settings, notifiers, silent_days, report_events, concurrency, _now, stack)

        async def main() -> None:
            stop, tr = asyncio.Event(), current()
            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, stop.set)
            server = None
            if address is not None:

                def page() -> str:
                    return render_metrics(monitor.statuses, now=_now(), failed_runs=monitor.errors)

                server = AdminServer(page, *address)
                try:
                    await server.start()
                except OSError as exc:
                    fail(f"--admin {admin}: cannot listen: {exc.strerror or exc}")
                metrics = {"url": f"http://{server.address}/metrics"}
                sys.stderr.write(f"mtasts: {tr.gettext('monitor metrics on %(url)s') % metrics}\n")
            watching = {"counted": counted(len(watched), "domain")}
            sys.stderr.write(f"mtasts: {tr.gettext('monitoring %(counted)s') % watching}\n")
            sys.stderr.flush()
            try:
                await Scheduler(monitor, watched, clock=_now, jitter=jitter).serve(stop)
            finally:
                if server is not None:
                    await server.stop()

        _guarded(lambda: run_async(main()))

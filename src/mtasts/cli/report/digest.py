"""``mtasts report digest``: a summary for cron, printed or mailed.

The period ends today (UTC) unless ``--until`` says otherwise, so a digest run every morning
notices reports that stopped coming (the silence alerts of :func:`mtasts.report.analysis.digest`).
Mail goes through :mod:`mtasts.net.mailer`: STARTTLS with a verified certificate by default,
implicit TLS or (explicitly) none, AUTH with a password read from a file or the environment,
never from the command line (where ``ps`` and the shell history would show it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.report._common import (
    DbOption,
    DomainOption,
    JsonOption,
    json_text,
    normalise_domain,
    reading,
)
from mtasts.core.tlsrpt_report import SenderTwice
from mtasts.i18n import current
from mtasts.i18n.words import plural
from mtasts.net.mailer import DEFAULT_PORTS, MailError, MailFailureKind, SmtpSecurity, SmtpSettings, compose, send
from mtasts.report.analysis import digest

if TYPE_CHECKING:  # the store loads when the command runs
    from mtasts.store.interface import ReportStoreProtocol

PASSWORD_ENV: Final = "MTASTS_SMTP_PASSWORD"  # noqa: S105 (the variable's name, not a password)
DEFAULT_SMTP: Final = "localhost"

# What to try next, after the mailer's own words, per kind of failure.
HINTS: Final[Mapping[MailFailureKind, str]] = {
    MailFailureKind.UNTRUSTED: "for a private CA pass --smtp-ca-file FILE",
    MailFailureKind.NO_STARTTLS: "for implicit TLS use --smtp-security tls; "
    "for a local relay without TLS, --smtp-security none",
    MailFailureKind.NO_AUTH: "drop --smtp-user if this server takes mail without it",
}


def digest_command(
    days: Annotated[
        int,
        typer.Option(
            "--days",
            min=1,
            help="The period: the N days to --until (2: yesterday, whose reports came overnight, and today).",
        ),
    ] = 2,
    baseline_days: Annotated[int, typer.Option("--baseline-days", min=1, help="Compare with N days before it.")] = 7,
    silent_days: Annotated[
        int,
        typer.Option(
            "--silent-days",
            min=1,
            help="Alert when a domain, or a reporter that used to send daily, has no report for the N days to --until.",
        ),
    ] = 3,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last day of the period (YYYY-MM-DD); default: today (UTC).", metavar="DAY"),
    ] = None,
    domain: DomainOption = None,
    mail_to: Annotated[
        list[str] | None, typer.Option("--mail-to", help="Mail the digest to this address (repeatable).")
    ] = None,
    mail_from: Annotated[
        str, typer.Option("--mail-from", help="Sender address of the digest mail.")
    ] = "mtasts@localhost",
    smtp: Annotated[
        str,
        typer.Option(
            "--smtp",
            help="SMTP server HOST[:PORT] ([IPv6]:PORT for IPv6); "
            "the port defaults to 587 (starttls), 465 (tls) or 25 (none).",
        ),
    ] = DEFAULT_SMTP,
    security: Annotated[
        SmtpSecurity,
        typer.Option(
            "--smtp-security",
            case_sensitive=False,
            help="starttls: required, certificate verified; tls: implicit TLS (port 465); "
            "none: plain text, for a local relay (no AUTH).",
        ),
    ] = SmtpSecurity.STARTTLS,
    starttls: Annotated[
        bool, typer.Option("--starttls", hidden=True, help="Same as --smtp-security starttls (the default).")
    ] = False,
    smtp_user: Annotated[
        str | None,
        typer.Option(
            "--smtp-user",
            help=f"Log in as USER; the password: --smtp-password-file or ${PASSWORD_ENV}.",
            metavar="USER",
        ),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--smtp-password-file", help="Read the SMTP password from FILE (its first line).", metavar="FILE"),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--smtp-ca-file", help="Trust only the CA certificates in FILE (PEM) for the SMTP server.", metavar="FILE"
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--smtp-timeout", min=1, help="Seconds to wait for the SMTP server.", metavar="SECONDS")
    ] = 30.0,
    alerts_exit: Annotated[
        bool, typer.Option("--exit-status", help="Exit with status 1 when there is an alert (for monitoring).")
    ] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """A summary for cron: the last day(s) to today against the week before, flagging a failure
    spike, a newly failing sender, a reporter that stopped and a domain with no reports.
    Printed, or mailed with --mail-to."""
    # the command line first: a mistake in it is found before the database is opened
    try:
        last_day = date.fromisoformat(until) if until else None
    except ValueError:
        fail(current().text(f"--until {until!r} is not a date (YYYY-MM-DD)"), ExitCode.USAGE)
    settings = None
    if mail_to:
        if starttls and security is not SmtpSecurity.STARTTLS:
            fail(current().text(f"--starttls contradicts --smtp-security {security.value}"), ExitCode.USAGE)
        try:
            compose(sender=mail_from, recipients=mail_to, subject="", body="", now=datetime.now(UTC))
        except ValueError as exc:  # a line break in an address, or an address the header refuses
            fail(current().text(f"--mail-from/--mail-to: {exc}"), ExitCode.USAGE)
        settings = smtp_settings(smtp, security, smtp_user, password_file, ca_file, timeout, os.environ)
    wanted = normalise_domain(domain)
    now = datetime.now(UTC)
    period_end = last_day or now.date()
    period_start = period_end - timedelta(days=days - 1)
    with reading(db) as store:
        policies = store.policy_rows(domain=wanted)
        failures = store.failure_rows(domain=wanted)
        # what the store knows of sessions counted twice, so the digest counts as the summary does
        wider = store.rollup(since=period_start - timedelta(days=baseline_days), domain=wanted)
        senders_twice = _senders_twice(store, period_start, period_end, wanted)
    result = digest(
        policies,
        failures,
        until=period_end,
        days=days,
        baseline_days=baseline_days,
        silent_days=silent_days,
        days_twice=wider.days_twice,
        senders_twice=senders_twice,
    )
    # the text (printed or mailed) in the language of --lang / LANG, line by line; the JSON stays English
    text = json_text(result.to_dict()) if json_output else "\n".join(map(current().text, result.to_text().split("\n")))
    if settings is not None:
        flag = f"[{plural(len(result.alerts), 'alert')}] " if result.alerts else ""
        message = compose(
            sender=mail_from,
            recipients=mail_to or [],
            subject=f"{flag}TLSRPT digest {result.since} to {result.until}",
            body=text,
            now=now,
        )
        try:
            send(message, settings)
        except MailError as exc:
            hint = HINTS.get(exc.kind)
            if exc.kind is MailFailureKind.UNREACHABLE and smtp == DEFAULT_SMTP:
                hint = (
                    f"the default is {settings.address} with {settings.security.value}: name your server with "
                    "--smtp HOST[:PORT], or for a local relay without TLS: --smtp localhost:25 --smtp-security none"
                )
            tr = current()
            fail(tr.text(f"cannot send the digest: {exc.message}") + (tr.text(f" ({hint})") if hint else ""))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if alerts_exit and result.alerts:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _senders_twice(store: ReportStoreProtocol, since: date, until: date, domain: str | None) -> list[SenderTwice]:
    """The sessions each sender's reports of ``since`` to ``until`` counted twice. The store
    keeps them per sender from a day on, not per day, so a period that ends before the newest
    report (``--until`` in the past) is the roll-up from ``since`` less the one after ``until``."""
    period = store.rollup(since=since, domain=domain)
    if not any(row[1] > until for row in period.days):
        return list(period.senders_twice)
    later = {
        (key, org): (ok, bad)
        for key, org, ok, bad in store.rollup(since=until + timedelta(days=1), domain=domain).senders_twice
    }
    found = []
    for key, org, ok, bad in period.senders_twice:
        ok_later, bad_later = later.get((key, org), (0, 0))
        if ok > ok_later or bad > bad_later:
            found.append((key, org, ok - ok_later, bad - bad_later))
    return found


def smtp_settings(
    smtp: str,
    security: SmtpSecurity,
    user: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    timeout: float,
    environ: Mapping[str, str],
) -> SmtpSettings:
    """The submission settings from the options and ``environ``, or one line and its exit
    status: a contradiction is a usage error, a file that cannot be read "could not run".

    The password comes from ``--smtp-password-file`` (its first line, so a trailing newline
    does not count), else from ``$MTASTS_SMTP_PASSWORD``; it is only read with ``--smtp-user``."""
    host, port = parse_smtp_server(smtp, DEFAULT_PORTS[security])
    if security is SmtpSecurity.NONE:
        if user is not None:
            fail(
                current().text(
                    "--smtp-user needs TLS: AUTH is never sent over an unencrypted connection (--smtp-security none)"
                ),
                ExitCode.USAGE,
            )
        if ca_file is not None:
            fail(current().text("--smtp-ca-file needs TLS; it means nothing with --smtp-security none"), ExitCode.USAGE)
    if password_file is not None and user is None:
        fail(current().text("--smtp-password-file needs --smtp-user (the name to log in as)"), ExitCode.USAGE)
    password = None
    if user is not None:
        if password_file is not None:
            password = _read_password(password_file)
        elif environ.get(PASSWORD_ENV):
            password = environ[PASSWORD_ENV]
        else:
            fail(
                current().text(f"--smtp-user needs a password: --smtp-password-file FILE or ${PASSWORD_ENV}"),
                ExitCode.USAGE,
            )
    if ca_file is not None and not ca_file.is_file():
        fail(
            current().text(
                f"cannot read the CA file {ca_file}: {'it is a folder' if ca_file.is_dir() else 'no such file'}"
            )
        )
    return SmtpSettings(host, port, security, user, password, ca_file, timeout)


def _read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        fail(current().text(f"cannot read the password file {path}: {reason}"))
    password = text.splitlines()[0] if text else ""
    if not password:
        fail(current().text(f"the password file {path} is empty (its first line is the password)"))
    return password


def parse_smtp_server(text: str, default_port: int = 25) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]``, ``[IPv6]:PORT`` or a bare IPv6 address → (host, port);
    anything else is a usage error (:attr:`ExitCode.USAGE`), said in one line."""
    import ipaddress

    value = text.strip()
    host, port = value, str(default_port)
    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            closed = ""
        if not closed or (rest and not rest.startswith(":")):
            fail(
                current().text(f"--smtp {text!r}: write an IPv6 address in brackets, e.g. [2001:db8::25]:587"),
                ExitCode.USAGE,
            )
        port = rest[1:] if rest else port
    elif value.count(":") > 1:  # a bare IPv6 address: no port can be told apart
        try:
            host = str(ipaddress.IPv6Address(value))
        except ValueError:
            fail(current().text(f"--smtp {text!r} is not HOST[:PORT] (IPv6: [ADDRESS]:PORT)"), ExitCode.USAGE)
    elif ":" in value:
        host, _, port = value.partition(":")
    if not host or any(c.isspace() or c in "/@" for c in host):
        fail(current().text(f"--smtp {text!r}: {host!r} is not a host name or address"), ExitCode.USAGE)
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        fail(current().text(f"--smtp {text!r}: {port!r} is not a port number (1-65535)"), ExitCode.USAGE)
    return host, int(port)

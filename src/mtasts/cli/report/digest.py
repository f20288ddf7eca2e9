"""``mtasts report digest``: a summary for cron, printed or mailed."""

from __future__ import annotations

import smtplib
import sys
from datetime import date
from email.message import EmailMessage
from typing import Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.report._common import (
    DbOption,
    DomainOption,
    JsonOption,
    json_text,
    normalise_domain,
    reading,
    today,
)
from mtasts.report.analysis import (
    digest,
)


def digest_command(
    days: Annotated[int, typer.Option("--days", min=1, help="The period: the last N days of reports.")] = 1,
    baseline_days: Annotated[int, typer.Option("--baseline-days", min=1, help="Compare with N days before it.")] = 7,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last day of the period (YYYY-MM-DD); default: the newest report.", metavar="DAY"),
    ] = None,
    domain: DomainOption = None,
    mail_to: Annotated[
        list[str] | None, typer.Option("--mail-to", help="Mail the digest to this address (repeatable).")
    ] = None,
    mail_from: Annotated[
        str, typer.Option("--mail-from", help="Sender address of the digest mail.")
    ] = "mtasts@localhost",
    smtp: Annotated[
        str, typer.Option("--smtp", help="SMTP server HOST[:PORT] to send through ([IPv6]:PORT for IPv6).")
    ] = "localhost:25",
    starttls: Annotated[bool, typer.Option("--starttls", help="Use STARTTLS with the SMTP server.")] = False,
    alerts_exit: Annotated[
        bool, typer.Option("--exit-status", help="Exit with status 1 when there is an alert (for monitoring).")
    ] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """A summary for cron: the last day(s) against the week before, flagging a failure spike or a
    newly failing sender. Printed, or mailed with --mail-to."""
    # the command line first: a mistake in it is found before the database is opened
    try:
        last_day = date.fromisoformat(until) if until else None
    except ValueError:
        fail(f"--until {until!r} is not a date (YYYY-MM-DD)", ExitCode.USAGE)
    server = parse_smtp_server(smtp) if mail_to else None
    message = EmailMessage()
    if mail_to:
        try:
            message["From"] = mail_from
            message["To"] = ", ".join(mail_to)
        except ValueError as exc:  # a line break in an address, or an address the header refuses
            fail(f"--mail-from/--mail-to: {exc}", ExitCode.USAGE)
    wanted = normalise_domain(domain)
    with reading(db) as store:
        policies = store.policy_rows(domain=wanted)
        failures = store.failure_rows(domain=wanted)
    last = last_day or max((r.day for r in policies), default=today())
    result = digest(policies, failures, until=last, days=days, baseline_days=baseline_days)
    text = json_text(result.to_dict()) if json_output else result.to_text()
    if server is not None:
        flag = f"[{len(result.alerts)} alert(s)] " if result.alerts else ""
        message["Subject"] = f"{flag}TLSRPT digest {result.since} to {result.until}"
        message.set_content(text)
        host, port = server
        try:
            with smtplib.SMTP(host, port, timeout=30) as client:
                if starttls:
                    client.starttls()
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            fail(f"cannot send the digest through {smtp}: {reason}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if alerts_exit and result.alerts:
        raise typer.Exit(int(ExitCode.PROBLEMS))


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
            fail(f"--smtp {text!r}: write an IPv6 address in brackets, e.g. [2001:db8::25]:587", ExitCode.USAGE)
        port = rest[1:] if rest else port
    elif value.count(":") > 1:  # a bare IPv6 address: no port can be told apart
        try:
            host = str(ipaddress.IPv6Address(value))
        except ValueError:
            fail(f"--smtp {text!r} is not HOST[:PORT] (IPv6: [ADDRESS]:PORT)", ExitCode.USAGE)
    elif ":" in value:
        host, _, port = value.partition(":")
    if not host or any(c.isspace() or c in "/@" for c in host):
        fail(f"--smtp {text!r}: {host!r} is not a host name or address", ExitCode.USAGE)
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        fail(f"--smtp {text!r}: {port!r} is not a port number (1-65535)", ExitCode.USAGE)
    return host, int(port)

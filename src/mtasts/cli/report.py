"""``mtasts report``: read, store and understand TLSRPT reports (RFC 8460)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import smtplib
import sys
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from mtasts.cli.output import console, print_json, print_problems
from mtasts.core.problems import ParseError, Severity
from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.report.analysis import (
    RESULT_TYPE_HELP,
    DomainSummary,
    Readiness,
    ReadinessVerdict,
    SenderIssue,
    digest,
    failing_senders_rollup,
    readiness_rollup,
    sparkline,
    summarise_rollup,
)
from mtasts.report.mail import parse_any
from mtasts.report.sources import iter_sources

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic), IMAP and the server load when a command needs them
    from mtasts.report.ingest import IngestOutcome
    from mtasts.store.store import ReportStore

app = typer.Typer(
    help="Read, store and understand TLSRPT reports (RFC 8460): parse, ingest, summary, export, serve, digest.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path, postgresql://...) or SQLite file. "
        "Default: $MTASTS_DB, else reports.sqlite3 in the user data directory.",
        metavar="URL",
    ),
]


DomainOption = Annotated[str | None, typer.Option("--domain", help="Only this policy domain.", metavar="DOMAIN")]
DaysOption = Annotated[
    int | None, typer.Option("--days", min=1, help="Only the last N days (default: everything stored).", metavar="N")
]


def _today() -> date:
    return datetime.now(UTC).date()


def _since(days: int | None) -> date | None:
    return None if days is None else _today() - timedelta(days=days - 1)


def _domain(domain: str | None) -> str | None:
    return None if domain is None else domain.strip().rstrip(".").lower()


def _store(db: str | None) -> ReportStore:
    from mtasts.store.store import ReportStore, default_db_url

    return ReportStore(db or default_db_url(os.environ))


def _cannot_read(err: Console, path: Path, exc: OSError) -> None:
    err.print(f"[severity.error]error:[/] cannot read {path}: {exc.strerror or exc}")


@app.command("parse")
def parse_command(
    files: Annotated[list[Path], typer.Argument(help="Report files: JSON, gzip, e-mails (.eml), mbox or Maildir.")],
    json_output: JsonOption = False,
) -> None:
    """Read reports and print them normalised. Exit status 1 when any input is not a report."""
    out, err = console(), console(stderr=True)
    reports: list[tuple[str, TlsRptReport]] = []
    failed = False
    for path in files:
        try:
            for source in iter_sources(path):
                try:
                    reports.extend((source.label, report) for report in parse_any(source.data))
                except ParseError as exc:
                    failed = True
                    print_problems(err, exc.problems, subject=source.label)
                    err.print(f"  in {source.label}", style="where")
        except OSError as exc:
            failed = True
            _cannot_read(err, path, exc)
    if json_output:
        print_json([{"source": label, **report.to_dict()} for label, report in reports])
    else:
        for label, report in reports:
            out.print(_report_table(label, report))
            warnings = [w for w in report.warnings if w.severity is not Severity.ERROR]
            if warnings:
                print_problems(out, warnings)
    if failed:
        raise typer.Exit(1)


def _report_table(label: str, report: TlsRptReport) -> Table:
    dates = report.to_dict()["date_range"]
    table = Table(
        title=f"[heading]{report.organization_name}[/] — {report.report_id or '(no report-id)'}",
        caption=f"{dates['start']} → {dates['end']} · {label}",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("policy", no_wrap=True)
    table.add_column("domain")
    table.add_column("ok", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("failures: result type ×sessions, sending MTA → receiving MX")
    for policy in report.policies:
        lines = []
        for detail in policy.failure_details:
            line = f"[severity.error]{detail.result_type}[/] ×{detail.failed_session_count}"
            ends = [detail.sending_mta_ip or "", detail.receiving_mx_hostname or detail.receiving_ip or ""]
            if any(ends):
                line += f"  {ends[0] or '?'} → {ends[1] or '?'}"
            if detail.failure_reason_code:
                line += f"\n  [code]{detail.failure_reason_code}[/]"
            lines.append(line)
        table.add_row(
            policy.policy_type.value,
            policy.policy_domain or "(none)",
            str(policy.total_successful),
            f"[severity.error]{policy.total_failure}[/]" if policy.total_failure else "0",
            "\n".join(lines),
        )
    return table


def _ingest_path(
    store: ReportStore, path: Path, outcomes: list[IngestOutcome], err: Console, json_output: bool
) -> bool:
    """Ingest one PATH into ``outcomes``; True when something could not be ingested."""
    from mtasts.report.ingest import ingest_paths

    failed = False
    try:
        for outcome in ingest_paths(store, [path]):
            outcomes.append(outcome)
            if outcome.error is not None:
                failed = True
                if not json_output:
                    print_problems(err, outcome.error.errors[:1], subject=None)
                    err.print(f"  in {outcome.label}", style="where")
    except OSError as exc:
        _cannot_read(err, path, exc)
        return True
    return failed


@app.command("ingest")
def ingest_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Report files, e-mails, mbox files, Maildir folders or directories.")
    ] = None,
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            help="Ingest from an IMAP mailbox: imaps://USER[:PASSWORD]@HOST[:PORT]/MAILBOX[?move=FOLDER] "
            "(password also from $MTASTS_IMAP_PASSWORD). Messages are flagged (or moved) after commit.",
            metavar="URL",
        ),
    ] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store reports; a report already stored is recognised and skipped. Exit status 1 when an
    input is not a report (it is left unprocessed: a Maildir message stays in new/)."""
    out, err = console(), console(stderr=True)
    if not paths and not imap:
        err.print("[severity.error]error:[/] give at least one PATH, or --imap URL")
        raise typer.Exit(2)
    outcomes: list[IngestOutcome] = []
    failed = False
    if imap:
        from mtasts.report.imap import ImapError, ingest_imap, parse_imap_url

        try:
            settings = parse_imap_url(imap, os.environ)
        except ValueError as exc:
            err.print(f"[severity.error]error:[/] {exc}")
            raise typer.Exit(2) from exc
        with _store(db) as store:
            try:
                outcomes.extend(asyncio.run(ingest_imap(store, settings)))
            except (OSError, ImapError, TimeoutError) as exc:
                err.print(f"[severity.error]error:[/] IMAP {settings.host}:{settings.port}: {exc}")
                raise typer.Exit(1) from exc
        for outcome in outcomes:
            if outcome.error is not None:
                failed = True
                if not json_output:
                    print_problems(err, outcome.error.errors[:1], subject=None)
                    err.print(f"  in {outcome.label}", style="where")
    if paths:
        with _store(db) as store:
            for path in paths:
                failed = _ingest_path(store, path, outcomes, err, json_output) or failed
    stored = sum(o.stored for o in outcomes)
    duplicates = sum(o.duplicates for o in outcomes)
    rejected = sum(1 for o in outcomes if o.error is not None)
    if json_output:
        print_json(
            {
                "stored": stored,
                "duplicates": duplicates,
                "rejected": rejected,
                "sources": [
                    {
                        "source": o.label,
                        "stored": o.stored,
                        "duplicates": o.duplicates,
                        "error": None if o.error is None else {"code": o.error.code, "message": o.error.message},
                    }
                    for o in outcomes
                ],
            }
        )
    else:
        out.print(
            f"[ok]{stored}[/] report(s) stored, {duplicates} already stored, "
            f"{'[severity.error]' if rejected else ''}{rejected}{'[/]' if rejected else ''} input(s) rejected"
        )
    if failed:
        raise typer.Exit(1)


_VERDICT_STYLE = {
    ReadinessVerdict.READY: "ok",
    ReadinessVerdict.ALMOST: "severity.warning",
    ReadinessVerdict.NOT_READY: "severity.error",
    ReadinessVerdict.NO_POLICY_SEEN: "severity.warning",
    ReadinessVerdict.TOO_FEW_SESSIONS: "code",
    ReadinessVerdict.NO_DATA: "code",
}


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}" if rate < 1 else "100%"


@app.command("summary")
def summary_command(
    domain: DomainOption = None,
    days: DaysOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """What the stored reports say: success per domain and day, who fails, how, and since when."""
    since, wanted = _since(days), _domain(domain)
    with _store(db) as store:
        rollup = store.rollup(since=since, domain=wanted)  # summed in the database
    summaries = summarise_rollup(rollup)
    senders = failing_senders_rollup(rollup)
    until = _today() if days is not None else None
    verdicts = {v.policy_domain: v for v in readiness_rollup(rollup, until=until, days=days or 30)}
    if json_output:
        print_json(
            {
                "since": None if since is None else since.isoformat(),
                "domains": [{**s.to_dict(), "readiness": verdicts[s.policy_domain].to_dict()} for s in summaries],
                "failing_senders": [issue.to_dict() for issue in senders],
            }
        )
        return
    out = console()
    if not summaries:
        out.print("No reports stored" + (" for this selection" if since or wanted else "") + ".")
        out.print("Store some with [heading]mtasts report ingest PATH[/] (files, e-mails, mbox, Maildir).")
        return
    out.print(_domains_table(summaries, verdicts))
    if senders:
        out.print(_senders_table(senders))
        out.print(_result_types_table(summaries))
    else:
        out.print("[ok]No sender reported a failed TLS session.[/]")


def _domains_table(summaries: list[DomainSummary], verdicts: dict[str | None, Readiness]) -> Table:
    table = Table(title="TLS sessions by policy domain", title_justify="left")
    table.add_column("domain")
    table.add_column("ok", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("success", justify="right")
    table.add_column("daily success (30 days)", no_wrap=True)
    table.add_column("last report")
    table.add_column("enforce?")
    for summary in summaries:
        verdict = verdicts[summary.policy_domain]
        table.add_row(
            summary.policy_domain or "(none)",
            str(summary.totals.successful),
            f"[severity.error]{summary.totals.failed}[/]" if summary.totals.failed else "0",
            _rate(summary.totals.rate),
            sparkline(summary.daily, until=verdict.until),
            verdict.until.isoformat(),
            f"[{_VERDICT_STYLE[verdict.verdict]}]{verdict.verdict.value}[/]",
        )
    return table


def _counts(counts: dict[str, int] | object, limit: int = 3) -> str:
    assert isinstance(counts, dict)
    items = list(counts.items())
    text = ", ".join(f"{name} ×{count}" for name, count in items[:limit])
    return text + (f", +{len(items) - limit} more" if len(items) > limit else "")


def _senders_table(senders: list[SenderIssue]) -> Table:
    table = Table(title="Senders to work with", title_justify="left")
    table.add_column("domain")
    table.add_column("sender")
    table.add_column("failed", justify="right")
    table.add_column("how")
    table.add_column("since")
    table.add_column("last")
    table.add_column("from / to")
    for issue in senders:
        ends = " → ".join(
            part for part in (_counts(dict(issue.sending_ips), 2), _counts(dict(issue.receiving_mxs), 2)) if part
        )
        how = _counts(dict(issue.result_types)) or "(no failure details)"
        if issue.reasons:
            how += "\n[code]" + "; ".join(issue.reasons[:2]) + "[/]"
        table.add_row(
            issue.policy_domain or "(none)",
            issue.organization_name,
            f"[severity.error]{issue.failed_sessions}[/]",
            how,
            issue.first_failure.isoformat(),
            issue.last_failure.isoformat(),
            ends,
        )
    return table


def _result_types_table(summaries: list[DomainSummary]) -> Table:
    table = Table(title="Failures by result type", title_justify="left")
    table.add_column("domain")
    table.add_column("result type")
    table.add_column("sessions", justify="right")
    table.add_column("what it means")
    for summary in summaries:
        for kind, count in summary.by_result_type.items():
            table.add_row(
                summary.policy_domain or "(none)",
                f"[severity.error]{kind}[/]",
                str(count),
                RESULT_TYPE_HELP.get(kind, "not in the IANA registry: ask the sender"),
            )
    return table


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


CSV_COLUMNS = (
    "day",
    "start",
    "end",
    "organization_name",
    "report_id",
    "policy_type",
    "policy_domain",
    "total_successful",
    "total_failure",
    "result_type",
    "failed_session_count",
    "sending_mta_ip",
    "receiving_mx_hostname",
    "receiving_ip",
    "failure_reason_code",
)


@app.command("export")
def export_command(
    format_: Annotated[ExportFormat, typer.Option("--format", help="csv: one row per policy and failure detail.")],
    domain: DomainOption = None,
    days: DaysOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    db: DbOption = None,
) -> None:
    """Export the stored reports (normalised) as CSV or JSON."""
    since, wanted = _since(days), _domain(domain)
    with _store(db) as store:
        stored = list(store.reports(since=since, domain=wanted))
    if format_ is ExportFormat.JSON:
        text = _json_text(
            [
                {**item.report.to_dict(), "source": item.source, "received_at": item.received_at.isoformat()}
                for item in stored
            ]
        )
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for item in stored:
            report = item.report.to_dict()
            head = [item.report.day.isoformat(), report["date_range"]["start"], report["date_range"]["end"]]
            head += [report["organization_name"], report["report_id"]]
            for policy in report["policies"]:
                if wanted is not None and policy["policy_domain"] != wanted:
                    continue
                row = [*head, policy["policy_type"], policy["policy_domain"] or ""]
                row += [policy["total_successful"], policy["total_failure"]]
                details = policy["failure_details"] or [None]
                for detail in details:
                    tail = (
                        ["", "", "", "", "", ""]
                        if detail is None
                        else [
                            detail["result_type"],
                            detail["failed_session_count"],
                            detail["sending_mta_ip"] or "",
                            detail["receiving_mx_hostname"] or "",
                            detail["receiving_ip"] or "",
                            detail["failure_reason_code"] or "",
                        ]
                    )
                    writer.writerow([*row, *tail])
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")


def _json_text(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@app.command("serve")
def serve_command(
    cert: Annotated[Path | None, typer.Option("--cert", help="TLS certificate chain (PEM).", metavar="FILE")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="TLS private key (PEM).", metavar="FILE")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8443,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option("--allow-domain", help="Accept reports only for these policy domains (repeatable).", metavar="D"),
    ] = None,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body, in bytes.")] = 4 * 1024 * 1024,
    rate: Annotated[float, typer.Option("--rate", help="Reports per minute per client (burst: --burst).")] = 60.0,
    burst: Annotated[int, typer.Option("--burst", help="Reports a client may send at once.")] = 20,
    no_tls: Annotated[
        bool, typer.Option("--no-tls", help="Serve plain HTTP (only behind a TLS-terminating reverse proxy).")
    ] = False,
    trust_proxy: Annotated[
        bool, typer.Option("--trust-proxy", help="Take the client address from X-Forwarded-For (from 127.0.0.1).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Receive reports over HTTPS (RFC 8460 §5.4): POST application/tlsrpt+gzip or +json, reply 201."""
    err = console(stderr=True)
    if not no_tls and (cert is None or key is None):
        err.print("[severity.error]error:[/] give --cert and --key (RFC 8460 §5.4 requires HTTPS), or --no-tls")
        raise typer.Exit(2)
    from mtasts.report.server import EndpointSettings, ReportServer, parse_domains

    settings = EndpointSettings(
        max_body=max_body,
        rate_per_minute=rate,
        burst=burst,
        allowed_domains=parse_domains(allow_domain),
        trust_proxy_headers=trust_proxy,
    )
    server = ReportServer(
        _store(db),
        host=host,
        port=port,
        certfile=None if no_tls else cert,
        keyfile=None if no_tls else key,
        settings=settings,
    )

    async def run() -> None:
        await server.start()
        where = "{}://{}:{}/".format("http" if no_tls else "https", *server.address)
        err.print(f"[ok]listening[/] on {where}; Ctrl-C stops")
        try:
            await server.serve_forever()
        finally:
            await server.stop()

    try:
        asyncio.run(run())
    except OSError as exc:
        err.print(f"[severity.error]error:[/] cannot serve on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(1) from exc


@app.command("digest")
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
    smtp: Annotated[str, typer.Option("--smtp", help="SMTP server HOST[:PORT] to send through.")] = "localhost:25",
    starttls: Annotated[bool, typer.Option("--starttls", help="Use STARTTLS with the SMTP server.")] = False,
    alerts_exit: Annotated[
        bool, typer.Option("--exit-status", help="Exit with status 3 when there is an alert (for monitoring).")
    ] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """A summary for cron: the last day(s) against the week before, flagging a failure spike or a
    newly failing sender. Printed, or mailed with --mail-to."""
    err = console(stderr=True)
    wanted = _domain(domain)
    with _store(db) as store:
        policies = store.policy_rows(domain=wanted)
        failures = store.failure_rows(domain=wanted)
    try:
        last = date.fromisoformat(until) if until else max((r.day for r in policies), default=_today())
    except ValueError as exc:
        err.print(f"[severity.error]error:[/] --until {until!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(2) from exc
    result = digest(policies, failures, until=last, days=days, baseline_days=baseline_days)
    text = _json_text(result.to_dict()) if json_output else result.to_text()
    if mail_to:
        message = EmailMessage()
        message["From"] = mail_from
        message["To"] = ", ".join(mail_to)
        flag = f"[{len(result.alerts)} alert(s)] " if result.alerts else ""
        message["Subject"] = f"{flag}TLSRPT digest {result.since} to {result.until}"
        message.set_content(text)
        host, _, port = smtp.rpartition(":") if ":" in smtp else (smtp, "", "25")
        try:
            with smtplib.SMTP(host, int(port), timeout=30) as client:
                if starttls:
                    client.starttls()
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            err.print(f"[severity.error]error:[/] cannot send the digest through {smtp}: {exc}")
            raise typer.Exit(1) from exc
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if alerts_exit and result.alerts:
        raise typer.Exit(3)

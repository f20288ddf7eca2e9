"""``mtasts report``: read, store and understand TLSRPT reports (RFC 8460)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import smtplib
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mtasts.cli.exitcodes import ExitCode, fail
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


def _store(db: str | None, *, create: bool = True) -> ReportStore:
    """The store named by ``--db`` (else ``$MTASTS_DB``, else the default file), not opened yet.
    A URL mtasts cannot use is a usage error, said before anything is touched."""
    from mtasts.store.errors import UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url

    try:
        return ReportStore(db or default_db_url(os.environ), create=create)
    except UnsupportedDatabase as exc:
        fail(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}", ExitCode.USAGE)


@contextlib.contextmanager
def _reading(db: str | None) -> Iterator[ReportStore]:
    """The store opened for a read-only command (``summary``, ``export``, ``digest``): it creates
    no database and no folder, and says so when there is none; a database that cannot be used
    (unreachable, missing, locked, unreadable), now or while reading, ends the command with one
    line and :attr:`ExitCode.CANNOT_RUN`."""
    from mtasts.store.errors import StoreError, translate_store_errors

    store = _store(db, create=False)
    try:
        with store, translate_store_errors(store.url):
            yield store
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)


def _cannot_read(err: Console, path: Path, exc: OSError) -> None:
    err.print(f"[severity.error]error:[/] cannot read {path}: {exc.strerror or exc}")


@app.command("parse")
def parse_command(
    files: Annotated[list[Path], typer.Argument(help="Report files: JSON, gzip, e-mails (.eml), mbox or Maildir.")],
    json_output: JsonOption = False,
) -> None:
    """Read reports and print them normalised. Exit status 1 when an input is not a report, 3 when
    a FILE cannot be read (the others are still printed)."""
    out, err = console(), console(stderr=True)
    reports: list[tuple[str, TlsRptReport]] = []
    failed = unreadable = False
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
            unreadable = True
            _cannot_read(err, path, exc)
    if json_output:
        print_json([{"source": label, **report.to_dict()} for label, report in reports])
    else:
        for label, report in reports:
            out.print(_report_table(label, report))
            warnings = [w for w in report.warnings if w.severity is not Severity.ERROR]
            if warnings:
                print_problems(out, warnings)
    if unreadable:
        raise typer.Exit(int(ExitCode.CANNOT_RUN))
    if failed:
        raise typer.Exit(int(ExitCode.PROBLEMS))


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
    store: ReportStore, path: Path, outcomes: list[IngestOutcome], err: Console, json_output: bool, retry: bool
) -> bool:
    """Ingest one PATH into ``outcomes`` (``StoreError`` escapes); False when PATH is unreadable."""
    from mtasts.report.ingest import ingest_paths

    try:
        for outcome in ingest_paths(store, [path], retry_failed=retry):
            outcomes.append(outcome)
            if not json_output:
                _print_outcome(err, outcome)
    except OSError as exc:
        _cannot_read(err, path, exc)
        return False
    return True


def _print_outcome(err: Console, outcome: IngestOutcome) -> None:
    """A set-aside or skipped source on stderr: the problem, where it is, where it went."""
    problem = outcome.error or outcome.warning
    if problem is None:
        return
    print_problems(err, [problem], subject=None)
    err.print(f"  in {outcome.label}", style="where")
    if outcome.moved_to is not None and outcome.moved_to != outcome.label:
        err.print(f"  set aside: {outcome.moved_to}", style="where")


def _ingest_summary(outcomes: list[IngestOutcome], database: str, stopped: str | None) -> dict[str, object]:
    return {
        "stored": sum(o.stored for o in outcomes),
        "duplicates": sum(o.duplicates for o in outcomes),
        "set_aside": sum(1 for o in outcomes if o.set_aside),
        "skipped": sum(1 for o in outcomes if o.skipped),
        "database": database,
        "stopped": stopped,
        "sources": [o.to_dict() for o in outcomes],
    }


@app.command("ingest")
def ingest_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Report files, e-mails, mbox files, Maildir folders or directories.")
    ] = None,
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            help="Ingest from an IMAP mailbox: imaps://USER[:PASSWORD]@HOST[:PORT]/MAILBOX[?move=FOLDER&timeout=S] "
            "(password also from $MTASTS_IMAP_PASSWORD). Messages are flagged (or moved) after commit.",
            metavar="URL",
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Read again the messages earlier runs set aside (Maildir folder .mtasts-failed, "
            "IMAP keyword TLSRPT-Rejected).",
        ),
    ] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store reports; a report already stored is recognised and skipped. A message that fails is
    set aside (Maildir: folder .mtasts-failed; IMAP: keyword TLSRPT-Rejected) and the run goes
    on. Exit status 1 when a source was set aside, 3 when the database, the IMAP server or a PATH
    could not be used (what was committed stays committed; the rest is left for the next run)."""
    from sqlalchemy.exc import SQLAlchemyError

    from mtasts.cli.exitcodes import ExitCode, fail
    from mtasts.store.errors import StoreError, describe_store_error, redact_url

    out, err = console(), console(stderr=True)
    if not paths and not imap:
        fail("give at least one PATH, or --imap URL", ExitCode.USAGE)
    database = url = ""  # known once the store is open (``_store`` reads --db and $MTASTS_DB)
    outcomes: list[IngestOutcome] = []
    stopped: str | None = None
    unreadable = opened = False
    settings = None
    if imap:
        from mtasts.report.imap import parse_imap_url

        try:
            settings = parse_imap_url(imap, os.environ)
        except ValueError as exc:
            fail(str(exc), ExitCode.USAGE)
    try:
        store = _store(db)
        url, database = store.url, redact_url(store.url)
        with store:
            opened = True
            if settings is not None:
                from mtasts.report.imap import ImapError, ingest_imap

                def record(outcome: IngestOutcome) -> None:
                    outcomes.append(outcome)
                    if not json_output:
                        _print_outcome(err, outcome)

                try:
                    asyncio.run(ingest_imap(store, settings, retry_failed=retry_failed, on_outcome=record))
                except ImapError as exc:  # says what was processed and what is left
                    stopped = str(exc)
            if stopped is None:
                for path in paths or []:
                    unreadable = not _ingest_path(store, path, outcomes, err, json_output, retry_failed) or unreadable
    except StoreError as exc:
        if not opened:
            fail(exc.message)
        stopped = f"{exc.message}; stopped: what was stored is committed, the rest is left for the next run"
    except SQLAlchemyError as exc:  # opening the store (the ingest itself raises StoreError)
        fail(describe_store_error(exc, url))
    summary = _ingest_summary(outcomes, database, stopped)
    if json_output:
        print_json(summary)
    else:
        set_aside = summary["set_aside"]
        out.print(
            f"[ok]{summary['stored']}[/] report(s) stored, {summary['duplicates']} already stored, "
            f"{'[severity.error]' if set_aside else ''}{set_aside}{'[/]' if set_aside else ''} set aside, "
            f"{summary['skipped']} skipped; database {database}",
            soft_wrap=True,  # one line, whatever the terminal width: scripts and cron mails read it
        )
    if stopped is not None:
        fail(stopped)
    if unreadable:
        raise typer.Exit(int(ExitCode.CANNOT_RUN))
    if summary["set_aside"]:
        raise typer.Exit(int(ExitCode.PROBLEMS))


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
    with _reading(db) as store:
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
        where = escape(store.display_url)
        selection = " for this selection" if since or wanted else ""
        out.print(f"No reports stored{selection} in {where}.", soft_wrap=True)
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
    if output is not None:
        _check_output(output)
    with _reading(db) as store:
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
        _write_output(output, text)


def _check_output(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written: its folder must exist (it is not
    created: a typo in a path should not leave folders behind) and ``path`` must not be one."""
    folder = path.parent
    if not folder.is_dir():
        fail(f"cannot write {path}: the folder {folder} does not exist (create it first)")
    if path.is_dir():
        fail(f"cannot write {path}: it is a folder; give a file name")


def _write_output(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


def _json_text(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@app.command("serve")
def serve_command(
    cert: Annotated[Path | None, typer.Option("--cert", help="TLS certificate chain (PEM).", metavar="FILE")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="TLS private key (PEM).", metavar="FILE")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8443,
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
        Path | None, typer.Option("--spool-dir", help="Where bodies are spooled (default: the temp dir).")
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

    Logs one access line per request on stderr; failures are one line each, repeated ones
    summarised per --log-window (MTASTS_DEBUG=1 adds debug lines, with tracebacks of bugs)."""
    import logging
    import signal

    from mtasts.cli._run import run_async
    from mtasts.cli.exitcodes import ExitCode, fail
    from mtasts.report.server import EndpointSettings, ReportServer, parse_domains
    from mtasts.store.errors import StoreError

    if not no_tls and (cert is None or key is None):
        fail("give --cert and --key (RFC 8460 §5.4 requires HTTPS), or --no-tls", ExitCode.USAGE)
    settings = EndpointSettings(
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
    server = ReportServer(
        _store(db),
        host=host,
        port=port,
        certfile=None if no_tls else cert,
        keyfile=None if no_tls else key,
        settings=settings,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name, level in (("mtasts", logging.INFO), ("uvicorn", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if os.environ.get("MTASTS_DEBUG") == "1" else level)
        logger.propagate = False
    err = console(stderr=True)

    async def run() -> None:
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        where = "{}://{}:{}/".format("http" if no_tls else "https", *server.address)
        err.print(f"[ok]listening[/] on {where}; Ctrl-C stops", soft_wrap=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        run_async(run())
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}", ExitCode.CANNOT_RUN)


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
    wanted = _domain(domain)
    with _reading(db) as store:
        policies = store.policy_rows(domain=wanted)
        failures = store.failure_rows(domain=wanted)
    last = last_day or max((r.day for r in policies), default=_today())
    result = digest(policies, failures, until=last, days=days, baseline_days=baseline_days)
    text = _json_text(result.to_dict()) if json_output else result.to_text()
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

"""``mtasts check``: inspect MTA-STS and TLS reporting for one or many domains."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli._run import run_async
from mtasts.cli.output import console, print_json
from mtasts.core.problems import Severity
from mtasts.net.settings import DEFAULT_TIMEOUT, NetworkSettings, parse_nameserver

if TYPE_CHECKING:  # the inspector (dnspython, cryptography, h11) is imported when a check runs
    from mtasts.check.inspect import DomainReport

_TESTING = "For testing (the lab)"
_NETWORK = "Network"
_BULK = "Bulk"


def check(
    domains: Annotated[
        list[str] | None,
        typer.Argument(help="Domains to check ('-' reads them from standard input, one per line).", show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Read domains from FILE, one per line ('#' starts a comment).", rich_help_panel=_BULK
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (a list, one object per domain).")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write results to FILE.jsonl or FILE.csv.", rich_help_panel=_BULK),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", min=1, max=1000, help="Domains checked at the same time.", rich_help_panel=_BULK
        ),
    ] = 32,
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
            "--ca-file",
            help="Trust the CAs in this PEM file instead of the system store.",
            rich_help_panel=_NETWORK,
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, help="Seconds allowed for each lookup, fetch and probe.", rich_help_panel=_NETWORK
        ),
    ] = DEFAULT_TIMEOUT,
    refuse_private: Annotated[
        bool,
        typer.Option(
            "--refuse-private",
            help="Never connect to private, loopback or link-local addresses.",
            rich_help_panel=_NETWORK,
        ),
    ] = False,
    expiry_days: Annotated[
        float,
        typer.Option("--expiry-warning-days", min=0, help="Warn about certificates expiring within this many days."),
    ] = 14,
    https_port: Annotated[
        int, typer.Option("--https-port", help="Policy hosts' HTTPS port (RFC 8461: 443).", rich_help_panel=_TESTING)
    ] = 443,
    smtp_port: Annotated[
        int, typer.Option("--smtp-port", help="MX hosts' SMTP port (RFC 8461: 25).", rich_help_panel=_TESTING)
    ] = 25,
) -> None:
    """Check whether MTA-STS works for each DOMAIN: the _mta-sts record, the policy fetch, every
    address of every MX (STARTTLS, certificate, TLS version) and TLS reporting.

    Each problem comes with a fix; the verdict says what a compliant sender would do.
    Exit status: 0 no problems, 1 warnings only, 2 errors.
    """
    err = console(stderr=True)
    names = list(_domains(domains or [], file))
    if not names:
        err.print("[severity.error]error:[/] give at least one domain (arguments, --file, or '-' for standard input)")
        raise typer.Exit(2)
    if output is not None and output.suffix.lower() not in (".jsonl", ".csv"):
        err.print("[severity.error]error:[/] --output must end in .jsonl or .csv")
        raise typer.Exit(2)
    try:
        settings = NetworkSettings(
            nameserver=None if nameserver is None else parse_nameserver(nameserver),
            ca_file=ca_file,
            timeout=timeout,
            https_port=https_port,
            smtp_port=smtp_port,
            allow_private=not refuse_private,
            ehlo_name=_ehlo_name(),
        )
    except ValueError as exc:
        err.print(f"[severity.error]error:[/] {exc}")
        raise typer.Exit(2) from exc
    reports = run_async(_run(names, settings, concurrency, expiry_days, json_output, output))
    if json_output:
        order = {name: index for index, name in enumerate(names)}
        print_json([r.to_dict() for r in sorted(reports, key=lambda r: order.get(r.domain, len(order)))])
    worst = {r.worst for r in reports}
    raise typer.Exit(2 if Severity.ERROR in worst else 1 if Severity.WARNING in worst else 0)


async def _run(
    names: list[str],
    settings: NetworkSettings,
    concurrency: int,
    expiry_days: float,
    json_output: bool,
    output: Path | None,
) -> list[DomainReport]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mtasts.check.inspect import Inspector
    from mtasts.check.render import CSV_FIELDS, csv_rows, render_report, report_json_line

    inspector = Inspector(settings, expiry_warning_days=expiry_days)
    out = console()
    err = console(stderr=True)
    show_reports = not json_output and (output is None or len(names) == 1)
    reports: list[DomainReport] = []
    handle = None if output is None else output.open("w", encoding="utf-8", newline="")
    try:
        if handle is not None and output is not None and output.suffix.lower() == ".csv":
            handle.write(",".join(CSV_FIELDS) + "\n")
        progress = Progress(
            TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True
        )
        use_progress = len(names) > 1 and err.is_terminal
        task = progress.add_task("check", total=len(names))
        if use_progress:
            progress.start()
        try:
            async for report in inspector.check_many(names, concurrency=concurrency):
                reports.append(report)
                if handle is not None and output is not None:
                    handle.write(
                        csv_rows([report]) if output.suffix.lower() == ".csv" else report_json_line(report) + "\n"
                    )
                if show_reports:
                    (progress.console if use_progress else out).print(render_report(report))
                progress.advance(task)
        finally:
            if use_progress:
                progress.stop()
    finally:
        if handle is not None:
            handle.close()
    if output is not None and not json_output:
        counts = {s: sum(r.worst is s for r in reports) for s in (Severity.ERROR, Severity.WARNING, None)}
        out.print(
            f"{len(reports)} domains: [ok]{counts[None]} ok[/], "
            f"[severity.warning]{counts[Severity.WARNING]} with warnings[/], "
            f"[severity.error]{counts[Severity.ERROR]} with errors[/]; results in {output}"
        )
    return reports


def _domains(arguments: list[str], file: Path | None) -> Iterator[str]:
    sources: list[Iterator[str]] = []
    for argument in arguments:
        if argument == "-":
            sources.append(iter(sys.stdin))
        else:
            sources.append(iter([argument]))
    if file is not None:
        try:
            sources.append(iter(file.read_text("utf-8").splitlines()))
        except OSError as exc:
            console(stderr=True).print(f"[severity.error]error:[/] cannot read {file}: {exc.strerror or exc}")
            raise typer.Exit(2) from exc
    seen: set[str] = set()
    for source in sources:
        for line in source:
            name = line.split("#", 1)[0].strip()
            if name and name not in seen:
                seen.add(name)
                yield name


def _ehlo_name() -> str:
    """This host's name for EHLO, without a DNS lookup (getfqdn can block on reverse DNS)."""
    name = socket.gethostname()
    return name if "." in name else "mtasts.invalid"

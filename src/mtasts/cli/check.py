"""``mtasts check``: inspect MTA-STS and TLS reporting for one or many domains."""

from __future__ import annotations

import codecs
import socket
import ssl
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from mtasts.check.domainlist import DomainList
from mtasts.check.limits import DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_MX_HOSTS, DOMAIN_TIMEOUT_FACTOR, CheckLimits
from mtasts.cli._run import run_async
from mtasts.cli.exitcodes import ExitCode, FailOn, exit_for, fail
from mtasts.cli.output import console, print_json
from mtasts.cli.text import plural
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
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, help="Seconds allowed for each lookup, fetch and probe.", rich_help_panel=_NETWORK
        ),
    ] = DEFAULT_TIMEOUT,
    domain_timeout: Annotated[
        float | None,
        typer.Option(
            "--domain-timeout",
            min=0.1,
            help="Seconds allowed for one whole domain, however many MX hosts it has "
            f"[default: {DOMAIN_TIMEOUT_FACTOR} × --timeout].",
            rich_help_panel=_NETWORK,
            show_default=False,
        ),
    ] = None,
    max_mx: Annotated[
        int,
        typer.Option(
            "--max-mx",
            min=1,
            max=100,
            help="MX hosts probed per domain, most preferred first.",
            rich_help_panel=_NETWORK,
        ),
    ] = DEFAULT_MAX_MX_HOSTS,
    max_addresses: Annotated[
        int,
        typer.Option(
            "--max-addresses",
            min=1,
            max=32,
            help="Addresses probed per MX host (IPv4 and IPv6 in turn).",
            rich_help_panel=_NETWORK,
        ),
    ] = DEFAULT_MAX_ADDRESSES,
    refuse_private: Annotated[
        bool,
        typer.Option(
            "--refuse-private",
            help="Never connect to an address that is not globally reachable (private, loopback, shared, "
            "documentation, ...; IPv4 inside 6to4, Teredo, NAT64 and IPv4-mapped IPv6 too).",
            rich_help_panel=_NETWORK,
        ),
    ] = False,
    expiry_days: Annotated[
        float,
        typer.Option("--expiry-warning-days", min=0, help="Warn about certificates expiring within this many days."),
    ] = 14,
    fail_on: Annotated[
        FailOn,
        typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe ('never': only 0, 2, 3, 4)."),
    ] = FailOn.WARNING,
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
    Exit status: 0 no finding at or above --fail-on (default warning), 1 findings at or above it,
    2 usage error, 3 could not run (unreadable or undecodable --file, bad --ca-file, --output in a
    missing folder, or every domain ended in local trouble: our nameserver or port 25), 4 internal
    error.
    """
    names = _domain_names(domains or [], file)
    if not names:
        fail("give at least one domain (arguments, --file, or '-' for standard input)", ExitCode.USAGE)
    if output is not None and output.suffix.lower() not in (".jsonl", ".csv"):
        fail("--output must end in .jsonl or .csv", ExitCode.USAGE)
    if output is not None and not output.parent.is_dir():
        fail(f"cannot write {output}: the folder {output.parent} does not exist")
    if ca_file is not None:
        _check_ca_file(ca_file)
    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(f"--nameserver {nameserver!r}: {exc}", ExitCode.USAGE)
    try:
        settings = NetworkSettings(
            nameserver=server,
            ca_file=ca_file,
            timeout=timeout,
            https_port=https_port,
            smtp_port=smtp_port,
            allow_private=not refuse_private,
            ehlo_name=_ehlo_name(),
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)

    limits = CheckLimits(domain_timeout=domain_timeout, max_mx_hosts=max_mx, max_addresses=max_addresses)
    try:
        handle = None if output is None else output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    reports = run_async(_run(names, settings, limits, concurrency, expiry_days, json_output, output, handle))
    if json_output:
        order = {name: index for index, name in enumerate(names)}
        print_json([r.to_dict() for r in sorted(reports, key=lambda r: order.get(r.domain, len(order)))])
    if reports and all(_local_trouble(r) for r in reports):
        raise typer.Exit(int(ExitCode.CANNOT_RUN))
    raise typer.Exit(int(exit_for((r.worst for r in reports), fail_on)))


def _local_trouble(report: DomainReport) -> bool:
    return any(f.code.startswith("local-") for f in report.findings)


def _check_ca_file(path: Path) -> None:
    """A CA file that cannot be used is the user's setting, said once before anything is
    checked: otherwise every policy host and MX would get a certificate finding for it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"--ca-file {path}: cannot read it: {exc.strerror or exc}")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        fail(f"--ca-file {path}: not a PEM file of CA certificates (no '-----BEGIN CERTIFICATE-----' line)")
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        fail(f"--ca-file {path}: the certificates in it cannot be loaded: {getattr(exc, 'reason', None) or exc}")


async def _run(
    names: list[str],
    settings: NetworkSettings,
    limits: CheckLimits,
    concurrency: int,
    expiry_days: float,
    json_output: bool,
    output: Path | None,
    handle: IO[str] | None,
) -> list[DomainReport]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mtasts.check.inspect import Inspector
    from mtasts.check.render import CSV_FIELDS, csv_rows, render_report, report_json_line

    inspector = Inspector(settings, expiry_warning_days=expiry_days, limits=limits)
    out = console()
    err = console(stderr=True)
    show_reports = not json_output and (output is None or len(names) == 1)
    reports: list[DomainReport] = []
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
            f"{plural(len(reports), 'domain')}: [ok]{counts[None]} ok[/], "
            f"[severity.warning]{counts[Severity.WARNING]} with warnings[/], "
            f"[severity.error]{counts[Severity.ERROR]} with errors[/]; results in {output}"
        )
    return reports


def _domain_names(arguments: list[str], file: Path | None) -> list[str]:
    """The domains to check, in order, each once however it is spelt (case, trailing dot,
    U-labels or A-labels: :mod:`mtasts.check.domainlist`); '#' starts a comment."""
    texts: list[str] = []
    for argument in arguments:
        if argument == "-":
            stream = getattr(sys.stdin, "buffer", None)
            texts.append(decode_text(stream.read(), "standard input") if stream is not None else sys.stdin.read())
        else:
            texts.append(argument)
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
        texts.append(decode_text(data, str(file)))
    domains = DomainList()
    return [name for text in texts for name in domains.names(text.splitlines())]


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_text(data: bytes, where: str) -> str:
    """A domain list as text: UTF-16 or UTF-8 when it starts with their byte-order mark
    (Windows editors write one), else UTF-8. Anything else is refused in one line rather than
    guessed: a Latin-1 byte in a domain name has no meaning, and a wrong guess would check
    domains nobody listed."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                fail(f"{where} starts with a {encoding} byte-order mark but is not valid {encoding}: {exc.reason}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        fail(
            f"{where} is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}): save it as UTF-8 "
            "(or UTF-16 with a byte-order mark)"
        )


def _ehlo_name() -> str:
    """This host's name for EHLO, without a DNS lookup (getfqdn can block on reverse DNS)."""
    name = socket.gethostname()
    return name if "." in name else "mtasts.invalid"

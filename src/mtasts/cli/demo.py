"""``mtasts demo``: an offline first look at mtasts, on the loopback lab.

Brings up the lab for a few correct and broken domains and runs the inspector on them through
the lab's nameserver, CA and ports, exactly as ``mtasts check`` would on real domains. It
grows as capabilities land.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from mtasts.cli._run import run_async
from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import Column, Fit, FitTable, console
from mtasts.lab.scenarios import CATALOGUE

if TYPE_CHECKING:
    from mtasts.check.inspect import DomainReport

DEFAULT_SCENARIOS = (
    "enforce-ok",
    "testing-ok",
    "split-txt-ok",
    "no-sts-record",
    "multiple-sts-records",
    "sts-record-bad-id",
    "policy-404",
    "policy-redirect",
    "policy-cert-expired",
    "policy-syntax",
    "mx-not-in-policy",
    "mx-no-starttls",
    "mx-cert-expired",
    "mx-tls10-only",
    "tlsrpt-missing",
)
SHOWN_IN_FULL = ("testing-ok", "mx-cert-expired")
TIMEOUT = 2.0
# An SMTP probe is about five exchanges (greeting, EHLO, STARTTLS, EHLO, QUIT), each one delayed:
# the timeout grows with the delay, so a slow lab shows slow domains, not timeouts.
EXCHANGES_PER_STEP = 6
MAX_DEMO_DELAY_MS = 2_000


def demo(
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="A scenario to show (repeat for several). See 'mtasts lab list'."),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Show the full report of every domain.")] = False,
    delay_ms: Annotated[
        int,
        typer.Option(
            "--delay-ms",
            min=0,
            max=MAX_DEMO_DELAY_MS,
            metavar="MS",
            help="Delay every answer of the lab by MS milliseconds, as a distant server would.",
        ),
    ] = 0,
) -> None:
    """Bring up the loopback lab and show what 'mtasts check' finds on correct and broken domains.

    Exit status 1 (problems found) if a domain did not come out as its scenario expects (a bug
    to report), 3 if the lab cannot start on this machine.
    """
    names = tuple(scenario or DEFAULT_SCENARIOS)
    unknown = [name for name in names if name not in CATALOGUE]
    if unknown:
        fail(f"unknown scenario(s): {', '.join(unknown)} (see 'mtasts lab list')", ExitCode.USAGE)
    out = console()
    out.print("[heading]mtasts demo[/]: a small mail internet on loopback (DNS, HTTPS policy hosts, SMTP MX hosts)")
    from mtasts.check.render import render_report

    try:
        reports, options = run_async(_inspect(names, delay_ms / 1000))
    except OSError as exc:  # the lab's servers could not bind (ports, addresses)
        fail(f"cannot start the lab: {exc.strerror or exc}")
    out.print(f"lab options, as you would pass them to 'mtasts check': [dim]{options}[/]\n")
    # domains, codes and verdicts stay whole (codes wrap between them); the scenario wraps
    table = FitTable(
        Column("domain", Fit.DATA, style="where"),
        Column("what is wrong (the lab's scenario)"),
        Column("mtasts check finds"),
        Column("a compliant sender", Fit.DATA),
        Column("as expected", Fit.DATA, justify="center"),
        title="mtasts check on the lab's domains",
    )
    as_expected = 0
    for name, report in reports:
        expected = CATALOGUE[name].expect
        found = {f.code for f in report.findings}
        matches = found == set(expected.findings) and report.verdict.delivery.value == expected.delivery.value
        as_expected += matches
        table.add_row(
            report.domain,
            CATALOGUE[name].description,
            _codes(report),
            Text(report.verdict.delivery.value, style="ok" if report.verdict.mail_flows else "severity.error"),
            Text("✓", style="ok") if matches else Text("✗", style="severity.error"),
        )
    out.print(table)
    for name, report in reports:
        if full or name in SHOWN_IN_FULL:
            out.print(f"\n[heading]$ mtasts check {report.domain}[/]")
            out.print(render_report(report))
    out.print("Try it: 'mtasts lab up --info lab.json' in one terminal, 'mtasts check <domain> ...' in another.")
    style = "ok" if as_expected == len(reports) else "severity.error"
    out.print(f"[{style}]{len(reports)} domains checked, {as_expected} as their scenarios expect[/]")
    if as_expected != len(reports):
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _codes(report: DomainReport) -> Text:
    text = Text()
    for finding in report.findings:
        if text:
            text.append(", ")
        text.append(finding.code, style=f"severity.{finding.severity.value}")
    return text if text else Text("no problems", style="ok")


async def _inspect(names: tuple[str, ...], delay: float = 0.0) -> tuple[list[tuple[str, DomainReport]], str]:
    from mtasts.check.inspect import Inspector
    from mtasts.lab.world import Lab
    from mtasts.net.settings import NetworkSettings

    async with Lab(names, delay=delay) as lab:
        settings = NetworkSettings(
            nameserver=lab.nameserver,
            ca_file=lab.ca_file,
            timeout=TIMEOUT + EXCHANGES_PER_STEP * delay,
            https_port=lab.https_port,
            smtp_port=lab.smtp_port,
            ehlo_name="demo.mtasts.test",
        )
        inspector = Inspector(settings)
        domains = dict(lab.plan.domains)
        reports = {r.domain: r async for r in inspector.check_many(domains, concurrency=len(domains))}
        options = (
            f"--nameserver {lab.nameserver[0]}:{lab.nameserver[1]} --ca-file {lab.ca_file} "
            f"--https-port {lab.https_port} --smtp-port {lab.smtp_port}"
        )
        ordered = [(domains[d], reports[d]) for d, _ in lab.plan.domains]
    return ordered, options

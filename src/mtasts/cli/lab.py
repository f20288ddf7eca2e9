"""``mtasts lab``: list the scenarios, or run the loopback mail world in the foreground."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mtasts.cli._run import run_async
from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.output import Column, Fit, FitTable, console, label_width, padded
from mtasts.i18n import current
from mtasts.lab.scenarios import CATALOGUE

MAX_DELAY_MS = 10_000  # the lab's own bound (mtasts.lab._net.MAX_DELAY), checked before it starts
_LABELS = ("nameserver", "CA file", "HTTPS port", "TLSRPT", "delay")  # the address book's, in one column

if TYPE_CHECKING:  # the servers (dnspython, cryptography, trustme) load when the lab starts
    from mtasts.lab.world import Lab

app = typer.Typer(
    help="A whole mail world on loopback: DNS, policy hosts, MX hosts and a TLSRPT sink, one domain per scenario.",
    no_args_is_help=True,
)

ScenarioOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scenario", "-s", help="A scenario to serve (repeat for several; default: all). See 'mtasts lab list'."
    ),
]


@app.command("list")
def list_scenarios() -> None:
    """List the built-in scenarios with what each one breaks."""
    say = current().gettext  # the headers; names, verdicts and descriptions are data and stay English
    table = FitTable(
        Column(say("scenario"), Fit.DATA, style="heading"), Column(say("sender"), Fit.DATA), Column(say("description"))
    )
    for scenario in CATALOGUE.values():
        table.add_row(scenario.name, scenario.expect.delivery.value, scenario.description)
    console().print(table)


@app.command("up")
def up(
    scenario: ScenarioOption = None,
    info: Annotated[
        Path | None, typer.Option("--info", help="Write the lab's address book as JSON to FILE once it is ready.")
    ] = None,
    standard_ports: Annotated[
        bool,
        typer.Option("--standard-ports", help="Listen on ports 53, 443 and 25 (needs root), for third-party tools."),
    ] = False,
    network: Annotated[
        str | None, typer.Option("--network", help="Loopback network for host addresses, e.g. 127.53.0.0/16.")
    ] = None,
    delay_ms: Annotated[
        int,
        typer.Option(
            "--delay-ms",
            min=0,
            max=MAX_DELAY_MS,
            metavar="MS",
            help="Delay every DNS answer, HTTP response and SMTP reply by MS milliseconds (internet-like round trips).",
        ),
    ] = 0,
) -> None:
    """Run the lab in the foreground until SIGINT or SIGTERM. Exit status 2 for an unknown
    scenario or network, 3 when the lab cannot start (ports, addresses, the --info folder)."""
    unknown = [name for name in scenario or () if name not in CATALOGUE]
    if unknown:
        fail(f"unknown scenario(s): {', '.join(unknown)} (see 'mtasts lab list')", ExitCode.USAGE)
    if info is not None and not info.parent.is_dir():  # found now, not after the lab is up
        fail(f"cannot write --info {info}: the folder {info.parent} does not exist (create it first)")
    try:
        from mtasts.lab.world import Lab, Ports

        lab = Lab(
            scenario or None,
            network=network,
            ports=Ports.standard() if standard_ports else Ports(),
            delay=delay_ms / 1000,
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    try:
        run_async(_run(lab, info))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        fail(f"cannot start the lab: {exc.strerror or exc}{where}")


async def _run(lab: Lab, info_file: Path | None) -> None:
    started = time.perf_counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with lab:
            elapsed = time.perf_counter() - started
            data = lab.info()
            if info_file is not None:
                _write_atomically(info_file, data)
            _show(data, elapsed)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    console().print(current().gettext("[ok]lab stopped[/]"))


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Readers polling for the file never see half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _show(data: dict[str, Any], elapsed: float) -> None:
    from mtasts.lab.world import check_options

    out, tr = console(), current()
    width = label_width(_LABELS, 12)
    out.print(tr.gettext("[heading]mtasts lab[/] ready in %(ms)s ms") % {"ms": f"{elapsed * 1000:.0f}"})
    dig = tr.gettext("(e.g. %(example)s)") % {"example": f"dig -p {data['dns_port']} @{data['nameserver_address']} ..."}
    out.print(f"  {padded('nameserver', width)}{data['nameserver']}  {dig}")
    out.print(f"  {padded('CA file', width)}{data['ca_file']}")
    out.print(f"  {padded('HTTPS port', width)}{data['https_port']}    {tr.gettext('SMTP port')}  {data['smtp_port']}")
    out.print(f"  {padded('TLSRPT', width)}{data['tlsrpt_url']}")
    if data["delay_ms"]:
        delay = f"{data['delay_ms']:g} ms"
        before = tr.gettext("%(delay)s before every DNS answer, HTTP response and SMTP reply") % {"delay": delay}
        out.print(f"  {padded('delay', width)}{before}")
    table = FitTable(Column(tr.gettext("domain"), Fit.DATA, style="heading"), Column(tr.gettext("scenario"), Fit.DATA))
    for domain in data["domains"]:
        table.add_row(domain["name"], domain["scenario"])
    out.print(table)
    example = data["domains"][0]["name"] if data["domains"] else "DOMAIN"
    command = f"mtasts check {example} {' '.join(check_options(data))}"
    out.print(tr.gettext("Check a domain: [where]%(command)s[/]") % {"command": command}, soft_wrap=True)
    out.print(tr.gettext("Press Ctrl-C to stop."))

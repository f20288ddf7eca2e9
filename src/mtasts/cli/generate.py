"""``mtasts generate``: the policy file and DNS records to publish for a domain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from mtasts.cli.exitcodes import ExitCode
from mtasts.cli.output import console, print_json, print_problems
from mtasts.core.policy import MAX_AGE_LIMIT, Mode
from mtasts.core.problems import ParseError
from mtasts.publish.plan import Deployment, plan_deployment


def generate(
    domain: Annotated[str, typer.Option("--domain", "-d", help="The mail domain (Unicode names are converted).")],
    mx: Annotated[
        list[str],
        typer.Option("--mx", help="An MX host name or '*.' pattern allowed to receive mail; repeat for each MX."),
    ],
    mode: Annotated[Mode, typer.Option("--mode", help="testing: deliver and report; enforce: refuse invalid MX.")],
    max_age: Annotated[
        int,
        typer.Option(
            "--max-age", min=0, max=MAX_AGE_LIMIT, help="Seconds senders cache the policy (604800 = one week)."
        ),
    ],
    rua: Annotated[
        list[str] | None,
        typer.Option("--rua", help="Where TLS reports go: mailto:addr or https://url; repeat for several."),
    ] = None,
    existing: Annotated[
        bool, typer.Option("--existing", help="The domain already runs MTA-STS (no first-deployment warning).")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON document.")] = False,
) -> None:
    """Print the policy file and the DNS records to publish for DOMAIN.

    The policy id is the current UTC time; publish the policy first, then the _mta-sts record,
    and change the id whenever the policy changes. Exit status 2 when an option's value is
    invalid (each problem is printed, with its fix); warnings do not change the exit status.
    """
    try:
        plan = plan_deployment(
            domain, mx, mode, max_age, rua or (), now=datetime.now(UTC), first_deployment=not existing
        )
    except ParseError as exc:
        if json_output:
            print_json({"valid": False, "problems": [p.to_dict() for p in exc.problems]})
        else:
            print_problems(console(stderr=True), exc.problems)
        raise typer.Exit(int(ExitCode.USAGE)) from exc  # the values given on the command line
    if json_output:
        print_json(plan.to_dict())
    else:
        _render(plan)


def _render(plan: Deployment) -> None:
    out = console()
    out.print(f"[heading]MTA-STS for {plan.domain}[/]\n")
    out.print(f"1. Serve this file at [where]{plan.policy_url}[/]")
    out.print(
        "   (HTTPS with a valid certificate for " + plan.policy_host + ", Content-Type: text/plain, no redirects)"
    )
    out.print(
        Panel(Syntax(plan.policy.to_text().replace("\r\n", "\n").rstrip("\n"), "yaml", theme="ansi_dark"), expand=False)
    )
    out.print("2. Publish these DNS records (after the policy is reachable):")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("name", style="where", no_wrap=True)
    table.add_column("type")
    table.add_column("value", overflow="fold")
    for record in plan.records:
        table.add_row(record.name, record.type, record.value)
    out.print(table)
    out.print("\n   Zone file:")
    for record in plan.records:
        out.print(f"   {record.to_zone_line()}", highlight=False, soft_wrap=True)
    if plan.warnings:
        out.print()
        print_problems(out, plan.warnings)

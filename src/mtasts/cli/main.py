"""The ``mtasts`` command: one entry point, one sub-command per capability."""

from __future__ import annotations

from typing import Annotated

import typer

from mtasts._version import __version__
from mtasts.cli import check, demo, generate, lab, lint, report

app = typer.Typer(
    name="mtasts",
    help="MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460): check, publish, resolve, report.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(lint.app, name="lint")
app.command("generate")(generate.generate)
app.command("check")(check.check)
app.add_typer(lab.app, name="lab")
app.command("demo")(demo.demo)
app.add_typer(report.app, name="report")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mtasts {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460): check, publish, resolve, report."""


def run() -> None:
    """Console-script entry point."""
    app()

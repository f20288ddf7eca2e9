"""The ``mtasts`` command: one entry point, one sub-command per capability."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from mtasts._version import __version__
from mtasts.cli import check, demo, generate, lab, lint, report
from mtasts.cli.exitcodes import EXIT_CODES_HELP, ExitCode

_HELP = (
    "MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460): check, lint, generate, report, lab.\n\n"
    + EXIT_CODES_HELP
)

app = typer.Typer(
    name="mtasts",
    help=_HELP,
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

_DEBUG_ENV = "MTASTS_DEBUG"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mtasts {__version__}")
        raise typer.Exit


@app.callback(help=_HELP)
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Print the traceback of an internal error (or set {_DEBUG_ENV}=1).")
    ] = False,
) -> None:
    if debug:
        os.environ[_DEBUG_ENV] = "1"


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point: every anticipated failure is one line and its exit code
    (:mod:`mtasts.cli.exitcodes`); anything else is an internal error, also one line unless
    ``--debug`` asks for the traceback."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="mtasts")
    except KeyboardInterrupt:
        sys.stderr.write("mtasts: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug: one line, the traceback on request
        if "--debug" in args or os.environ.get(_DEBUG_ENV) == "1":
            traceback.print_exc()
        sys.stderr.write(
            f"mtasts: internal error: {type(exc).__name__}: {exc}\n"
            "  This is a bug in mtasts; rerun with --debug for the traceback and report it.\n"
        )
        sys.exit(int(ExitCode.INTERNAL))

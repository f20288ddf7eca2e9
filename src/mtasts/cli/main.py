"""The ``mtasts`` command: one entry point, one sub-command per capability."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from typer.core import MarkupMode
from typer.models import DefaultPlaceholder

from mtasts._version import __version__
from mtasts.cli import check, demo, generate, lab, lint, monitor, output, publish, report, resolver, web
from mtasts.cli.exitcodes import EXIT_CODES_HELP, ExitCode, exit_status_help, in_language
from mtasts.i18n import LANGUAGES
from mtasts.i18n.help import TranslatedHelpGroup
from mtasts.i18n.usage import choose_language

_HELP = (
    "MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460): "
    "check, lint, generate, publish, report, resolver, web, monitor, lab.\n\n" + EXIT_CODES_HELP
)


class _App(typer.Typer):
    """The root command. Its help and usage errors are drawn by Rich (panels, colour) on a
    terminal and are click's plain text elsewhere: typer reads ``rich_markup_mode`` when it
    builds the command for a run, so the choice is made then, from where output goes."""

    @property
    def rich_markup_mode(self) -> MarkupMode:
        return self._markup_mode if output.help_for_terminal() else None

    @rich_markup_mode.setter
    def rich_markup_mode(self, value: MarkupMode) -> None:
        self._markup_mode = value


app = _App(
    name="mtasts",
    help=_HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
    cls=TranslatedHelpGroup,  # --help in the reader's language (mtasts.i18n.help)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(lint.app, name="lint")
app.command("generate")(generate.generate)
app.command("check")(check.check)
app.add_typer(lab.app, name="lab")
app.command("demo")(demo.demo)
app.add_typer(report.app, name="report")
app.add_typer(publish.app, name="publish")
app.add_typer(resolver.app, name="resolver")
app.add_typer(web.app, name="web")
app.add_typer(monitor.app, name="monitor")

_DEBUG_ENV = "MTASTS_DEBUG"


def _epilog_everywhere(group: typer.Typer, path: tuple[str, ...] = ()) -> None:
    """Give every command under ``group`` its own exit statuses as epilog (unless it has its
    own: :func:`~mtasts.cli.exitcodes.exit_status_help`, 1 only where the command exits with
    it) and every group the scheme, so that each ``--help`` ends with what its exit status
    means, including commands added later (which never exit 1 until they have a row)."""
    for command in group.registered_commands:
        if command.epilog is None:
            name = command.name or (command.callback.__name__.replace("_", "-") if command.callback else "")
            command.epilog = exit_status_help(" ".join((*path, name)))
    for info in group.registered_groups:
        if info.epilog is None or isinstance(info.epilog, DefaultPlaceholder):
            info.epilog = EXIT_CODES_HELP
        if info.typer_instance is not None:
            _epilog_everywhere(info.typer_instance, (*path, str(info.name)))


_epilog_everywhere(app)


def _language(value: str | None) -> str | None:
    """``--lang``, eager so that the help it comes before (``mtasts --lang ja --help``) is in it.

    The choice lasts as long as the run: until its usage error, if any, is shown (after the
    command's context has closed), then the environment's language is back, so a command run
    in-process (a test's ``CliRunner``) leaves no language behind for the next."""
    if value is not None:
        if value.lower() not in LANGUAGES:
            raise typer.BadParameter(f"{value!r}: choose en or ja", param_hint="--lang")
        choose_language(value.lower())
    return value


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
    width: Annotated[
        int | None,
        typer.Option(
            "--width",
            min=output.MIN_WIDTH,
            envvar="MTASTS_WIDTH",
            metavar="N",
            show_default=False,
            help="Lay output out for N columns (default: the terminal's width, or COLUMNS; "
            "output that is not a terminal is not wrapped).",
        ),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            metavar="en|ja",
            show_default=False,
            is_eager=True,
            callback=_language,
            help="The language of findings, fixes and verdicts (default: LC_ALL / LC_MESSAGES / LANG; "
            "codes and JSON stay English).",
        ),
    ] = None,
) -> None:
    output.configure(width=width)  # --lang was applied as it was read (_language)
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
        store_error = _store_error(exc)
        if store_error is not None:  # anticipated, but a command let it through: still one line
            message, code = store_error
            sys.stderr.write(f"mtasts: error: {in_language(message)}\n")
            sys.exit(int(code))
        if "--debug" in args or os.environ.get(_DEBUG_ENV) == "1":
            traceback.print_exc()
        sys.stderr.write(
            f"mtasts: internal error: {type(exc).__name__}: {exc}\n"
            "  This is a bug in mtasts; rerun with --debug for the traceback and report it.\n"
        )
        sys.exit(int(ExitCode.INTERNAL))


def _store_error(exc: BaseException) -> tuple[str, ExitCode] | None:
    """The message and exit status of ``exc`` if it is a :class:`~mtasts.store.errors.StoreError`
    (a bad URL is a usage error; the rest "could not run"). Looked up in ``sys.modules``: a
    command that never loaded the store cannot raise one, and the commands that need no
    database do not pay for importing SQLAlchemy."""
    errors = sys.modules.get("mtasts.store.errors")
    if errors is None or not isinstance(exc, errors.StoreError):
        return None
    code = ExitCode.USAGE if isinstance(exc, errors.UnsupportedDatabase) else ExitCode.CANNOT_RUN
    return str(exc.message), code

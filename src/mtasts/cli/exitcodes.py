"""One exit-code scheme for every ``mtasts`` command, and the one way a command fails.

========  ================  ==========================================================
code      name              meaning
========  ================  ==========================================================
0         ``OK``            the command ran and found nothing at or above ``--fail-on``
1         ``PROBLEMS``      the command ran and found problems (at or above ``--fail-on``)
2         ``USAGE``         the command line is wrong (Click's own code for usage errors)
3         ``CANNOT_RUN``    the command could not do its job: network, database, files
4         ``INTERNAL``      a bug in mtasts: one line on stderr, ``--debug`` for the traceback
========  ================  ==========================================================

A command never lets an anticipated failure escape as a traceback: it raises
:class:`CommandError` (or calls :func:`fail`), which :func:`mtasts.cli.main.run` turns into one
line on stderr and the code above. Anything else that escapes is an internal error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from enum import IntEnum, StrEnum
from typing import IO, Any, NoReturn

import typer

from mtasts.core.problems import Severity
from mtasts.i18n import current

__all__ = [
    "EXIT_CODES_HELP",
    "WHEN_PROBLEMS",
    "CommandError",
    "ExitCode",
    "FailOn",
    "exit_for",
    "exit_status_help",
    "fail",
    "in_language",
]


class ExitCode(IntEnum):
    """The exit status of every command (documented in the README and in ``mtasts --help``)."""

    OK = 0
    PROBLEMS = 1
    USAGE = 2
    CANNOT_RUN = 3
    INTERNAL = 4


EXIT_CODES_HELP = (
    "Exit status: 0 success, 1 problems found (each command's --help says which), 2 usage error, "
    "3 could not run (network, database, files), 4 internal error (rerun with --debug)."
)
"""The end of ``mtasts --help`` and of each command group's: the scheme, each command its own
meaning of 1 (:func:`exit_status_help`)."""

WHEN_PROBLEMS: dict[str, str] = {
    "check": "findings at or above --fail-on",
    "lint policy": "problems at or above --fail-on",
    "lint record": "problems at or above --fail-on",
    "lint tlsrpt": "problems at or above --fail-on",
    "publish verify": "findings at or above --fail-on",
    "monitor run": "an event opened (only with --exit-status)",
    "report digest": "an alert (only with --exit-status)",
    "report parse": "an input is not a report",
    "report ingest": "a source was set aside",
    "publish plan": "a guard refuses a step",
    "publish apply": "a domain's run stopped before the end (refused, failed, or waiting)",
    "publish retire": "retiring was refused or failed",
    "publish init": "the domain does not exist or accepts no mail, or its entry cannot be written",
    "demo": "a domain did not come out as its scenario expects",
    "resolver query": "the daemon answers TEMP, TIMEOUT or PERM (with --direct: the answer is fail-open)",
    "resolver selftest": "an answer is not valid for this Postfix",
    "resolver cache show": "the domain is not cached",
}
"""What exit status 1 means, for each command that exits with it (the command's path after
``mtasts``); a command not here never exits 1. One row per command: its ``--help`` ends with
:func:`exit_status_help` of its row, and tests/i18n/test_exit_status_help.py checks each row
against the command's options (no row names an option its command lacks)."""


def exit_status_help(path: str) -> str:
    """The exit statuses of the command at ``path`` (``"monitor run"``), the last paragraph of
    its ``--help``: 1 only for a command that exits with it, in its own words."""
    problems = WHEN_PROBLEMS.get(path)
    one = "" if problems is None else f"1 {problems}, "
    return (
        f"Exit status: 0 success, {one}2 usage error, "
        "3 could not run (network, database, files), 4 internal error (rerun with --debug)."
    )


class FailOn(StrEnum):
    """The least severe finding that makes a command exit with :attr:`ExitCode.PROBLEMS`."""

    WARNING = "warning"
    ERROR = "error"
    NEVER = "never"


class CommandError(typer.Exit):
    """An anticipated failure, said in one line for a person: what failed and what to do.

    ``code`` is :attr:`ExitCode.CANNOT_RUN` unless the user's command line is at fault
    (:attr:`ExitCode.USAGE`). The line is written when the error is made, and the error is a
    ``typer.Exit``: typer (0.25 and later) runs commands on its own copy of Click, so a
    ``click.ClickException`` escaped as an internal error, and its own ClickException is drawn
    in a Rich box, not one line. ``Exit`` ends the command with ``code`` wherever it runs (the
    console script, ``CliRunner``).
    """

    def __init__(self, message: str, code: ExitCode = ExitCode.CANNOT_RUN) -> None:
        super().__init__(int(code))
        self.message = message
        self.code = code
        self.show()

    def show(self, file: IO[Any] | None = None) -> None:
        stream = sys.stderr if file is None else file
        stream.write(f"mtasts: error: {in_language(self.message)}\n")
        stream.flush()


def in_language(message: str) -> str:
    """``message`` (an English sentence) in the reader's language (:func:`mtasts.i18n.current`)
    when the catalogue knows all of it, else as it is: a half-translated line helps nobody,
    and a line a command has already translated is not English any more, so it is never
    translated twice. The ``mtasts: error: `` prefix around it stays English, as codes do:
    it is what scripts and searches look for."""
    tr = current()
    if tr.tag == "en":
        return message
    translated = tr.translate(message)
    return translated.text if translated.complete else message


def fail(message: str, code: ExitCode = ExitCode.CANNOT_RUN) -> NoReturn:
    """Stop the command with one line on stderr (``mtasts: error: ...``) and ``code``."""
    raise CommandError(message, code)


def exit_for(severities: Iterable[Severity | None], fail_on: FailOn = FailOn.WARNING) -> ExitCode:
    """:attr:`ExitCode.PROBLEMS` when any severity reaches ``fail_on``, else :attr:`ExitCode.OK`."""
    if fail_on is FailOn.NEVER:
        return ExitCode.OK
    failing = {Severity.ERROR} if fail_on is FailOn.ERROR else {Severity.ERROR, Severity.WARNING}
    return ExitCode.PROBLEMS if any(s in failing for s in severities) else ExitCode.OK

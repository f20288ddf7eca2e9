"""``mtasts report parse``: read report files (JSON, gzip, e-mail, mbox, Maildir) and print them normalised."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from mtasts.cli.exitcodes import ExitCode
from mtasts.cli.output import console, print_json, print_problems
from mtasts.cli.report._common import (
    JsonOption,
    cannot_read,
)
from mtasts.cli.report.tables import report_table
from mtasts.core.problems import ParseError, Severity
from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.i18n import current
from mtasts.report.mail import parse_any
from mtasts.report.sources import STDIN_LABEL, Source, iter_sources, read_stream


def parse_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="Report files: JSON, gzip, e-mails (.eml), mbox or Maildir; - reads standard input."),
    ],
    json_output: JsonOption = False,
) -> None:
    """Read reports and print them normalised. '-' reads one report (JSON or gzip), e-mail or
    mbox from standard input, named <stdin> in the output. Exit status 1 when an input is not a
    report, 3 when a FILE cannot be read (the others are still printed)."""
    out, err, tr = console(), console(stderr=True), current()
    reports: list[tuple[str, TlsRptReport]] = []
    failed = unreadable = False
    stdin_read = False
    for path in files:
        if str(path) == "-" and stdin_read:
            continue  # standard input is read once, however often '-' is given
        stdin_read = stdin_read or str(path) == "-"
        try:
            for source in _sources(path):
                try:
                    reports.extend((source.label, report) for report in parse_any(source.data))
                except ParseError as exc:
                    failed = True
                    print_problems(err, exc.problems, subject=source.label, tr=tr)
                    err.print(tr.gettext("  in %(source)s") % {"source": source.label}, style="where")
        except OSError as exc:
            unreadable = True
            cannot_read(err, path, exc)
    if json_output:
        print_json([{"source": label, **report.to_dict()} for label, report in reports])
    else:
        for label, report in reports:
            out.print(report_table(label, report))
            warnings = [w for w in report.warnings if w.severity is not Severity.ERROR]
            if warnings:
                print_problems(out, warnings, tr=tr)
    if unreadable:
        raise typer.Exit(int(ExitCode.CANNOT_RUN))
    if failed:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _sources(path: Path) -> Iterator[Source]:
    """The sources of one argument: standard input for ``-`` (read as bytes), else the path's."""
    if str(path) != "-":
        return iter_sources(path)
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text-only stdin (an embedding program): its text, as UTF-8
        return iter([Source(STDIN_LABEL, sys.stdin.read().encode("utf-8", "surrogateescape"))])
    return read_stream(stream)

"""``mtasts report ingest``: store reports from files, mbox, Maildir or IMAP; poison is set aside, never lost."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from mtasts.cli.output import console, print_json, print_problems
from mtasts.cli.report._common import (
    DbOption,
    JsonOption,
    cannot_read,
    open_store,
)
from mtasts.i18n import current
from mtasts.i18n.words import counted

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic), IMAP and the server load when a command needs them
    from mtasts.report.ingest import IngestOutcome
    from mtasts.store.interface import ReportStoreProtocol


def _ingest_path(
    store: ReportStoreProtocol, path: Path, outcomes: list[IngestOutcome], err: Console, json_output: bool, retry: bool
) -> bool:
    """Ingest one PATH into ``outcomes`` (``StoreError`` escapes); False when PATH is unreadable."""
    from mtasts.report.ingest import ingest_paths

    try:
        for outcome in ingest_paths(store, [path], retry_failed=retry):
            outcomes.append(outcome)
            if not json_output:
                _print_outcome(err, outcome)
    except OSError as exc:
        cannot_read(err, path, exc)
        return False
    return True


def _print_outcome(err: Console, outcome: IngestOutcome) -> None:
    """A set-aside or skipped source on stderr: the problem, where it is, where it went."""
    problem = outcome.error or outcome.warning
    if problem is None:
        return
    tr = current()
    print_problems(err, [problem], subject=None, tr=tr)
    err.print(tr.gettext("  in %(source)s") % {"source": outcome.label}, style="where")
    if outcome.moved_to is not None and outcome.moved_to != outcome.label:
        err.print(tr.gettext("  set aside: %(place)s") % {"place": outcome.moved_to}, style="where")


def _ingest_summary(outcomes: list[IngestOutcome], database: str, stopped: str | None) -> dict[str, object]:
    return {
        "stored": sum(o.stored for o in outcomes),
        "duplicates": sum(o.duplicates for o in outcomes),
        "set_aside": sum(1 for o in outcomes if o.set_aside),
        "skipped": sum(1 for o in outcomes if o.skipped),
        "database": database,
        "stopped": stopped,
        "sources": [o.to_dict() for o in outcomes],
    }


def ingest_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Report files, e-mails, mbox files, Maildir folders or directories.")
    ] = None,
    imap: Annotated[
        str | None,
        typer.Option(
            "--imap",
            help="Ingest from an IMAP mailbox: imaps://USER[:PASSWORD]@HOST[:PORT]/MAILBOX[?move=FOLDER&timeout=S] "
            "(password also from $MTASTS_IMAP_PASSWORD). Messages are flagged (or moved) after commit.",
            metavar="URL",
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Read again the messages earlier runs set aside (Maildir folder .mtasts-failed, "
            "IMAP keyword TLSRPT-Rejected).",
        ),
    ] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store reports; a report already stored is recognised and skipped. A message that fails is
    set aside (Maildir: folder .mtasts-failed; IMAP: keyword TLSRPT-Rejected) and the run goes
    on. Exit status 1 when a source was set aside, 3 when the database, the IMAP server or a PATH
    could not be used (what was committed stays committed; the rest is left for the next run)."""
    from sqlalchemy.exc import SQLAlchemyError

    from mtasts.cli.exitcodes import ExitCode, fail
    from mtasts.store.errors import StoreError, describe_store_error, redact_url

    out, err, tr = console(), console(stderr=True), current()
    if not paths and not imap:
        fail(tr.text("give at least one PATH, or --imap URL"), ExitCode.USAGE)
    database = url = ""  # known once the store is open (``_store`` reads --db and $MTASTS_DB)
    outcomes: list[IngestOutcome] = []
    stopped: str | None = None
    unreadable = opened = False
    settings = None
    if imap:
        from mtasts.report.imap import parse_imap_url

        try:
            settings = parse_imap_url(imap, os.environ)
        except ValueError as exc:
            fail(str(exc), ExitCode.USAGE)
    try:
        store = open_store(db)
        url, database = store.url, redact_url(store.url)
        with store:
            opened = True
            if settings is not None:
                from mtasts.report.imap import ImapError, ingest_imap

                def record(outcome: IngestOutcome) -> None:
                    outcomes.append(outcome)
                    if not json_output:
                        _print_outcome(err, outcome)

                try:
                    asyncio.run(ingest_imap(store, settings, retry_failed=retry_failed, on_outcome=record))
                except ImapError as exc:  # says what was processed and what is left
                    stopped = str(exc)
            if stopped is None:
                for path in paths or []:
                    unreadable = not _ingest_path(store, path, outcomes, err, json_output, retry_failed) or unreadable
    except StoreError as exc:
        if not opened:
            fail(tr.text(exc.message))
        stopped = f"{exc.message}; stopped: what was stored is committed, the rest is left for the next run"
    except SQLAlchemyError as exc:  # opening the store (the ingest itself raises StoreError)
        fail(tr.text(describe_store_error(exc, url)))
    summary = _ingest_summary(outcomes, database, stopped)
    if json_output:
        print_json(summary)
    else:
        set_aside = summary["set_aside"]
        stored = summary["stored"]
        assert isinstance(stored, int)
        reports = counted(stored, "report")
        out.print(
            tr.gettext(
                "%(stored)s stored, %(duplicates)s already stored, %(set_aside)s set aside, "
                "%(skipped)s skipped; database %(database)s"
            )
            % {
                "stored": f"[ok]{reports}[/]",
                "duplicates": summary["duplicates"],
                "set_aside": f"[severity.error]{set_aside}[/]" if set_aside else set_aside,
                "skipped": summary["skipped"],
                "database": database,
            },
            soft_wrap=True,  # one line, whatever the terminal width: scripts and cron mails read it
        )
    if stopped is not None:
        fail(tr.text(stopped))
    if unreadable:
        raise typer.Exit(int(ExitCode.CANNOT_RUN))
    if summary["set_aside"]:
        raise typer.Exit(int(ExitCode.PROBLEMS))

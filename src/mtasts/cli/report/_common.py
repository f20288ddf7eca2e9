"""Options and helpers every ``mtasts report`` command shares: the store, the period, the output file.

What the commands print for a person is in the language of --lang / LANG (:func:`mtasts.i18n.current`:
finished English sentences recognised by their shape in the ``findings`` catalogue, labels looked
up); JSON, CSV, codes and the server's log lines stay English."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.i18n import current

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic), IMAP and the server load when a command needs them
    from mtasts.store.interface import ReportStoreProtocol


JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path, postgresql://...) or SQLite file. "
        "Default: $MTASTS_DB, else reports.sqlite3 in the user data directory.",
        metavar="URL",
    ),
]


DomainOption = Annotated[str | None, typer.Option("--domain", help="Only this policy domain.", metavar="DOMAIN")]
DaysOption = Annotated[
    int | None, typer.Option("--days", min=1, help="Only the last N days (default: everything stored).", metavar="N")
]


def today() -> date:
    return datetime.now(UTC).date()


def since_days(days: int | None) -> date | None:
    return None if days is None else today() - timedelta(days=days - 1)


def normalise_domain(domain: str | None) -> str | None:
    return None if domain is None else domain.strip().rstrip(".").lower()


def open_store(db: str | None, *, create: bool = True) -> ReportStoreProtocol:
    """The store named by ``--db`` (else ``$MTASTS_DB``, else the default file), not opened yet.
    A URL mtasts cannot use is a usage error, said before anything is touched."""
    from mtasts.store.errors import UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url

    try:
        return ReportStore(db or default_db_url(os.environ), create=create)
    except UnsupportedDatabase as exc:
        fail(current().text(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}"), ExitCode.USAGE)


@contextlib.contextmanager
def reading(db: str | None) -> Iterator[ReportStoreProtocol]:
    """The store opened for a read-only command (``summary``, ``export``, ``digest``): it creates
    no database and no folder, and says so when there is none; a database that cannot be used
    (unreachable, missing, locked, unreadable), now or while reading, ends the command with one
    line and :attr:`ExitCode.CANNOT_RUN`."""
    from mtasts.store.errors import StoreError, translate_store_errors

    store = open_store(db, create=False)
    try:
        with store, translate_store_errors(store.url):
            yield store
    except StoreError as exc:
        fail(current().text(exc.message), ExitCode.CANNOT_RUN)


def cannot_read(err: Console, path: Path, exc: OSError) -> None:
    tr = current()
    err.print(f"[severity.error]{tr.gettext('error')}:[/] {tr.text(f'cannot read {path}: {exc.strerror or exc}')}")


def check_output(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written: its folder must exist (it is not
    created: a typo in a path should not leave folders behind) and ``path`` must not be one."""
    folder = path.parent
    if not folder.is_dir():
        fail(current().text(f"cannot write {path}: the folder {folder} does not exist (create it first)"))
    if path.is_dir():
        fail(current().text(f"cannot write {path}: it is a folder; give a file name"))


def write_output(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(current().text(f"cannot write {path}: {exc.strerror or exc}"))


def json_text(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

"""The SQLite batch writer: the rows through the driver's cursor, the roll-ups merged once per batch.

SQLite runs in this process, so a statement costs no round trip, only the work itself; what is
worth saving is SQLAlchemy's per-statement cost (several times SQLite's own) and the roll-up
upserts (one per key and batch, the batch summed in Python first). The values are stored
exactly as SQLAlchemy stores them (its SQLite date and datetime text formats), so reads through
SQLAlchemy are unchanged. A report already stored is skipped by ``ON CONFLICT (dedup_key) DO
NOTHING``; SQLite has one writer at a time, so two ingesters cannot interleave inside a batch.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any, Final, cast

import orjson
from sqlalchemy import Engine, Table, case, literal_column
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.store.models import (
    Base,
    DayTotalRow,
    FailureDayRow,
    FailureDetailRow,
    FailureTotalRow,
    PolicyResultRow,
    ReporterDayRow,
    ReportRow,
    SenderTotalRow,
)
from mtasts.store.rollups import (
    DAY_RULES,
    FAILURE_DAY_RULES,
    FAILURE_RULES,
    MAX_COUNT,
    REPORTER_RULES,
    SENDER_RULES,
    Rule,
    rollup_delta,
    sorted_rows,
)

__all__ = ["BATCH", "SqliteWriter", "pragmas", "reader_pragmas"]

BATCH: Final = 500  # reports per roll-up merge

Entry = tuple[str, TlsRptReport, str]  # dedup key, report, source

_RULES: Final[dict[type[Base], tuple[Rule, ...]]] = {
    DayTotalRow: DAY_RULES,
    SenderTotalRow: SENDER_RULES,
    FailureTotalRow: FAILURE_RULES,
    ReporterDayRow: REPORTER_RULES,
    FailureDayRow: FAILURE_DAY_RULES,
}


def _text(moment: datetime) -> str:
    """SQLAlchemy's SQLite datetime text (``%Y-%m-%d %H:%M:%S.%f``), written faster than strftime."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert(model: type[Base], *, ignore: str = "") -> str:
    names = [c.name for c in cast(Table, model.__table__).columns if c.name != "id"]
    conflict = f" ON CONFLICT ({ignore}) DO NOTHING" if ignore else ""
    marks = ", ".join("?" * len(names))
    return f"INSERT INTO {model.__tablename__} ({', '.join(names)}) VALUES ({marks}){conflict}"  # noqa: S608 (names from the models)


@functools.cache
def _statements() -> tuple[str, str, str]:
    return _insert(ReportRow, ignore="dedup_key"), _insert(PolicyResultRow), _insert(FailureDetailRow)


@functools.cache
def _upsert(model: type[Base]) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` merging by the rules of the table."""
    table = cast(Table, model.__table__)
    key = [column.name for column in table.primary_key.columns]
    values = [column for column in table.columns if column.name not in key]
    statement = sqlite_insert(table)
    new = statement.excluded
    merged: dict[str, Any] = {}
    for column, rule in zip(values, _RULES[model], strict=True):
        old, value = column, new[column.name]
        if rule == "add":
            top: Any = literal_column(str(MAX_COUNT))
            merged[column.name] = case((old > top - value, top), else_=old + value)
        else:  # SQLite's min() and max() of a NULL are NULL: the NULL cases first
            better = value < old if rule == "least" else value > old
            merged[column.name] = case((old.is_(None), value), (value.is_(None), old), (better, value), else_=old)
    upsert = statement.on_conflict_do_update(index_elements=key, set_=merged)
    return str(upsert.compile(dialect=sqlite_dialect.dialect()))


class _DateText(dict[date | None, str | None]):
    """A date as SQLite text, each distinct day converted once (a batch has a few dozen): read
    as ``text[day]``, a dictionary lookup, where a call per value cost more than the upserts."""

    def __missing__(self, day: date | None) -> str | None:
        text = self[day] = None if day is None else day.isoformat()
        return text


class SqliteWriter:
    """The batch writer of one SQLite store (it keeps nothing between calls)."""

    def store(self, engine: Engine, entries: Iterable[Entry], received: datetime) -> set[str]:
        """Store ``entries`` (none repeating a key) in one transaction; the keys stored now.

        Raises SQLAlchemy's exceptions, as if the statements had gone through SQLAlchemy; then
        nothing of the call is kept.
        """
        received_text = _text(received)
        stored: set[str] = set()
        iterator = iter(entries)
        with engine.begin() as connection:
            cursor: sqlite3.Cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr,assignment]
            try:
                while batch := list(itertools.islice(iterator, BATCH)):
                    stored |= _store_batch(cursor, batch, received_text)
            except sqlite3.Error as exc:  # the same exceptions as through SQLAlchemy (OperationalError, ...)
                raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
            finally:
                cursor.close()
        return stored


def _store_batch(cursor: sqlite3.Cursor, batch: list[Entry], received_text: str) -> set[str]:
    insert_report, insert_policy, insert_failure = _statements()
    stored: set[str] = set()
    fresh: list[TlsRptReport] = []
    failure_pks: list[int] = []
    execute = cursor.execute
    for key, report, source in batch:
        execute(
            insert_report,
            (
                key,
                report.organization_name,
                report.report_id,
                report.contact_info,
                _text(report.start),
                _text(report.end),
                report.day.isoformat(),
                report.digest,
                report.raw,
                source,
                received_text,
            ),
        )
        if cursor.rowcount != 1:  # 0: stored before (ON CONFLICT DO NOTHING)
            continue
        stored.add(key)
        fresh.append(report)
        report_pk = cursor.lastrowid
        for position, policy in enumerate(report.policies):
            execute(
                insert_policy,
                (
                    report_pk,
                    position,
                    policy.policy_type.value,
                    policy.policy_domain,
                    orjson.dumps(policy.policy_string).decode(),
                    orjson.dumps(policy.mx_host).decode(),
                    policy.total_successful,
                    policy.total_failure,
                ),
            )
            policy_pk = cursor.lastrowid
            for index, detail in enumerate(policy.failure_details):
                execute(
                    insert_failure,
                    (
                        policy_pk,
                        index,
                        str(detail.result_type),
                        detail.failed_session_count,
                        detail.sending_mta_ip,
                        detail.receiving_mx_hostname,
                        detail.receiving_mx_helo,
                        detail.receiving_ip,
                        detail.additional_information,
                        detail.failure_reason_code,
                    ),
                )
                failure_pks.append(cast(int, cursor.lastrowid))
    if fresh:
        days, senders, found, reporters, found_days = rollup_delta(fresh, failure_pks)
        text = _DateText()
        if days:
            day_rows = [(d, text[w], k, *counts) for d, w, k, *counts in sorted_rows(days)]
            cursor.executemany(_upsert(DayTotalRow), day_rows)
        if senders:
            sender_rows = [
                (d, o, ok, bad, text[f], text[la], *rest) for d, o, ok, bad, f, la, *rest in sorted_rows(senders)
            ]
            cursor.executemany(_upsert(SenderTotalRow), sender_rows)
        if found:
            value_rows = [(d, o, k, v, bad, text[f], text[la], n) for d, o, k, v, bad, f, la, n in sorted_rows(found)]
            cursor.executemany(_upsert(FailureTotalRow), value_rows)
            value_day_rows = [(d, o, k, v, text[w], bad, n) for d, o, k, v, w, bad, n in sorted_rows(found_days)]
            cursor.executemany(_upsert(FailureDayRow), value_day_rows)
        reporter_rows = [(d, o, text[w], *counts) for d, o, w, *counts in sorted_rows(reporters)]
        cursor.executemany(_upsert(ReporterDayRow), reporter_rows)
    return stored


def reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A reader's connection changes nothing in the file: the journal mode (WAL) is already
    recorded in a database that mtasts created; the rest applies to this connection only."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A writer's connection: WAL (readers never wait for the writer) with ``synchronous=FULL``,
    so that a commit is on disk when it returns. Ingest marks a message processed (a Maildir
    message moved to ``cur/``, an IMAP message flagged) and ``report serve`` answers 201 only
    after the commit; with ``NORMAL`` the last commits before a power failure could vanish while
    their marks stayed, and those reports would be lost. The flush costs one ``fsync`` per
    commit, i.e. per group of up to 200 messages (measured: no difference in
    ``bench/report.py --ingest`` within the machine's noise)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()

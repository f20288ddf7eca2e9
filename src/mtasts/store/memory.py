"""A report store in plain Python: the same contract as the SQL store, nothing on disk.

For tests and the web UI's previews: fast, no schema, nothing to clean up. It keeps what a
database keeps (the reports in the order stored, with ids, and the five roll-up tables merged
by the rules of :mod:`mtasts.store.rollups`), so the contract tests run on it unchanged. Several
:class:`MemoryReportStore` objects built on one :class:`MemoryDatabase` see the same reports,
as several ``ReportStore`` objects on one URL do; a lock makes each write atomic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Final, Self

from mtasts.core.tlsrpt_report import (
    DayTotal,
    DayTwice,
    FailureRow,
    FailureTotal,
    PolicyRow,
    Rollup,
    SenderTotal,
    SenderTwice,
    TlsRptReport,
    report_rows,
)
from mtasts.store.errors import StoreMissing
from mtasts.store.interface import (
    AddResult,
    Dashboard,
    DaySums,
    Message,
    MessageOutcome,
    Reporter,
    StoredReport,
    dedup_key,
)
from mtasts.store.rollups import (
    DAY_RULES,
    FAILURE_DAY_RULES,
    FAILURE_RULES,
    REPORTER_RULES,
    SENDER_RULES,
    RollupDelta,
    day_sums,
    merge,
    rollup_delta,
)

__all__ = ["MemoryDatabase", "MemoryReportStore"]

MEMORY_URL: Final = "memory:"


@dataclass(frozen=True, slots=True)
class _Row:
    """One stored report with what the SQL store would have given it: ids and arrival."""

    pk: int
    report: TlsRptReport
    source: str
    received_at: datetime
    failure_ids: tuple[int, ...]


@dataclass
class MemoryDatabase:
    """What a database is to the stores opened on it: the reports and the roll-up tables."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: bool = False  # a writer opened it (a reader refuses a database nobody made)
    rows: dict[str, _Row] = field(default_factory=dict)  # by dedup key, in the order stored
    next_failure_id: int = 1
    rollups: RollupDelta = field(default_factory=lambda: ({}, {}, {}, {}, {}))


class MemoryReportStore:
    """:class:`~mtasts.store.interface.ReportStoreProtocol` in memory (see the module)."""

    def __init__(self, database: MemoryDatabase | None = None, *, create: bool = True) -> None:
        self._database = MemoryDatabase() if database is None else database
        self._create = create
        self._open = False

    @property
    def database(self) -> MemoryDatabase:
        """What this store reads and writes: build another store on it to share the reports."""
        return self._database

    @property
    def url(self) -> str:
        return MEMORY_URL

    @property
    def display_url(self) -> str:
        return MEMORY_URL

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        database = self._database
        with database.lock:
            if self._create:
                database.created = True
            elif not database.created:
                raise StoreMissing(f"database {MEMORY_URL} holds no mtasts reports: store reports first with a writer")
        self._open = True

    def close(self) -> None:
        self._open = False

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def _db(self) -> MemoryDatabase:
        if not self._open:
            raise RuntimeError("the store is not open: call open() or use 'with MemoryReportStore(...)'")
        return self._database

    # -- writing ----------------------------------------------------------------------------

    def add_reports(self, reports: Iterable[TlsRptReport], *, source: str = "", now: datetime) -> list[AddResult]:
        """One message, all or none: the reports are read before anything is stored."""
        (outcome,) = self._add([Message(source, list(reports))], now, isolate=False)
        return list(outcome.results)

    def add_messages(self, messages: Sequence[Message], *, now: datetime) -> list[MessageOutcome]:
        return self._add(messages, now, isolate=True)

    def _add(self, messages: Sequence[Message], now: datetime, *, isolate: bool) -> list[MessageOutcome]:
        received = now.astimezone(UTC)
        database = self._db
        outcomes = []
        with database.lock:
            for message in messages:
                try:
                    reports = list(message.reports)
                except Exception as exc:  # a message that cannot even be read is left out
                    if not isolate:
                        raise
                    outcomes.append(MessageOutcome(message.source, error=exc))
                    continue
                outcomes.append(MessageOutcome(message.source, _store(database, reports, message.source, received)))
        return outcomes

    # -- reading ----------------------------------------------------------------------------

    def count(self) -> int:
        return len(self._db.rows)

    def stamp(self) -> int:
        with self._db.lock:
            return sum(values[-1] for values in self._db.rollups[1].values())

    def has(self, key: str) -> bool:
        return key in self._db.rows

    def stored_report(self, key: str) -> StoredReport | None:
        row = self._db.rows.get(key)
        return None if row is None else StoredReport(row.report, row.source, row.received_at)

    def _rows(self, since: date | None, domain: str | None) -> list[_Row]:
        """The stored reports of ``since`` on (with a policy for ``domain``), by day and id."""
        with self._db.lock:
            rows = list(self._db.rows.values())
        if since is not None:
            rows = [row for row in rows if row.report.day >= since]
        if domain is not None:
            rows = [row for row in rows if any(p.policy_domain == domain for p in row.report.policies)]
        rows.sort(key=lambda row: (row.report.day, row.pk))
        return rows

    def reports(self, *, since: date | None = None, domain: str | None = None) -> Iterator[StoredReport]:
        for row in self._rows(since, domain):
            yield StoredReport(row.report, row.source, row.received_at)

    def policy_rows(self, *, since: date | None = None, domain: str | None = None) -> list[PolicyRow]:
        found = [policy for row in self._rows(since, domain) for policy in report_rows(row.report)[0]]
        return found if domain is None else [row for row in found if row.policy_domain == domain]

    def failure_rows(self, *, since: date | None = None, domain: str | None = None) -> list[FailureRow]:
        found = [failure for row in self._rows(since, domain) for failure in report_rows(row.report)[1]]
        return found if domain is None else [row for row in found if row.policy_domain == domain]

    def _tables(self, since: date | None, domain: str | None) -> list[list[tuple[Any, ...]]]:
        """The rows of the roll-up tables (key, then values), or (``since`` given) of what the
        reports of those days add to them; ``domain``: its rows only."""
        if since is None:
            with self._db.lock:
                tables: RollupDelta = tuple(  # type: ignore[assignment]
                    {key: list(values) for key, values in table.items()} for table in self._db.rollups
                )
        else:
            rows = self._rows(since, None)
            tables = rollup_delta((row.report for row in rows), (i for row in rows for i in row.failure_ids))
        return [
            [(*key, *values) for key, values in table.items() if domain is None or key[0] == domain] for table in tables
        ]

    def rollup(self, *, since: date | None = None, domain: str | None = None) -> Rollup:
        """From the roll-up tables, or (``since`` given) summed from the reports of those days."""
        if domain is not None and not domain:
            return Rollup()  # no policy domain is empty ('' stands for none in the roll-ups)
        days, senders, failures, _, _ = self._tables(since, domain)
        return _as_rollup(days, senders, failures)

    def dashboard(self, *, since: date | None = None, until: date | None = None, window: int = 30) -> Dashboard:
        _, senders, failures, _, _ = self._tables(since, None)
        return Dashboard(
            _as_rollup([], senders, failures),
            tuple(self.reporters(since=since)),
            self.day_sums(since=since, until=until, window=window),
        )

    def day_sums(self, *, since: date | None = None, until: date | None = None, window: int = 30) -> DaySums:
        return day_sums(self._tables(since, None)[0], until, window)

    def reporters(self, *, since: date | None = None, domain: str | None = None) -> list[Reporter]:
        if domain is not None and not domain:
            return []
        found: dict[tuple[str, str], list[Any]] = {}
        for key, org, day, *_ in self._tables(since, domain)[3]:
            known = found.get((key, org))
            if known is None:
                found[(key, org)] = [day, 1]
            else:
                known[0] = max(known[0], day)
                known[1] += 1
        return [Reporter(key or None, org, last, days) for (key, org), (last, days) in found.items()]


def _store(
    database: MemoryDatabase, reports: list[TlsRptReport], source: str, received: datetime
) -> tuple[AddResult, ...]:
    """Store the new ones of ``reports`` (the caller holds the lock; nothing here can fail)."""
    results = []
    fresh: list[_Row] = []
    keys: set[str] = set()
    for report in reports:
        key = dedup_key(report)
        new = key not in database.rows and key not in keys
        results.append(AddResult(key, new, report.organization_name, report.report_id))
        if not new:
            continue
        keys.add(key)
        details = sum(len(policy.failure_details) for policy in report.policies)
        first = database.next_failure_id
        database.next_failure_id += details
        pk = len(database.rows) + len(fresh) + 1
        fresh.append(_Row(pk, report, source, received, tuple(range(first, first + details))))
    for row in fresh:
        database.rows[dedup_key(row.report)] = row
    delta = rollup_delta((row.report for row in fresh), (i for row in fresh for i in row.failure_ids))
    rules_of_tables = (DAY_RULES, SENDER_RULES, FAILURE_RULES, REPORTER_RULES, FAILURE_DAY_RULES)
    for table, changes, rules in zip(database.rollups, delta, rules_of_tables, strict=True):
        for table_key, values in changes.items():
            merge(table, table_key, values, rules)
    return tuple(results)


def _as_rollup(
    days: list[tuple[Any, ...]],
    senders: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
) -> Rollup:
    """Table rows as a :class:`Rollup`: ``''`` back to ``None`` where the tables use it for none;
    what was counted twice from the ``twice_*`` values of the day and sender rows."""
    day_totals: tuple[DayTotal, ...] = tuple((d or None, when, k, ok, bad) for d, when, k, ok, bad, _, _ in days)
    days_twice: tuple[DayTwice, ...] = tuple(
        (d or None, when, ok, bad) for d, when, _, _, _, ok, bad in days if ok or bad
    )
    sender_totals: tuple[SenderTotal, ...] = tuple(
        (d or None, o, ok, bad, f, la) for d, o, ok, bad, f, la, *_ in senders
    )
    senders_twice: tuple[SenderTwice, ...] = tuple(
        (d or None, o, ok, bad) for d, o, _, _, _, _, ok, bad, _ in senders if ok or bad
    )
    failure_totals: tuple[FailureTotal, ...] = tuple(
        (d or None, o, k, v if k == "result_type" else v or None, bad, f, la, seen)
        for d, o, k, v, bad, f, la, seen in failures
    )
    return Rollup(day_totals, sender_totals, failure_totals, days_twice, senders_twice)

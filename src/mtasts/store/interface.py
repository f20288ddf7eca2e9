"""What callers need from a report store, as one typed protocol, and the values it hands out.

Everything outside :mod:`mtasts.store` (``report ingest``, the IMAP reader, ``report serve``,
``summary``, ``export``, ``digest``) types against :class:`ReportStoreProtocol`; two families
implement it: :class:`mtasts.store.store.ReportStore` (SQLAlchemy over SQLite or PostgreSQL,
with the dialect-specific batch writers in :mod:`mtasts.store.sqlite` and
:mod:`mtasts.store.postgresql`) and :class:`mtasts.store.memory.MemoryReportStore` (plain
Python, for tests and the web UI). ``tests/store/test_store.py`` runs the same contract on all.

The protocol is deliberately small: a new need (the publish history of a later issue) is a new
protocol beside this one, implemented by the same classes, rather than a wider one.

This module imports no database library: a caller that only needs the types stays light.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from mtasts.core.tlsrpt_report import FailureRow, PolicyRow, Rollup, TlsRptReport

__all__ = [
    "AddResult",
    "Dashboard",
    "DaySums",
    "DomainSums",
    "Message",
    "MessageOutcome",
    "ReportStoreProtocol",
    "Reporter",
    "StoredReport",
    "dedup_key",
]


def dedup_key(report: TlsRptReport) -> str:
    """What makes two reports the same: organisation and report-id, else the JSON's SHA-256."""
    if report.report_id:
        return hashlib.sha256(f"{report.organization_name}\0{report.report_id}".encode()).hexdigest()
    return report.digest


@dataclass(frozen=True, slots=True)
class AddResult:
    """What happened to one report: stored now, or already there (``stored`` False)."""

    key: str
    stored: bool
    organization_name: str
    report_id: str


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A report as kept: the parsed value plus where and when it arrived."""

    report: TlsRptReport
    source: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    """The reports of one source (a file, a mail, a POST): stored all together or not at all."""

    source: str
    reports: Sequence[TlsRptReport]


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """What :meth:`ReportStoreProtocol.add_messages` did with one message: its ``results`` once
    committed, or the ``error`` the store raised on it alone (nothing of it was kept)."""

    source: str
    results: tuple[AddResult, ...] = ()
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Reporter:
    """One sending organisation's reports for one policy domain (``None``: reports that name
    none) in a selection: the newest day a report covered, and on how many days it reported."""

    policy_domain: str | None
    organization_name: str
    last_report: date
    days_reported: int


@dataclass(frozen=True, slots=True)
class DomainSums:
    """One policy domain's day totals in a selection, summed (see :class:`DaySums`)."""

    policy_domain: str | None
    successful: int  # counted once (see mtasts.report.analysis.count_once)
    failed: int
    newest: date  # the newest day of its day totals (of any policy type)
    has_sts: bool  # whether any of them is of policy type ``sts``
    sts_successful: int  # its ``sts`` sessions in its readiness window, as reported
    sts_failed: int


@dataclass(frozen=True, slots=True)
class DaySums:
    """The day totals of every domain in a selection summed by the store, what a view of every
    domain shows of them (:func:`mtasts.report.analysis.overview_sums`, ``readiness_sums``),
    so that it never reads one row per domain, day and policy type. Every tuple in no
    particular order; the counts exact (not saturated: sums of saturated counts)."""

    domains: tuple[DomainSums, ...] = ()
    daily: tuple[tuple[date, int, int], ...] = ()  # day, successful, failed: every domain's, counted once
    policy_types: tuple[tuple[str, int, int], ...] = ()  # policy type, successful, failed: as reported
    double_counted: tuple[int, int] = (0, 0)  # what count_once left out, successful and failed
    until: date | None = None  # the readiness windows end here (None: at each domain's newest day)
    window: int = 30  # days in a readiness window


@dataclass(frozen=True, slots=True)
class Dashboard:
    """What a view of every domain reads (:meth:`ReportStoreProtocol.dashboard`)."""

    rollup: Rollup  # without ``days`` and ``days_twice``: ``sums`` has what the view shows of them
    reporters: tuple[Reporter, ...]
    sums: DaySums


@runtime_checkable
class ReportStoreProtocol(Protocol):
    """A TLSRPT report store. Building one does no I/O; :meth:`open` (or ``with``) does.

    Writes are idempotent (a report already stored, by :func:`dedup_key`, is skipped, also when
    two writers race) and atomic per message; reads see committed writes only.
    """

    @property
    def url(self) -> str:
        """Where the reports are, as given (may hold a password: show :attr:`display_url`)."""
        ...

    @property
    def display_url(self) -> str:
        """Where the reports are, as a person should see it (no password)."""
        ...

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (and create or upgrade the schema, for a writer); opening twice is harmless."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    # -- writing ----------------------------------------------------------------------------

    def add_reports(self, reports: Iterable[TlsRptReport], *, source: str = "", now: datetime) -> list[AddResult]:
        """Store one message's reports in one transaction, all or none (also when ``reports``
        raises while being read); returns once committed, one result per report in order."""
        ...

    def add_messages(self, messages: Sequence[Message], *, now: datetime) -> list[MessageOutcome]:
        """Store several messages with one commit (what makes bulk ingest fast: a commit waits
        for the disk), each still all or none: a message the store refuses is left out, with its
        error in its outcome, and the others are stored. Returns once everything is committed,
        so a caller marks the sources processed only then. An error that is not one message's
        fault (the database is down) raises instead: the caller then marks none of the messages,
        and reading them again finds any that were stored as duplicates."""
        ...

    # -- reading ----------------------------------------------------------------------------

    def count(self) -> int:
        """How many reports are stored."""
        ...

    def has(self, key: str) -> bool:
        """Whether the report with this :func:`dedup_key` is stored."""
        ...

    def stamp(self) -> int:
        """A number that grows whenever a stored report adds to what :meth:`rollup` and
        :meth:`reporters` say (every report with a policy result), and only then: what a
        reader keeps a computed view by. Cheap where :meth:`count` is not (it reads a few
        thousand roll-up rows, not every report: PostgreSQL counts rows by reading them)."""
        ...

    def stored_report(self, key: str) -> StoredReport | None: ...

    def reports(self, *, since: date | None = None, domain: str | None = None) -> Iterator[StoredReport]:
        """Stored reports, by day then in the order stored (``domain``: with a policy for it)."""
        ...

    def policy_rows(self, *, since: date | None = None, domain: str | None = None) -> list[PolicyRow]:
        """Every stored policy result, flattened, by day then in the order stored."""
        ...

    def failure_rows(self, *, since: date | None = None, domain: str | None = None) -> list[FailureRow]:
        """Every stored failure detail, flattened, by day then in the order stored."""
        ...

    def rollup(self, *, since: date | None = None, domain: str | None = None) -> Rollup:
        """The stored rows summed per the keys of :class:`Rollup`; its ``days``, ``senders``
        and ``failures`` equal, up to order, ``rollup_rows(self.policy_rows(...),
        self.failure_rows(...))``. Its ``days_twice`` and ``senders_twice`` (the sessions
        reports counted under both ``tlsa`` and ``sts``, which the analysis counts once) come
        from what the store kept of each report at ingest: flat rows cannot say which report
        a row came from."""
        ...

    def day_sums(self, *, since: date | None = None, until: date | None = None, window: int = 30) -> DaySums:
        """The day totals of ``rollup(since=since).days`` (every domain) summed: per domain
        (counted once; its newest day; whether it has ``sts`` rows; its ``sts`` sessions in the
        ``window`` days up to ``until``, or up to its newest day when ``until`` is ``None``),
        per day (counted once), per policy type (as reported), and what was counted twice; as
        :func:`mtasts.report.analysis.overview_rollup` and ``readiness_rollup`` sum them."""
        ...

    def dashboard(self, *, since: date | None = None, until: date | None = None, window: int = 30) -> Dashboard:
        """What a view of every domain reads, at once: ``rollup(since=since)`` without its
        ``days`` and ``days_twice``, ``reporters(since=since)`` and ``day_sums(since=since,
        until=until, window=window)`` (the store may read them together)."""
        ...

    def reporters(self, *, since: date | None = None, domain: str | None = None) -> list[Reporter]:
        """Each sending organisation's reports per policy domain, in no particular order: the
        newest day covered and the days reported (from ``since`` on; ``domain``: for it only)."""
        ...

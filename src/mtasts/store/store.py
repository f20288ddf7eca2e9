"""The SQL implementation of :class:`~mtasts.store.interface.ReportStoreProtocol`: SQLite and PostgreSQL.

Building a :class:`ReportStore` connects to nothing; :meth:`ReportStore.open` (or ``with``)
creates the engine and brings the schema to the newest Alembic revision. Ingest is idempotent
(a report is identified by organisation + report-id, or by the SHA-256 of its JSON when it has
no report-id) and transactional (:meth:`ReportStore.add_reports` stores every report of one
message or none of them).

Each ingest also adds its reports to five roll-up tables (sessions per domain and day, per
domain and sender, per failure-detail value, per domain, sender and day the reports, their
sessions and those they counted twice, and per failure-detail value and day), so that
:meth:`ReportStore.rollup` and :meth:`ReportStore.reporters`, what a summary and the dashboard
need, read a few thousand rows (everything stored) or sum the per-day rows of a period in the
database, instead of reading every stored report.

One class serves both databases: SQLAlchemy already gives them one engine, one schema (the
models and Alembic scripts) and one query language for every read, and the reads are most of
this module. Where the dialects really differ, the writes, each has its own small module
(:mod:`mtasts.store.sqlite`, :mod:`mtasts.store.postgresql`) behind one method.

The database access is synchronous SQLAlchemy on purpose: the async callers (``report serve``,
the IMAP reader) call it through ``asyncio.to_thread``. Measured on loopback PostgreSQL (issue
12): the hop to a worker thread adds about 0.15 ms of client CPU to a one-message write of 1 to
3 ms and no wall-clock time, since the write waits on the server and its commit; psycopg's async
connection saves that CPU on a bare insert, but would mean a second writer per dialect, and
SQLite has no async driver that is not a thread itself. A batched write (``add_messages``)
crosses to the thread once per batch.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self, cast
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError as AlembicError
from platformdirs import user_data_path
from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    Engine,
    Select,
    String,
    Table,
    and_,
    case,
    create_engine,
    event,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.orm import Session

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
    parse_report,
)
from mtasts.store import sqlite as sqlite_writer
from mtasts.store.errors import (
    SUPPORTED_URLS,
    StoreError,
    StoreMissing,
    StoreUnavailable,
    UnsupportedDatabase,
    redact_url,
    translate_store_errors,
)
from mtasts.store.interface import (
    AddResult,
    Dashboard,
    DaySums,
    DomainSums,
    Message,
    MessageOutcome,
    Reporter,
    StoredReport,
    dedup_key,
)
from mtasts.store.models import (
    DayTotalRow,
    FailureDayRow,
    FailureDetailRow,
    FailureTotalRow,
    PolicyResultRow,
    ReporterDayRow,
    ReportRow,
    SenderTotalRow,
)
from mtasts.store.rollups import EPOCH as _EPOCH
from mtasts.store.rollups import MAX_COUNT as _MAX_COUNT
from mtasts.store.rollups import SEEN_SHIFT as _SEEN_SHIFT

__all__ = [
    "DB_ENV",
    "AddResult",
    "Message",
    "MessageOutcome",
    "ReportStore",
    "StoredReport",
    "dedup_key",
    "default_db_url",
    "normalise_url",
]

DB_ENV: Final = "MTASTS_DB"
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"


def default_db_url(environ: Mapping[str, str]) -> str:
    """``$MTASTS_DB`` (a URL or a file path), else ``reports.sqlite3`` in the user data directory
    (``$XDG_DATA_HOME/mtasts`` on Linux, through platformdirs)."""
    configured = environ.get(DB_ENV, "").strip()
    if configured:
        return normalise_url(configured)
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg) / "mtasts" if xdg else user_data_path("mtasts", appauthor=False)
    return normalise_url(str(base / "reports.sqlite3"))


def normalise_url(text: str) -> str:
    """A database URL from what a user typed: a path means SQLite; ``postgresql://`` means psycopg 3."""
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


_CONNECT_TIMEOUT: Final = 10  # seconds for a PostgreSQL server to accept a connection
_BACKENDS: Final = {"sqlite": (None, "pysqlite"), "postgresql": ("psycopg",)}


def _supported_url(url: str) -> URL:
    """``url`` parsed, when it names a database mtasts supports; else :class:`UnsupportedDatabase`."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise UnsupportedDatabase(f"{redact_url(url)!r} is not a database URL: give {SUPPORTED_URLS}") from exc
    backend = parsed.get_backend_name()
    driver = url.split("://", 1)[0].partition("+")[2] or None
    if backend not in _BACKENDS or driver not in _BACKENDS[backend]:
        raise UnsupportedDatabase(f"unsupported database URL scheme {parsed.drivername!r}: give {SUPPORTED_URLS}")
    if backend == "postgresql" and not parsed.database:
        raise UnsupportedDatabase(f"{redact_url(url)}: name the database, e.g. postgresql://USER@HOST/DATABASE")
    return parsed


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class _Writer(Protocol):
    """What a dialect's batch writer does (:mod:`mtasts.store.sqlite`, :mod:`mtasts.store.postgresql`)."""

    def store(self, engine: Engine, entries: Iterable[tuple[str, TlsRptReport, str]], received: datetime) -> set[str]:
        """Store ``entries`` (key, report, source; no key twice) in one transaction: the keys stored."""
        ...


def _writer_for(backend: str) -> _Writer:
    if backend == "sqlite":
        return sqlite_writer.SqliteWriter()
    from mtasts.store.postgresql import PostgresWriter  # noqa: PLC0415 (psycopg loads only for PostgreSQL)

    return PostgresWriter()


_ATTEMPTS: Final = 3
_RACES: Final = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected


def _lost_a_race(exc: DBAPIError) -> bool:
    """Whether a rolled-back transaction is worth running again as it was: PostgreSQL broke a
    deadlock with a concurrent writer, or could not serialise it; nothing was kept. (A report
    stored meanwhile by another writer is no error: ``ON CONFLICT DO NOTHING`` skips it.)"""
    return getattr(exc.orig, "sqlstate", None) in _RACES


def _message_at_fault(exc: Exception) -> bool:
    """Whether ``exc``, raised storing some messages, may concern one of them only (a value the
    database refuses, a bug met on one report) rather than the database (down, locked, broken):
    the same split as :func:`mtasts.report.ingest.run_level_store_error`."""
    if isinstance(exc, StoreError):
        return False
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True
    return not isinstance(exc, SQLAlchemyError)


class ReportStore:
    """TLSRPT reports in a SQL database (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``create=True`` (the writers: ``ingest``, ``serve``): opening creates the SQLite file and its
    folder, or the tables, when they do not exist yet. ``create=False`` (the readers: ``summary``,
    ``export``, ``digest``): opening creates nothing and raises :class:`StoreMissing` when there
    is no mtasts database there. A reader still brings an *older* mtasts schema up to date (the
    new tables are computed from the stored rows), since the reading code needs them; it never
    makes a schema where there was none.

    The URL is checked here (no connection is made): anything but SQLite and PostgreSQL
    raises :class:`UnsupportedDatabase`.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_args: Mapping[str, Any] | None = None,
        echo: bool = False,
        create: bool = True,
    ) -> None:
        self.url = normalise_url(url)
        self._parsed = _supported_url(self.url)
        self._connect_args = dict(connect_args or {})
        self._echo = echo
        self._create = create
        self._engine: Engine | None = None
        self._writer: _Writer = _writer_for(self._parsed.get_backend_name())

    @property
    def display_url(self) -> str:
        """The database as a person should see it: the password (if any) replaced by ``***``."""
        return redact_url(self.url)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or ``None`` (PostgreSQL, or SQLite in memory)."""
        database = self._parsed.database
        if self._parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database)

    @property
    def concurrent_reads(self) -> bool:
        """Whether two reads on two connections at once end sooner than one after the other:
        PostgreSQL's work is in its server, and the threads here only wait for it; SQLite's is
        in this process, with the GIL taken back for every row, so reads at once there take
        turns and cost more CPU than one after the other (measured over 1,000,000 session rows
        on 2 loaded cores, the roll-up and the reporters of a dashboard: 175 ms of CPU at
        once, 123 one after the other; wall time 278 and 214 ms, p50)."""
        return self._parsed.get_backend_name() != "sqlite"

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the engine and bring the schema to the newest revision (see the class).

        Raises :class:`StoreMissing` (read-only, nothing there), :class:`StoreUnavailable` (the
        database cannot be reached or used) or :class:`StoreError`; never a driver's exception.
        """
        if self._engine is not None:
            return
        url = self._parsed
        connect_args = dict(self._connect_args)
        path = self.sqlite_path
        if url.get_backend_name() == "sqlite":
            connect_args.setdefault("timeout", 30)
        elif "connect_timeout" not in url.query:  # a server that never answers: fail, not hang
            connect_args.setdefault("connect_timeout", _CONNECT_TIMEOUT)
        if path is not None and self._create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the folder of {path}: {exc.strerror or exc}") from exc
        elif path is not None:
            if not path.is_file():
                raise StoreMissing(
                    f"no report database at {path}"
                    + ("" if path.parent.is_dir() else " (its folder does not exist either)")
                    + ": store reports first with 'mtasts report ingest', or give --db"
                )
            # mode=rw: fail rather than create, should the file vanish after the check above
            url = url.set(database=f"file:{quote(str(path))}", query={**url.query, "mode": "rw", "uri": "true"})
        engine = create_engine(url, connect_args=connect_args, echo=self._echo)
        if url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", sqlite_writer.pragmas if self._create else sqlite_writer.reader_pragmas)
        self._engine = engine
        try:
            with translate_store_errors(self.url):
                if self._create:
                    self.migrate()
                else:
                    self._update_existing_schema()
        except AlembicError as exc:  # a schema mtasts did not write, or one newer than this mtasts
            self.close()
            raise StoreError(f"database {self.display_url}: its schema cannot be used: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _update_existing_schema(self) -> None:
        """For a reader: refuse a database without mtasts' schema; upgrade an older one."""
        with self.engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
        if revision is None:
            raise StoreMissing(
                f"database {self.display_url} holds no mtasts reports (no mtasts tables): "
                "store reports first with 'mtasts report ingest', or give the right --db"
            )
        if revision != ScriptDirectory.from_config(_alembic_config()).get_current_head():
            self.migrate()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the store is not open: call open() or use 'with ReportStore(...)'")
        return self._engine

    def migrate(self, revision: str = "head") -> None:
        """Run the packaged Alembic scripts up to ``revision``."""
        config = _alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    # -- writing ----------------------------------------------------------------------------

    def add_reports(self, reports: Iterable[TlsRptReport], *, source: str = "", now: datetime) -> list[AddResult]:
        """Store every report of one source in one transaction; reports already stored are skipped.

        If anything fails (including the iterable raising), nothing of this call is kept.
        """
        (results,) = self._add_all([(source, reports)], now)
        return results

    def add_messages(self, messages: Sequence[Message], *, now: datetime) -> list[MessageOutcome]:
        """Several messages with one commit, each all or none (see :class:`ReportStoreProtocol`).

        The messages go into one transaction. Should the database refuse one of them, that
        transaction is rolled back and each message is stored again in its own, so that only
        the refused ones are left out (rare: the parser has checked every value already).
        """
        try:
            grouped = self._add_all([(message.source, message.reports) for message in messages], now)
        except Exception as exc:
            if not _message_at_fault(exc):
                raise
        else:
            return [
                MessageOutcome(message.source, tuple(results))
                for message, results in zip(messages, grouped, strict=True)
            ]
        outcomes = []
        for message in messages:
            try:
                results = self.add_reports(message.reports, source=message.source, now=now)
            except Exception as exc:
                if not _message_at_fault(exc):
                    raise
                outcomes.append(MessageOutcome(message.source, error=exc))
            else:
                outcomes.append(MessageOutcome(message.source, tuple(results)))
        return outcomes

    def _add_all(self, messages: Sequence[tuple[str, Iterable[TlsRptReport]]], now: datetime) -> list[list[AddResult]]:
        """Every report of ``messages`` in one transaction, through the dialect's batch writer;
        the results of each message in order. A transaction that lost a race (see
        :func:`_lost_a_race`) is run again: rolled back, it kept nothing."""
        iterators = [iter(reports) for _, reports in messages]
        consumed: list[list[tuple[str, TlsRptReport]]] = [[] for _ in messages]

        def entries() -> Iterator[tuple[str, TlsRptReport, str]]:
            seen: set[str] = set()
            for number, (source, _) in enumerate(messages):
                known = consumed[number]
                for key, report in list(known):  # read by an earlier attempt
                    if key not in seen:
                        seen.add(key)
                        yield key, report, source
                for report in iterators[number]:
                    key = dedup_key(report)
                    known.append((key, report))
                    if key not in seen:
                        seen.add(key)
                        yield key, report, source

        stored: set[str] = set()
        for attempt in range(_ATTEMPTS):
            try:
                stored = self._writer.store(self.engine, entries(), now)
                break
            except DBAPIError as exc:
                if attempt + 1 == _ATTEMPTS or not _lost_a_race(exc):
                    raise
        results: list[list[AddResult]] = []
        for pairs in consumed:
            results.append([])
            for key, report in pairs:
                new = key in stored
                stored.discard(key)  # a repeat in the same call is a duplicate
                results[-1].append(AddResult(key, new, report.organization_name, report.report_id))
        return results

    # -- reading ----------------------------------------------------------------------------

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(ReportRow)) or 0)

    def stamp(self) -> int:
        """The reports of the sender totals, summed (each report adds 1 per policy domain)."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.coalesce(func.sum(SenderTotalRow.reports), 0))).scalar() or 0)

    def has(self, key: str) -> bool:
        with Session(self.engine) as session:
            return session.scalar(select(ReportRow.id).where(ReportRow.dedup_key == key)) is not None

    def reports(self, *, since: date | None = None, domain: str | None = None) -> Iterator[StoredReport]:
        """Stored reports, oldest first, re-read from their raw JSON (the source of truth)."""
        query = select(ReportRow.raw, ReportRow.source, ReportRow.received_at).order_by(ReportRow.day, ReportRow.id)
        if since is not None:
            query = query.where(ReportRow.day >= since)
        if domain is not None:
            query = query.where(
                ReportRow.id.in_(select(PolicyResultRow.report_pk).where(PolicyResultRow.policy_domain == domain))
            )
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        for raw, source, received in rows:
            yield StoredReport(parse_report(raw), source, received.replace(tzinfo=UTC))

    def policy_rows(self, *, since: date | None = None, domain: str | None = None) -> list[PolicyRow]:
        """Every stored policy result, flattened, for analysis."""
        query = select(
            ReportRow.day,
            ReportRow.organization_name,
            PolicyResultRow.policy_type,
            PolicyResultRow.policy_domain,
            PolicyResultRow.total_successful,
            PolicyResultRow.total_failure,
        ).join(PolicyResultRow, PolicyResultRow.report_pk == ReportRow.id)
        if since is not None:
            query = query.where(ReportRow.day >= since)
        if domain is not None:
            query = query.where(PolicyResultRow.policy_domain == domain)
        with Session(self.engine) as session:
            return [PolicyRow(**row._asdict()) for row in session.execute(query.order_by(ReportRow.day, ReportRow.id))]

    def failure_rows(self, *, since: date | None = None, domain: str | None = None) -> list[FailureRow]:
        """Every stored failure detail, flattened, for analysis."""
        query = (
            select(
                ReportRow.day,
                ReportRow.organization_name,
                PolicyResultRow.policy_type,
                PolicyResultRow.policy_domain,
                FailureDetailRow.result_type,
                FailureDetailRow.failed_session_count,
                FailureDetailRow.sending_mta_ip,
                FailureDetailRow.receiving_mx_hostname,
                FailureDetailRow.receiving_ip,
                FailureDetailRow.failure_reason_code,
            )
            .join(PolicyResultRow, PolicyResultRow.report_pk == ReportRow.id)
            .join(FailureDetailRow, FailureDetailRow.policy_pk == PolicyResultRow.id)
        )
        if since is not None:
            query = query.where(ReportRow.day >= since)
        if domain is not None:
            query = query.where(PolicyResultRow.policy_domain == domain)
        with Session(self.engine) as session:
            # by day, then in the order stored: that of the reports, their policies and details
            ordered = query.order_by(ReportRow.day, FailureDetailRow.id)
            return [FailureRow(**row._asdict()) for row in session.execute(ordered)]

    def rollup(self, *, since: date | None = None, domain: str | None = None) -> Rollup:
        """The stored rows summed per the keys of :class:`Rollup`, read from the roll-up tables
        only: everything stored from the totals; a period (``since``) summed in the database
        from the per-day tables (the day totals, the reporter days, the failure values per
        day), or from the totals too when it starts on or before the first stored day. Equal,
        up to order, to ``rollup_rows(self.policy_rows(...), self.failure_rows(...))``."""
        if domain is not None and not domain:
            return Rollup()  # no policy domain is empty ('' stands for none in the roll-ups)
        return self._rollup(since, domain, with_days=True, with_reporters=False)[0]

    def dashboard(self, *, since: date | None = None, until: date | None = None, window: int = 30) -> Dashboard:
        """The roll-up without its day rows, the reporters and :meth:`day_sums`. SQLite reads
        a period's reporters with its senders, from the same reporter days (one read of them
        where there were two: 25 ms of CPU of a 30-day dashboard over 1,000,000 session rows);
        PostgreSQL reads the reporters and the day sums on other connections meanwhile (see
        :attr:`concurrent_reads`)."""
        if self.concurrent_reads:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mtasts-dashboard") as pool:
                later = pool.submit(self.reporters, since=since)
                sums = pool.submit(self.day_sums, since=since, until=until, window=window)
                rollup, _ = self._rollup(since, None, with_days=False, with_reporters=False)
                return Dashboard(rollup, tuple(later.result()), sums.result())
        rollup, found = self._rollup(since, None, with_days=False, with_reporters=True)
        reporters = found if found is not None else self.reporters(since=since)
        return Dashboard(rollup, tuple(reporters), self.day_sums(since=since, until=until, window=window))

    def _rollup(
        self, since: date | None, domain: str | None, *, with_days: bool, with_reporters: bool
    ) -> tuple[Rollup, list[Reporter] | None]:
        """:meth:`rollup` (``with_days`` False: without ``days`` and ``days_twice``), and the
        reporters of a period when asked and read with its senders (see :meth:`dashboard`)."""
        with _gc_paused():
            if since is not None:
                with self.engine.connect() as connection:
                    if _covers_everything(connection, since):
                        since = None  # the same sums, from the smaller tables
            if not self.concurrent_reads:
                day_rows, senders, reporters = self._days_and_senders(since, domain, with_days, with_reporters)
                return _as_rollup(day_rows, senders, self._failure_rows(since, domain)), reporters
            # the failure values (the biggest read) on a second connection meanwhile: the
            # driver lets go of the GIL while the server works, so both reads run at once
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtasts-rollup") as pool:
                found = pool.submit(self._failure_rows, since, domain)
                day_rows, senders, reporters = self._days_and_senders(since, domain, with_days, with_reporters)
                failures = found.result()
        return _as_rollup(day_rows, senders, failures), reporters

    def day_sums(self, *, since: date | None = None, until: date | None = None, window: int = 30) -> DaySums:
        """Summed in the database from the day totals (grouped reads of them: per domain, per
        day and policy type, and, without ``until``, the ``sts`` rows of each domain's
        readiness window): a few hundred rows, where ``rollup().days`` are one per domain, day
        and policy type (18,000 over the bench store: 22 ms to read, 15 to make Python values,
        and 25 to sum in Python; the sums take 20 ms of SQLite CPU)."""
        with self.engine.connect() as connection:
            ends = None if until is None else (until - timedelta(days=window - 1), until)
            per_domain, _ = _summed(connection, lambda exact: _domain_sums(since, ends, exact))
            per_day, _ = _summed(connection, lambda exact: _daily_sums(since, exact))
            windows: dict[Any, tuple[int, int]] = {}
            if until is None:
                found, _ = _summed(connection, lambda exact: _window_sums(since, window, exact, connection))
                windows = {key: (_exact(oh, ol), _exact(bh, bl)) for key, oh, ol, bh, bl in found}
        domains = []
        for key, ok_high, ok_low, bad_high, bad_low, newest, sts, *in_window in per_domain:
            if ends is None:
                sts_ok, sts_bad = windows.get(key, (0, 0))
            else:
                sts_ok, sts_bad = _exact(in_window[0], in_window[1]), _exact(in_window[2], in_window[3])
            domains.append(
                DomainSums(
                    key or None,
                    _exact(ok_high, ok_low),
                    _exact(bad_high, bad_low),
                    _as_date(newest),
                    bool(sts),
                    sts_ok,
                    sts_bad,
                )
            )
        daily: dict[Any, list[int]] = {}
        kinds: dict[str, list[int]] = {}
        twice = [0, 0]
        for day, kind, *sums in per_day:
            once_ok, once_bad, ok, bad, twice_ok, twice_bad = (_exact(sums[n], sums[n + 1]) for n in range(0, 12, 2))
            pair = daily.setdefault(day, [0, 0])
            pair[0] += once_ok
            pair[1] += once_bad
            pair = kinds.setdefault(kind, [0, 0])
            pair[0] += ok
            pair[1] += bad
            twice[0] += twice_ok
            twice[1] += twice_bad
        return DaySums(
            tuple(domains),
            tuple((_as_date(day), ok, bad) for day, (ok, bad) in daily.items()),
            tuple((kind, ok, bad) for kind, (ok, bad) in kinds.items()),
            (twice[0], twice[1]),
            until,
            window,
        )

    def _failure_rows(self, since: date | None, domain: str | None) -> Sequence[Any]:
        """The failure-value rows of a roll-up, in the column order of their totals table."""
        with self.engine.connect() as connection:
            if since is None:
                return _plain_rows(connection, _table_rows(FailureTotalRow, domain))
            by_key = connection.dialect.name == "sqlite"
            return _period_failures(*_summed(connection, lambda exact: _period_values(since, domain, exact, by_key)))

    def _days_and_senders(
        self, since: date | None, domain: str | None, with_days: bool = True, with_reporters: bool = False
    ) -> tuple[Sequence[Any], Sequence[Any], list[Reporter] | None]:
        """The day and sender rows of a roll-up, in the column order of their totals tables
        (``with_days`` False: no day rows); ``with_reporters`` and a period: its reporters too,
        from the same read of the reporter days (else ``None``: read them apart)."""
        with self.engine.connect() as connection:
            days = _plain_rows(connection, _day_rows(since, domain)) if with_days else []
            if since is None:
                return days, _plain_rows(connection, _table_rows(SenderTotalRow, domain)), None
            by_key = connection.dialect.name == "sqlite"
            rows, counts = _summed(
                connection, lambda exact: _period_senders(since, domain, exact, by_key, with_reporters)
            )
        reporters = None
        if with_reporters:
            known = _Days()
            reporters = [Reporter(row[0] or None, row[1], known[row[-2]], int(row[-1])) for row in rows]
        if counts:  # no report count (0) in a period
            return (
                days,
                [(d, o, ok, bad, f, la, tok, tbad, 0) for d, o, _, ok, _, bad, f, la, _, tok, _, tbad, *_ in rows],
                reporters,
            )
        senders = [  # each count comes as two partial sums (see _sum): joined here
            (d, o, _count(oh, ol), _count(bh, bl), first, last, _count(toh, tol), _count(tbh, tbl), 0)
            for d, o, oh, ol, bh, bl, first, last, toh, tol, tbh, tbl, *_ in rows
        ]
        return days, senders, reporters

    def reporters(self, *, since: date | None = None, domain: str | None = None) -> list[Reporter]:
        """From the reporter-day table, grouped in the database (one row per organisation and
        domain: a few thousand, where the policy rows are hundreds of thousands)."""
        if domain is not None and not domain:
            return []
        with self.engine.connect() as connection:
            found = _plain_rows(connection, _reporters_query(since, domain, connection.dialect.name == "sqlite"))
        days: dict[Any, date] = {}
        return [
            Reporter(key or None, org, days.get(last) or days.setdefault(last, _as_date(last)), int(count))
            for key, org, last, count in found
        ]

    def stored_report(self, key: str) -> StoredReport | None:
        with Session(self.engine) as session:
            row = session.scalar(select(ReportRow).where(ReportRow.dedup_key == key))
            if row is None:
                return None
            return StoredReport(parse_report(row.raw), row.source, row.received_at.replace(tzinfo=UTC))


# --- roll-ups -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection while a bulk read builds tens of thousands of small acyclic rows
    (a collection then would walk the whole heap for nothing); the previous state afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_COMPILED: Final[dict[tuple[Any, ...], Any]] = {}
"""The roll-up reads compiled, by dialect and the structure of the query (its SQLAlchemy cache
key; the values are supplied each time): compiling one took 2-3 ms of CPU, and a cold dashboard
runs eight of them. The cache key is ``_generate_cache_key()``, the method SQLAlchemy documents
for custom constructs' caching (its "Enabling Caching Support for Custom Constructs"); a
SQLAlchemy without it gets each query compiled every time, slower but the same rows."""
_COMPILED_SIZE: Final = 256


def _plain_rows(connection: Connection, query: Select[Any]) -> Sequence[Any]:
    """The rows of ``query`` as the driver returns them (plain tuples, no SQLAlchemy row objects:
    several times cheaper for tens of thousands of rows), compiled once per structure (see
    :data:`_COMPILED`). Only for parameters that need no conversion (strings; days, made text
    for SQLite) and values the driver already returns in their Python types (days come back as
    text from SQLite: the caller converts them)."""
    dialect = connection.dialect
    cache_key = getattr(query, "_generate_cache_key", None)  # what SQLAlchemy's own statement cache uses
    key = cache_key() if cache_key is not None else None
    compiled: Any
    if key is None:  # not cacheable (no such query here), or no such method (see _COMPILED)
        compiled = query.compile(dialect=dialect)
        params: Any = compiled.params
    else:
        known = (dialect.name, dialect.server_version_info, key.key)
        compiled = _COMPILED.get(known)
        if compiled is None:
            if len(_COMPILED) >= _COMPILED_SIZE:
                _COMPILED.clear()
            compiled = _COMPILED[known] = dialect.statement_compiler(dialect, query, cache_key=key)
        params = compiled.construct_params(extracted_parameters=key.bindparams)
    if dialect.name == "sqlite":  # a day as SQLAlchemy stores it there: ISO text
        params = {name: v.isoformat() if isinstance(v, date) else v for name, v in params.items()}
    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    dbapi = connection.dialect.loaded_dbapi
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        rows: Sequence[Any] = cursor.fetchall()
    except dbapi.Error as exc:
        raise DBAPIError.instance(str(compiled), params, exc, dbapi.Error) from exc
    finally:
        cursor.close()
    return rows


def _as_date(value: Any) -> date:
    """A day as SQLite (text) or PostgreSQL (a date) returns it."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class _Days(dict[Any, Any]):
    """Days as the driver returns them (SQLite: ISO text) made dates, each distinct one once
    (a roll-up holds tens of thousands of days, a few hundred distinct); ``None`` stays."""

    def __missing__(self, value: Any) -> Any:
        day = self[value] = None if value is None else _as_date(value)
        return day


def _covers_everything(connection: Connection, since: date) -> bool:
    """Whether a period from ``since`` holds every stored report (one index lookup)."""
    first = connection.execute(select(type_coerce(func.min(ReportRow.day), String()))).scalar()
    return first is None or _as_date(first) >= since


# Reading a period per key of a totals table (SQLite). The period tables' primary keys start
# with the key of a totals table (domain and sender; domain, sender, kind and value) and end with
# the day, and each of their keys has its total (both are added from the same rows of a report:
# mtasts.store.rollups.rollup_delta, and filled so by revision 0007). So SQLite can read a period
# per total, each total's days from ``since`` on found by the primary key, instead of scanning
# every row of the period table and grouping it: the days before the period are never read, and
# stepping through one key's days costs SQLite less than its grouping does (CPU over the bench
# store, 1,000,000 session rows: the reporters 37-55 ms -> 28, the senders of 30 days 57 -> 28,
# their failure values 92 -> 75). PostgreSQL ran the per-key forms several times slower over
# the same store (a fresh schema: 600-900 ms for a roll-up and its reporters, where the grouped
# forms take 120-260), so it keeps the grouped ones (``by_key`` False).


def _reporters_query(since: date | None, domain: str | None, by_key: bool) -> Select[Any]:
    """Per domain and sender with a reporter day from ``since`` on (``domain``: its rows only):
    the newest day and the number of days (see above for ``by_key``)."""
    row, total = ReporterDayRow, SenderTotalRow
    if not by_key:
        query = _reporter_days((row.policy_domain, row.organization_name, func.max(row.day), func.count()), since)
        query = query if domain is None else query.where(row.policy_domain == domain)
        return query.group_by(row.policy_domain, row.organization_name)
    # one index lookup (the newest day) and one range (the days) per sender total
    match = (row.policy_domain == total.policy_domain) & (row.organization_name == total.organization_name)
    if since is not None:
        match &= row.day >= since
    newest = select(func.max(row.day)).where(match).correlate(total).scalar_subquery()
    counted = select(func.count()).select_from(row).where(match).correlate(total).scalar_subquery()
    per_sender = select(total.policy_domain, total.organization_name, newest.label("last"), counted.label("days"))
    if domain is not None:
        per_sender = per_sender.where(total.policy_domain == domain)
    senders = per_sender.subquery()
    return select(senders).where(senders.c.days > 0)  # none in the period: not a reporter of it


def _reporter_days(columns: Sequence[Any], since: date | None) -> Select[Any]:
    """``columns`` of the reporter-day table, from ``since`` on."""
    query = select(*columns)
    return query if since is None else query.where(ReporterDayRow.day >= since)


def _text_days(columns: Iterable[Any]) -> list[Any]:
    """``columns`` with the days read as the driver returns them (see :func:`_plain_rows`)."""
    return [type_coerce(c, String()) if isinstance(c.type, Date) else c for c in columns]


def _table_rows(model: type[Any], domain: str | None) -> Select[Any]:
    """Every row of a roll-up table (``domain``: its rows only), its columns in table order."""
    query = select(*_text_days(cast(Table, model.__table__).columns))
    return query if domain is None else query.where(model.policy_domain == domain)


def _day_rows(since: date | None, domain: str | None) -> Select[Any]:
    """The day totals (with what their ``sts`` rows counted twice), from ``since`` on."""
    query = _table_rows(DayTotalRow, domain)
    return query if since is None else query.where(DayTotalRow.day >= since)


def _period_senders(
    since: date, domain: str | None, exact: bool, by_key: bool, with_reporters: bool = False
) -> Select[Any]:
    """The sender totals of the days from ``since`` on, summed from the reporter days (see
    above for ``by_key``); ``with_reporters``: and, last, the newest of those days and their
    number (what :func:`_reporters_query` reads, from the same rows)."""
    row, total = ReporterDayRow, SenderTotalRow
    keys = (total.policy_domain, total.organization_name) if by_key else (row.policy_domain, row.organization_name)
    failed_day = type_coerce(case((row.failed > 0, row.day), else_=None), String())
    columns = (
        *keys,
        *_sum(row.successful, exact),
        *_sum(row.failed, exact),
        func.min(failed_day),
        func.max(failed_day),
        *_sum(row.twice_successful, exact),
        *_sum(row.twice_failed, exact),
        *((type_coerce(func.max(row.day), String()), func.count()) if with_reporters else ()),
    )
    if by_key:
        match = (row.policy_domain == total.policy_domain) & (row.organization_name == total.organization_name)
        query = select(*columns).select_from(total).join(row, match & (row.day >= since))
    else:
        query = _reporter_days(columns, since)
    return (query if domain is None else query.where(keys[0] == domain)).group_by(*keys)


def _period_values(since: date, domain: str | None, exact: bool, by_key: bool) -> Select[Any]:
    """The failure values of the days from ``since`` on, summed from the failure days (their
    key starts with the grouping columns: no sort). The first and last days are those of the
    least and greatest ``first_seen`` (its high bits are the row's day: an integer compares
    faster than a day, which SQLite keeps as text). ``by_key``: see above; only the totals
    last seen in the period are looked up."""
    row, total = FailureDayRow, FailureTotalRow
    names = ("policy_domain", "organization_name", "kind", "value")
    keys = tuple(getattr(total if by_key else row, name) for name in names)
    columns = (
        *keys,
        *_sum(row.failed, exact),
        type_coerce(func.max(row.first_seen), BigInteger()),
        type_coerce(func.min(row.first_seen), BigInteger()),
    )
    if by_key:
        match = and_(*(getattr(row, name) == getattr(total, name) for name in names), row.day >= since)
        query = select(*columns).select_from(total).join(row, match).where(total.last_day >= since)
    else:
        query = select(*columns).where(row.day >= since)
    return (query if domain is None else query.where(keys[0] == domain)).group_by(*keys)


class _SeenDays(dict[int, date]):
    """The day of each number of days since 1970 (a ``first_seen``'s high bits), made once."""

    def __missing__(self, number: int) -> date:
        day = self[number] = _EPOCH + timedelta(days=number)
        return day


def _period_failures(rows: Iterable[Sequence[Any]], counts: bool) -> list[tuple[Any, ...]]:
    """Failure-value rows in the column order of the failure totals, from :func:`_period_values`
    (``counts``: see :func:`_summed`)."""
    days, shift = _SeenDays(), _SEEN_SHIFT
    if counts:  # SQLite: nothing to join (9,000 rows of a 30-day dashboard: 17 ms of CPU -> 5)
        return [
            (d, o, k, v, n, days[first >> shift], days[last >> shift], first) for d, o, k, v, _, n, last, first in rows
        ]
    return [
        (d, o, k, v, _count(high, low), days[int(first) >> shift], days[int(last) >> shift], int(first))
        for d, o, k, v, high, low, last, first in rows
    ]


def _as_rollup(days: Sequence[Any], senders: Sequence[Any], failures: Sequence[Any]) -> Rollup:
    """Rows in the column order of the day, sender and failure totals as a :class:`Rollup`:
    ``''`` back to ``None`` where the tables use it for none, days made dates, and what was
    counted twice taken from the ``twice_*`` columns."""
    known = _Days()
    day_totals: tuple[DayTotal, ...] = tuple(
        [(key or None, known[when], kind, ok, bad) for key, when, kind, ok, bad, _, _ in days]
    )
    days_twice: tuple[DayTwice, ...] = tuple(
        [(key or None, known[when], ok, bad) for key, when, _, _, _, ok, bad in days if ok or bad]
    )
    sender_totals: tuple[SenderTotal, ...] = tuple(
        [(key or None, org, ok, bad, known[first], known[last]) for key, org, ok, bad, first, last, *_ in senders]
    )
    senders_twice: tuple[SenderTwice, ...] = tuple(
        [(key or None, org, ok, bad) for key, org, _, _, _, _, ok, bad, _ in senders if ok or bad]
    )
    failure_totals: tuple[FailureTotal, ...] = tuple(
        [
            (
                key or None,
                org,
                kind,
                value if kind == "result_type" else value or None,
                bad,
                known[first],
                known[last],
                seen,
            )
            for key, org, kind, value, bad, first, last, seen in failures
        ]
    )
    return Rollup(day_totals, sender_totals, failure_totals, days_twice, senders_twice)


# Sums over a period cannot overflow. SQLite's SUM() raises "integer overflow" past 2^63-1 (and
# TOTAL() is a float, inexact past 2^53); PostgreSQL's SUM(bigint) is numeric, but the roll-up
# tables saturate at 2^63-1 and a period must read the same. A period's query sums each count
# once (PostgreSQL: exact; SQLite: exact unless it raises); when SQLite raises, the query runs
# again with each count summed in two halves, its high bits (x >> 32, below 2^31) and its low
# 32 bits: each partial sum fits 64 bits for up to 2^32 rows, and Python joins them exactly and
# saturates like the roll-ups. (Two sums per count cost a tenth more on every read.)
_HALF: Final = 32


def _sum(column: Any, exact: bool) -> tuple[Any, Any]:
    """Two partial sums of a non-negative 64-bit ``column``: the high and low 32 bits
    (``exact``), or 0 and the sum (see above)."""
    if not exact:
        return literal_column("0", BigInteger), type_coerce(func.sum(column), BigInteger)
    high = func.sum(column.op(">>")(literal_column(str(_HALF))))
    low = func.sum(column.op("&")(literal_column(str((1 << _HALF) - 1))))
    return type_coerce(high, BigInteger), type_coerce(low, BigInteger)


def _summed(connection: Connection, query: Callable[[bool], Select[Any]]) -> tuple[Sequence[Any], bool]:
    """The rows of ``query(exact)`` with single sums, or with split ones should SQLite's SUM()
    overflow (see above); and whether the sums are already the counts (single sums of SQLite:
    integers below 2^63, or it would have raised), which the caller then need not join and
    saturate (PostgreSQL's are ``Decimal``, and may pass 2^63-1)."""
    try:
        return _plain_rows(connection, query(False)), connection.dialect.name == "sqlite"
    except DBAPIError as exc:
        if "integer overflow" not in str(exc.orig):
            raise
    return _plain_rows(connection, query(True)), False


def _count(high: Any, low: Any) -> int:
    """A count from the two partial sums of :func:`_sum`, saturated at 2^63-1 like the roll-ups
    (PostgreSQL returns the sums as ``Decimal``, SQLite as ``int``; NULL for no rows)."""
    return min((int(high or 0) << _HALF) + int(low or 0), _MAX_COUNT)


def _exact(high: Any, low: Any) -> int:
    """A sum from the two partial sums of :func:`_sum`, exact (not saturated: the analysis adds
    up the saturated counts of the rows without a limit, and so do the sums of a view)."""
    return (int(high or 0) << _HALF) + int(low or 0)


# The day sums of every domain (ReportStore.day_sums). Each sums the day totals from ``since``
# on; what a day counted twice sits on its ``sts`` row (mtasts.store.rollups.rollup_delta) and
# comes off that row, down to 0, as count_once takes it off.


def _once(column: Any, twice: Any) -> Any:
    """A day total's ``column`` (successful or failed) counted once (see above)."""
    row = DayTotalRow
    return case(
        (row.policy_type != "sts", column),
        (column > twice, column - twice),
        else_=literal_column("0", BigInteger),
    )


def _day_totals(columns: Sequence[Any], since: date | None) -> Select[Any]:
    query = select(*columns)
    return query if since is None else query.where(DayTotalRow.day >= since)


def _domain_sums(since: date | None, ends: tuple[date, date] | None, exact: bool) -> Select[Any]:
    """Per domain: the sessions counted once, the newest day, whether it has ``sts`` rows, and
    (``ends``: the first and last day of a readiness window) the ``sts`` sessions in it."""
    row = DayTotalRow
    is_sts = row.policy_type == "sts"
    columns = [
        row.policy_domain,
        *_sum(_once(row.successful, row.twice_successful), exact),
        *_sum(_once(row.failed, row.twice_failed), exact),
        type_coerce(func.max(row.day), String()),
        func.max(case((is_sts, 1), else_=0)),
    ]
    if ends is not None:
        inside = is_sts & (row.day >= ends[0]) & (row.day <= ends[1])
        zero = literal_column("0", BigInteger)
        columns += [
            *_sum(case((inside, row.successful), else_=zero), exact),
            *_sum(case((inside, row.failed), else_=zero), exact),
        ]
    return _day_totals(columns, since).group_by(row.policy_domain)


def _daily_sums(since: date | None, exact: bool) -> Select[Any]:
    """Per day and policy type: every domain's sessions counted once, as reported, and those
    counted twice (one read for the days and the policy types: both need a sort)."""
    row = DayTotalRow
    columns = (
        type_coerce(row.day, String()),
        row.policy_type,
        *_sum(_once(row.successful, row.twice_successful), exact),
        *_sum(_once(row.failed, row.twice_failed), exact),
        *_sum(row.successful, exact),
        *_sum(row.failed, exact),
        *_sum(row.twice_successful, exact),
        *_sum(row.twice_failed, exact),
    )
    return _day_totals(columns, since).group_by(row.day, row.policy_type)


def _window_sums(since: date | None, window: int, exact: bool, connection: Connection) -> Select[Any]:
    """Per domain: the ``sts`` sessions of the ``window`` days up to its newest day."""
    row = DayTotalRow
    newest = _day_totals((row.policy_domain.label("domain"), func.max(row.day).label("newest")), since)
    last = newest.group_by(row.policy_domain).subquery()
    if connection.dialect.name == "sqlite":  # days are ISO text there
        first: Any = func.date(last.c.newest, f"-{window - 1} days")
    else:
        first = last.c.newest - literal_column(str(window - 1), BigInteger)
    match = (row.policy_domain == last.c.domain) & (row.day >= first) & (row.day <= last.c.newest)
    query = (
        select(row.policy_domain, *_sum(row.successful, exact), *_sum(row.failed, exact))
        .select_from(row)
        .join(last, match)
        .where(row.policy_type == "sts")
    )
    query = query if since is None else query.where(row.day >= since)  # a window may start before
    return query.group_by(row.policy_domain)

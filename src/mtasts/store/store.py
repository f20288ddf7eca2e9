"""One store interface over SQLite and PostgreSQL.

Building a :class:`ReportStore` connects to nothing; :meth:`ReportStore.open` (or ``with``)
creates the engine and brings the schema to the newest Alembic revision. Ingest is idempotent
(a report is identified by organisation + report-id, or by the SHA-256 of its JSON when it has
no report-id) and transactional (:meth:`ReportStore.add_reports` stores every report of one
message or none of them).

Each ingest also adds its reports to three roll-up tables (sessions per domain and day, per
domain and sender, per failure-detail value), so that :meth:`ReportStore.rollup`, what a
summary needs, reads a few thousand rows instead of every stored one.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import quote

import orjson
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
    case,
    create_engine,
    event,
    func,
    insert,
    literal,
    literal_column,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from mtasts.core.tlsrpt_report import (
    DayTotal,
    FailureDetail,
    FailureRow,
    FailureTotal,
    PolicyRow,
    Rollup,
    SenderTotal,
    TlsRptReport,
    parse_report,
)
from mtasts.store.errors import (
    SUPPORTED_URLS,
    StoreError,
    StoreMissing,
    StoreUnavailable,
    UnsupportedDatabase,
    redact_url,
    translate_store_errors,
)
from mtasts.store.models import (
    Base,
    DayTotalRow,
    FailureDetailRow,
    FailureTotalRow,
    PolicyResultRow,
    ReportRow,
    SenderTotalRow,
)

__all__ = ["DB_ENV", "AddResult", "ReportStore", "StoredReport", "dedup_key", "default_db_url", "normalise_url"]

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


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


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
            event.listen(engine, "connect", _sqlite_pragmas if self._create else _sqlite_reader_pragmas)
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
        received = _naive_utc(now)
        iterator = iter(reports)
        consumed: list[TlsRptReport] = []

        def feed() -> Iterator[TlsRptReport]:
            for report in iterator:
                consumed.append(report)
                yield report

        try:
            return self._add_all(feed(), source, received)
        except IntegrityError:
            # Another writer stored one of these reports between our check and our insert:
            # start again; this time the check sees it.
            return self._add_all(itertools.chain(list(consumed), iterator), source, received)

    def _add_all(self, reports: Iterable[TlsRptReport], source: str, received: datetime) -> list[AddResult]:
        """All of one call in one transaction, inserted in batches: one round trip per table per batch."""
        results: list[AddResult] = []
        seen: set[str] = set()
        with self.engine.begin() as connection:
            batch: list[TlsRptReport] = []
            for report in reports:
                batch.append(report)
                if len(batch) == _BATCH:
                    results += _insert_batch(connection, batch, seen, source, received)
                    batch = []
            if batch:
                results += _insert_batch(connection, batch, seen, source, received)
        return results

    # -- reading ----------------------------------------------------------------------------

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(ReportRow)) or 0)

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
        """The stored rows summed per the keys of :class:`Rollup`, in the database: read from the
        roll-up tables, or (``since`` given) grouped from the rows of those days. Equal, up to
        order, to ``rollup_rows(self.policy_rows(...), self.failure_rows(...))``."""
        if domain is not None and not domain:
            return Rollup()  # no policy domain is empty ('' stands for none in the roll-ups)
        with _gc_paused(), self.engine.connect() as connection:
            # SQLite: days come back as text, each distinct one read once below
            day_type = String() if connection.dialect.name == "sqlite" else Date()
            rows: list[Sequence[Any]]
            if since is None:
                rows = [_plain_rows(connection, query) for query in _rollup_tables(domain, day_type)]
            else:
                queries = _rollup_grouped(connection.dialect.name, since, domain, day_type)
                grouped_days, grouped_senders, grouped_failures = (connection.execute(q).all() for q in queries)
                rows = [  # each count comes as two partial sums (see _sum): joined here
                    [(d, w, k, _count(*ok), _count(*bad)) for d, w, k, ok, bad in _pairs(grouped_days, 3, 2)],
                    [
                        (d, o, _count(*ok), _count(*bad), f, la)
                        for d, o, ok, bad, f, la in _pairs(grouped_senders, 2, 2)
                    ],
                    [
                        (d, o, k, v, _count(*bad), f, la, int(n))
                        for d, o, k, v, bad, f, la, n in _pairs(grouped_failures, 4, 1)
                    ],
                ]
            days, senders, failures = rows
            # every distinct day value, read once (SQLite returns text; PostgreSQL dates)
            texts = {row[1] for row in days} | {row[4] for row in senders} | {row[5] for row in senders}
            texts |= {row[5] for row in failures} | {row[6] for row in failures}
            known: dict[Any, Any] = {
                text: text if text is None or isinstance(text, date) else date.fromisoformat(text) for text in texts
            }
            day_totals: tuple[DayTotal, ...] = tuple(
                [(key or None, known[when], kind, ok, bad) for key, when, kind, ok, bad in days]
            )
            sender_totals: tuple[SenderTotal, ...] = tuple(
                [(key or None, org, ok, bad, known[first], known[last]) for key, org, ok, bad, first, last in senders]
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
            del rows, days, senders, failures  # freed now, not collected later
        return Rollup(day_totals, sender_totals, failure_totals)

    def stored_report(self, key: str) -> StoredReport | None:
        with Session(self.engine) as session:
            row = session.scalar(select(ReportRow).where(ReportRow.dedup_key == key))
            if row is None:
                return None
            return StoredReport(parse_report(row.raw), row.source, row.received_at.replace(tzinfo=UTC))


_BATCH: Final = 500  # reports per round trip; far below every parameter limit


def _insert_batch(
    connection: Connection, batch: list[TlsRptReport], seen: set[str], source: str, received: datetime
) -> list[AddResult]:
    """Store the reports of ``batch`` not stored yet (in the database or earlier in this call)."""
    if connection.dialect.name == "sqlite":
        return _insert_batch_sqlite(connection, batch, seen, source, received)
    keys = [dedup_key(report) for report in batch]
    wanted = set(keys) - seen
    stored = (
        set(connection.scalars(select(ReportRow.dedup_key).where(ReportRow.dedup_key.in_(wanted)))) if wanted else set()
    )
    results: list[AddResult] = []
    fresh: list[TlsRptReport] = []
    report_params: list[dict[str, Any]] = []
    for key, report in zip(keys, batch, strict=True):
        new = key not in seen and key not in stored
        seen.add(key)
        results.append(AddResult(key, new, report.organization_name, report.report_id))
        if new:
            fresh.append(report)
            report_params.append(
                {
                    "dedup_key": key,
                    "organization_name": report.organization_name,
                    "report_id": report.report_id,
                    "contact_info": report.contact_info,
                    "start_at": _naive_utc(report.start),
                    "end_at": _naive_utc(report.end),
                    "day": report.day,
                    "digest": report.digest,
                    "raw": report.raw,
                    "source": source,
                    "received_at": received,
                }
            )
    if not fresh:
        return results
    report_pks = connection.scalars(
        insert(ReportRow).returning(ReportRow.id, sort_by_parameter_order=True), report_params
    ).all()
    policy_params: list[dict[str, Any]] = []
    details: list[tuple[FailureDetail, ...]] = []
    for report_pk, report in zip(report_pks, fresh, strict=True):
        for position, policy in enumerate(report.policies):
            policy_params.append(
                {
                    "report_pk": report_pk,
                    "position": position,
                    "policy_type": policy.policy_type.value,
                    "policy_domain": policy.policy_domain,
                    "policy_string": orjson.dumps(policy.policy_string).decode(),
                    "mx_host": orjson.dumps(policy.mx_host).decode(),
                    "total_successful": policy.total_successful,
                    "total_failure": policy.total_failure,
                }
            )
            details.append(policy.failure_details)
    if not policy_params:
        return results
    policy_pks = connection.scalars(
        insert(PolicyResultRow).returning(PolicyResultRow.id, sort_by_parameter_order=True), policy_params
    ).all()
    failure_params = [
        {
            "policy_pk": policy_pk,
            "position": index,
            "result_type": str(detail.result_type),
            "failed_session_count": detail.failed_session_count,
            "sending_mta_ip": detail.sending_mta_ip,
            "receiving_mx_hostname": detail.receiving_mx_hostname,
            "receiving_mx_helo": detail.receiving_mx_helo,
            "receiving_ip": detail.receiving_ip,
            "additional_information": detail.additional_information,
            "failure_reason_code": detail.failure_reason_code,
        }
        for policy_pk, policy_details in zip(policy_pks, details, strict=True)
        for index, detail in enumerate(policy_details)
    ]
    failure_pks: Sequence[int] = ()
    if failure_params:
        failure_pks = connection.scalars(
            insert(FailureDetailRow).returning(FailureDetailRow.id, sort_by_parameter_order=True), failure_params
        ).all()
    _add_to_rollups(connection, fresh, failure_pks)
    return results


# SQLite writes through the driver's cursor: SQLAlchemy's per-statement cost is several times
# SQLite's own, and ingest is one small transaction per source. The values are stored exactly
# as SQLAlchemy stores them (its SQLite date and datetime text formats), so reads are unchanged.


_SQLITE_DATETIME: Final = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_insert(model: type[Base], *, skip_id: bool = True, ignore: str = "") -> str:
    names = [c.name for c in cast(Table, model.__table__).columns if not (skip_id and c.name == "id")]
    conflict = f" ON CONFLICT ({ignore}) DO NOTHING" if ignore else ""
    marks = ", ".join("?" * len(names))
    return f"INSERT INTO {model.__tablename__} ({', '.join(names)}) VALUES ({marks}){conflict}"  # noqa: S608 (names from the models)


@functools.cache
def _sqlite_statements() -> tuple[str, str, str]:
    return (
        _sqlite_insert(ReportRow, ignore="dedup_key"),
        _sqlite_insert(PolicyResultRow),
        _sqlite_insert(FailureDetailRow),
    )


@functools.cache
def _sqlite_upsert(model: type[Base]) -> str:
    return str(_upsert("sqlite", model).compile(dialect=sqlite_dialect.dialect()))


def _insert_batch_sqlite(
    connection: Connection, batch: list[TlsRptReport], seen: set[str], source: str, received: datetime
) -> list[AddResult]:
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    insert_report, insert_policy, insert_failure = _sqlite_statements()
    received_text = received.strftime(_SQLITE_DATETIME)
    results: list[AddResult] = []
    fresh: list[TlsRptReport] = []
    failure_pks: list[int] = []
    try:
        for report in batch:
            key = dedup_key(report)
            new = key not in seen
            seen.add(key)
            if new:
                day = report.day
                cursor.execute(
                    insert_report,
                    (
                        key,
                        report.organization_name,
                        report.report_id,
                        report.contact_info,
                        _naive_utc(report.start).strftime(_SQLITE_DATETIME),
                        _naive_utc(report.end).strftime(_SQLITE_DATETIME),
                        day.isoformat(),
                        report.digest,
                        report.raw,
                        source,
                        received_text,
                    ),
                )
                new = cursor.rowcount == 1  # 0: stored before (ON CONFLICT DO NOTHING)
            results.append(AddResult(key, new, report.organization_name, report.report_id))
            if not new:
                continue
            fresh.append(report)
            report_pk = cursor.lastrowid
            for position, policy in enumerate(report.policies):
                cursor.execute(
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
                    cursor.execute(
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
                    failure_pks.append(cursor.lastrowid)
        for model, rows in _rollup_params(fresh, failure_pks):
            cursor.executemany(
                _sqlite_upsert(model), [tuple(v.isoformat() if isinstance(v, date) else v for v in row) for row in rows]
            )
    except sqlite3.Error as exc:  # the same exceptions as through SQLAlchemy (OperationalError, ...)
        raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
    finally:
        cursor.close()
    return results


# --- roll-ups -----------------------------------------------------------------------------------

_MAX_COUNT: Final = 2**63 - 1
_EPOCH: Final = date(1970, 1, 1)
_SEEN_SHIFT: Final = 40  # first_seen = (days since 1970) << 40 | failure id
_KINDS: Final = ("result_type", "sending_ip", "mx", "reason")


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


def _plain_rows(connection: Connection, query: Select[Any]) -> Sequence[Any]:
    """The rows of ``query`` as the driver returns them (plain tuples, no SQLAlchemy row objects:
    several times cheaper for tens of thousands of rows). Only for parameters that need no
    conversion (strings) and values the driver already returns in their Python types."""
    compiled = query.compile(dialect=connection.dialect)
    params: Any = compiled.params
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


def _rollup_tables(domain: str | None, day_type: TypeEngine[Any]) -> tuple[Select[Any], ...]:
    queries = []
    for model in (DayTotalRow, SenderTotalRow, FailureTotalRow):
        columns = cast(Table, model.__table__).columns
        query = select(*(type_coerce(c, day_type) if isinstance(c.type, Date) else c for c in columns))
        if domain is not None:
            query = query.where(model.policy_domain == domain)
        queries.append(query)
    return tuple(queries)


def _rollup_grouped(
    dialect: str, since: date, domain: str | None, day_type: TypeEngine[Any]
) -> tuple[Select[Any], ...]:
    """The roll-up of the rows from ``since`` on, grouped in the database."""
    domain_key = func.coalesce(PolicyResultRow.policy_domain, "")
    policies = select().select_from(PolicyResultRow).join(ReportRow, ReportRow.id == PolicyResultRow.report_pk)
    policies = policies.where(ReportRow.day >= since)
    if domain is not None:
        policies = policies.where(PolicyResultRow.policy_domain == domain)
    failures = policies.join(FailureDetailRow, FailureDetailRow.policy_pk == PolicyResultRow.id)
    day = ReportRow.day
    failed_day = case((PolicyResultRow.total_failure > 0, day), else_=None)
    days = policies.add_columns(
        domain_key,
        day,
        PolicyResultRow.policy_type,
        *_sum(PolicyResultRow.total_successful),
        *_sum(PolicyResultRow.total_failure),
    ).group_by(domain_key, day, PolicyResultRow.policy_type)
    senders = policies.add_columns(
        domain_key,
        ReportRow.organization_name,
        *_sum(PolicyResultRow.total_successful),
        *_sum(PolicyResultRow.total_failure),
        type_coerce(func.min(failed_day), day_type),
        type_coerce(func.max(failed_day), day_type),
    ).group_by(domain_key, ReportRow.organization_name)
    if dialect == "sqlite":
        day_number = cast_(func.julianday(day) - 2440587.5, BigInteger)
    else:
        day_number = cast_(day - date(1970, 1, 1), BigInteger)
    first_seen = func.min(day_number * (1 << _SEEN_SHIFT) + FailureDetailRow.id)
    values = {
        "result_type": FailureDetailRow.result_type,
        "sending_ip": func.coalesce(func.nullif(FailureDetailRow.sending_mta_ip, ""), ""),
        "mx": func.coalesce(
            func.nullif(FailureDetailRow.receiving_mx_hostname, ""), func.nullif(FailureDetailRow.receiving_ip, ""), ""
        ),
        "reason": func.nullif(FailureDetailRow.failure_reason_code, ""),
    }
    grouped = [
        failures.add_columns(
            domain_key,
            ReportRow.organization_name,
            literal(kind, String),
            value,
            *_sum(FailureDetailRow.failed_session_count),
            type_coerce(func.min(day), day_type),
            type_coerce(func.max(day), day_type),
            type_coerce(first_seen, BigInteger),
        )
        .where(value.is_not(None))
        .group_by(domain_key, ReportRow.organization_name, value)
        for kind, value in values.items()
    ]
    return days, senders, union_all(*grouped)  # type: ignore[return-value]


# Sums over a period cannot overflow. SQLite's SUM() raises "integer overflow" past 2^63-1 (and
# TOTAL() is a float, inexact past 2^53); PostgreSQL's SUM(bigint) is numeric, but the roll-up
# tables saturate at 2^63-1 and a period must read the same. So each count is summed in two
# halves, its high bits (x >> 32, below 2^31) and its low 32 bits: each partial sum fits 64
# bits for up to 2^32 rows, and Python joins them exactly and saturates like the roll-ups.
_HALF: Final = 32


def _sum(column: Any) -> tuple[Any, Any]:
    """Two partial sums of a non-negative 64-bit ``column`` (high and low 32 bits); see above."""
    high = func.sum(column.op(">>")(literal_column(str(_HALF))))
    low = func.sum(column.op("&")(literal_column(str((1 << _HALF) - 1))))
    return type_coerce(high, BigInteger), type_coerce(low, BigInteger)


def _count(high: Any, low: Any) -> int:
    """A count from the two partial sums of :func:`_sum`, saturated at 2^63-1 like the roll-ups
    (PostgreSQL returns the sums as ``Decimal``, SQLite as ``int``; NULL for no rows)."""
    return min((int(high or 0) << _HALF) + int(low or 0), _MAX_COUNT)


def _pairs(rows: Iterable[Sequence[Any]], start: int, pairs: int) -> Iterator[tuple[Any, ...]]:
    """Each row with its ``pairs`` partial-sum pairs from index ``start`` on made into 2-tuples."""
    end = start + 2 * pairs
    for row in rows:
        yield (*row[:start], *zip(row[start:end:2], row[start + 1 : end : 2], strict=True), *row[end:])


# How a value of each roll-up table merges into the stored one: counts add up (saturating at
# 2^63-1), first days and first-seen keep the least, last days the greatest (NULL: no value).
_MERGE: Final[Mapping[type[Base], tuple[str, ...]]] = {
    DayTotalRow: ("add", "add"),
    SenderTotalRow: ("add", "add", "least", "greatest"),
    FailureTotalRow: ("add", "least", "greatest", "least"),
}


def _add_to_rollups(connection: Connection, reports: list[TlsRptReport], failure_pks: Sequence[int]) -> None:
    """Add freshly stored reports to the roll-up tables (summed here first, one upsert per key)."""
    dialect = connection.dialect.name
    for model, rows in _rollup_params(reports, failure_pks):
        names = [column.name for column in model.__table__.columns]
        connection.execute(_upsert(dialect, model), [dict(zip(names, row, strict=True)) for row in rows])


def _rollup_params(
    reports: list[TlsRptReport], failure_pks: Sequence[int]
) -> list[tuple[type[Base], list[tuple[Any, ...]]]]:
    """The rows to merge into each roll-up table (in column order) for freshly stored reports."""
    days: dict[tuple[Any, ...], list[Any]] = {}
    senders: dict[tuple[Any, ...], list[Any]] = {}
    found: dict[tuple[Any, ...], list[Any]] = {}
    pks = iter(failure_pks)
    for report in reports:
        day, org = report.day, report.organization_name
        day_number = (day - _EPOCH).days << _SEEN_SHIFT
        for policy in report.policies:
            domain = policy.policy_domain or ""
            ok, failed = policy.total_successful, policy.total_failure
            _merge(days, DayTotalRow, (domain, day, policy.policy_type.value), [ok, failed])
            failed_day = day if failed else None
            _merge(senders, SenderTotalRow, (domain, org), [ok, failed, failed_day, failed_day])
            for detail in policy.failure_details:
                seen = day_number + next(pks)
                count = detail.failed_session_count
                values = (
                    str(detail.result_type),
                    detail.sending_mta_ip or "",
                    detail.receiving_mx_hostname or detail.receiving_ip or "",
                    detail.failure_reason_code or None,
                )
                for kind, value in zip(_KINDS, values, strict=True):
                    if value is None:
                        continue
                    key = (domain, org, kind, value)
                    known = found.get(key)
                    if known is None:
                        found[key] = [count, day, day, seen]
                        continue
                    # _merge(found, FailureTotalRow, ...) written out: this is the hot loop
                    known[0] = min(known[0] + count, _MAX_COUNT)
                    known[1] = min(known[1], day)
                    known[2] = max(known[2], day)
                    known[3] = min(known[3], seen)
    # sorted: concurrent writers lock the keys in the same order (no deadlock)
    return [
        (model, [(*key, *values) for key, values in sorted(rows.items())])
        for model, rows in ((DayTotalRow, days), (SenderTotalRow, senders), (FailureTotalRow, found))
        if rows
    ]


def _merge(table: dict[tuple[Any, ...], list[Any]], model: type[Base], key: tuple[Any, ...], values: list[Any]) -> None:
    known = table.get(key)
    if known is None:
        table[key] = values
        return
    for index, (rule, value) in enumerate(zip(_MERGE[model], values, strict=True)):
        old = known[index]
        if rule == "add":
            known[index] = min(old + value, _MAX_COUNT)
        elif old is None or value is None:
            known[index] = value if old is None else old
        else:
            known[index] = min(old, value) if rule == "least" else max(old, value)


@functools.cache
def _upsert(dialect: str, model: type[Base]) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` merging by :data:`_MERGE` (SQLite and PostgreSQL)."""
    table = cast(Table, model.__table__)
    key = [column.name for column in table.primary_key.columns]
    values = [column for column in table.columns if column.name not in key]
    statement = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(table)
    new = statement.excluded
    merged: dict[str, Any] = {}
    for column, rule in zip(values, _MERGE[model], strict=True):
        old, value = column, new[column.name]
        if rule == "add":
            top: Any = literal_column(str(_MAX_COUNT))  # inline: the SQLite writer reuses the SQL text
            merged[column.name] = case((old > top - value, top), else_=old + value)
        else:
            better = value < old if rule == "least" else value > old
            merged[column.name] = case((old.is_(None), value), (value.is_(None), old), (better, value), else_=old)
    return statement.on_conflict_do_update(index_elements=key, set_=merged)


def _sqlite_reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A reader's connection changes nothing in the file: the journal mode (WAL) is already
    recorded in a database that mtasts created; the rest applies to this connection only."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()

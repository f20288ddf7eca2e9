"""One store interface over SQLite and PostgreSQL.

Building a :class:`ReportStore` connects to nothing; :meth:`ReportStore.open` (or ``with``)
creates the engine and brings the schema to the newest Alembic revision. Ingest is idempotent
(a report is identified by organisation + report-id, or by the SHA-256 of its JSON when it has
no report-id) and transactional (:meth:`ReportStore.add_reports` stores every report of one
message or none of them).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import orjson
from alembic import command
from alembic.config import Config
from platformdirs import user_data_path
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mtasts.core.tlsrpt_report import FailureRow, PolicyRow, TlsRptReport, parse_report
from mtasts.store.models import FailureDetailRow, PolicyResultRow, ReportRow

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
    """TLSRPT reports in a SQL database (``sqlite:///...`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str, *, connect_args: Mapping[str, Any] | None = None, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self._connect_args = dict(connect_args or {})
        self._echo = echo
        self._engine: Engine | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the engine and migrate the schema to the newest revision."""
        if self._engine is not None:
            return
        url = make_url(self.url)
        connect_args = dict(self._connect_args)
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args.setdefault("timeout", 30)
        engine = create_engine(url, connect_args=connect_args, echo=self._echo)
        if url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        self._engine = engine
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

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
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
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
        with Session(self.engine) as session, session.begin():
            return [self._add(session, report, source, received) for report in reports]

    @staticmethod
    def _add(session: Session, report: TlsRptReport, source: str, received: datetime) -> AddResult:
        key = dedup_key(report)
        exists = session.scalar(select(ReportRow.id).where(ReportRow.dedup_key == key))
        if exists is not None:
            return AddResult(key, False, report.organization_name, report.report_id)
        row = ReportRow(
            dedup_key=key,
            organization_name=report.organization_name,
            report_id=report.report_id,
            contact_info=report.contact_info,
            start_at=_naive_utc(report.start),
            end_at=_naive_utc(report.end),
            day=report.day,
            digest=report.digest,
            raw=report.raw,
            source=source,
            received_at=received,
        )
        for position, policy in enumerate(report.policies):
            policy_row = PolicyResultRow(
                position=position,
                policy_type=policy.policy_type.value,
                policy_domain=policy.policy_domain,
                policy_string=orjson.dumps(list(policy.policy_string)).decode(),
                mx_host=orjson.dumps(list(policy.mx_host)).decode(),
                total_successful=policy.total_successful,
                total_failure=policy.total_failure,
            )
            policy_row.failure_details = [
                FailureDetailRow(
                    position=index,
                    result_type=str(detail.result_type),
                    failed_session_count=detail.failed_session_count,
                    sending_mta_ip=detail.sending_mta_ip,
                    receiving_mx_hostname=detail.receiving_mx_hostname,
                    receiving_mx_helo=detail.receiving_mx_helo,
                    receiving_ip=detail.receiving_ip,
                    additional_information=detail.additional_information,
                    failure_reason_code=detail.failure_reason_code,
                )
                for index, detail in enumerate(policy.failure_details)
            ]
            row.policies.append(policy_row)
        session.add(row)
        session.flush()
        return AddResult(key, True, report.organization_name, report.report_id)

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
            return [FailureRow(**row._asdict()) for row in session.execute(query.order_by(ReportRow.day, ReportRow.id))]

    def stored_report(self, key: str) -> StoredReport | None:
        with Session(self.engine) as session:
            row = session.scalar(select(ReportRow).where(ReportRow.dedup_key == key))
            if row is None:
                return None
            return StoredReport(parse_report(row.raw), row.source, row.received_at.replace(tzinfo=UTC))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()

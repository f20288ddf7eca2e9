"""The tables: one row per report (with its raw JSON), per policy, per failure detail; and the
publish history (one row per policy body a domain's policy host served, :class:`PublishedPolicyRow`).

The Alembic scripts in :mod:`mtasts.store.migrations` create exactly this schema; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "DayTotalRow",
    "FailureDayRow",
    "FailureDetailRow",
    "FailureTotalRow",
    "MonitorDeliveryRow",
    "MonitorEventRow",
    "MonitorRunRow",
    "PolicyResultRow",
    "PublishedPolicyRow",
    "ReportRow",
    "ReporterDayRow",
    "SenderTotalRow",
    "WebAuditRow",
    "WebSecretRow",
    "WebSessionRow",
    "WebUserRow",
]

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: the rowid alias autoincrements


class Base(DeclarativeBase):
    pass


class ReportRow(Base):
    __tablename__ = "tlsrpt_report"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # sha256 of (organisation, report-id), or of the raw JSON when there is no report-id
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    organization_name: Mapped[str] = mapped_column(Text)
    report_id: Mapped[str] = mapped_column(Text)
    contact_info: Mapped[str | None] = mapped_column(Text)
    start_at: Mapped[datetime] = mapped_column(DateTime())  # UTC, naive
    end_at: Mapped[datetime] = mapped_column(DateTime())
    day: Mapped[date] = mapped_column(Date, index=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime())

    policies: Mapped[list[PolicyResultRow]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="PolicyResultRow.position"
    )


class PolicyResultRow(Base):
    __tablename__ = "tlsrpt_policy"
    __table_args__ = (Index("ix_tlsrpt_policy_domain", "policy_domain"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_pk: Mapped[int] = mapped_column(ForeignKey("tlsrpt_report.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    policy_type: Mapped[str] = mapped_column(String(32))
    policy_domain: Mapped[str | None] = mapped_column(Text)
    policy_string: Mapped[str] = mapped_column(Text)  # JSON array
    mx_host: Mapped[str] = mapped_column(Text)  # JSON array
    total_successful: Mapped[int] = mapped_column(BigInteger)
    total_failure: Mapped[int] = mapped_column(BigInteger)

    report: Mapped[ReportRow] = relationship(back_populates="policies")
    failure_details: Mapped[list[FailureDetailRow]] = relationship(
        back_populates="policy", cascade="all, delete-orphan", order_by="FailureDetailRow.position"
    )


class FailureDetailRow(Base):
    __tablename__ = "tlsrpt_failure"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    policy_pk: Mapped[int] = mapped_column(ForeignKey("tlsrpt_policy.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    result_type: Mapped[str] = mapped_column(Text)
    failed_session_count: Mapped[int] = mapped_column(BigInteger)
    sending_mta_ip: Mapped[str | None] = mapped_column(Text)
    receiving_mx_hostname: Mapped[str | None] = mapped_column(Text)
    receiving_mx_helo: Mapped[str | None] = mapped_column(Text)
    receiving_ip: Mapped[str | None] = mapped_column(Text)
    additional_information: Mapped[str | None] = mapped_column(Text)
    failure_reason_code: Mapped[str | None] = mapped_column(Text)

    policy: Mapped[PolicyResultRow] = relationship(back_populates="failure_details")


# --- roll-ups: the rows summed per the keys of mtasts.core.tlsrpt_report.Rollup ---------------
# Kept up to date in the transaction that stores each report, so that a summary over everything
# reads these small tables instead of every row. '' stands for an absent policy domain or value
# (the parser never produces an empty string). Counts saturate at 2^63-1.


class DayTotalRow(Base):
    __tablename__ = "tlsrpt_day_total"
    __table_args__ = ({"sqlite_with_rowid": False},)  # SQLite: the key is the table (one B-tree)

    policy_domain: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    policy_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    successful: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)
    # revision 0007: of an sts row, the sessions counted twice (see ReporterDayRow); 0 otherwise
    twice_successful: Mapped[int] = mapped_column(BigInteger, server_default="0")
    twice_failed: Mapped[int] = mapped_column(BigInteger, server_default="0")


class SenderTotalRow(Base):
    __tablename__ = "tlsrpt_sender_total"
    __table_args__ = ({"sqlite_with_rowid": False},)  # SQLite: the key is the table (one B-tree)

    policy_domain: Mapped[str] = mapped_column(Text, primary_key=True)
    organization_name: Mapped[str] = mapped_column(Text, primary_key=True)
    successful: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)
    first_failed: Mapped[date | None] = mapped_column(Date)
    last_failed: Mapped[date | None] = mapped_column(Date)
    # revision 0007: the sessions counted twice (see ReporterDayRow), and the reports (each
    # stored report adds 1 per policy domain: their sum over this small table is the store's
    # change stamp, ReportStoreProtocol.stamp)
    twice_successful: Mapped[int] = mapped_column(BigInteger, server_default="0")
    twice_failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    reports: Mapped[int] = mapped_column(BigInteger, server_default="0")


class FailureTotalRow(Base):
    __tablename__ = "tlsrpt_failure_total"
    __table_args__ = ({"sqlite_with_rowid": False},)  # SQLite: the key is the table (one B-tree)

    policy_domain: Mapped[str] = mapped_column(Text, primary_key=True)
    organization_name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    failed: Mapped[int] = mapped_column(BigInteger)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    # (days since 1970-01-01) * 2^40 + tlsrpt_failure.id of the first detail with this value
    first_seen: Mapped[int] = mapped_column(BigInteger)


# --- the publish history (mtasts.publish.history): every body a policy host served ------------


class PublishedPolicyRow(Base):
    """One policy body served for a domain, from ``served_from`` until ``served_until`` (NULL:
    still served). A domain's id is never reused, so that a sender can never hold two bodies
    under one id (RFC 8461 §3.1); the body is kept whole so that drift can be told apart from a
    change later."""

    __tablename__ = "publish_history"
    __table_args__ = (UniqueConstraint("domain", "policy_id", name="uq_publish_history_domain_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(Text, index=True)  # A-labels, lower case, no trailing dot
    policy_id: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    max_age: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    served_from: Mapped[datetime] = mapped_column(DateTime())  # UTC, naive
    served_until: Mapped[datetime | None] = mapped_column(DateTime())
    forced_reason: Mapped[str | None] = mapped_column(Text)  # a guard overridden with --force --reason


# --- the web interface's accounts (mtasts.web.accounts): users, sessions, audit trail ---------


class WebUserRow(Base):
    """A local account of ``mtasts web``: its name, its password hash (hashlib.scrypt, a PHC
    string with its parameters) and its role (``admin`` or ``read-only``)."""

    __tablename__ = "web_user"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime())  # UTC, naive


class WebSessionRow(Base):
    """A signed-in browser: the SHA-256 of the token its cookie holds (the token itself is never
    stored, so a copy of the database opens no session), its CSRF token and its lifetime.
    Deleting the user deletes its sessions; logging out sets ``revoked_at``."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime())
    expires_at: Mapped[datetime] = mapped_column(DateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime())


class WebSecretRow(Base):
    """Secrets every web process sharing the database must agree on (the key that signs session
    cookies), made on first use."""

    __tablename__ = "web_secret"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class WebAuditRow(Base):
    """One thing a person did through ``mtasts web`` (or ``mtasts web user``): who, when, what,
    on which domain (publish actions) and the details."""

    __tablename__ = "web_audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)


# --- the monitor's history (mtasts.monitor.history): check runs, events, notifications --------


class MonitorRunRow(Base):
    """One scheduled check of a domain by ``mtasts monitor``: when, how long, its status and the
    facts later runs are compared with (``snapshot``, JSON: :class:`mtasts.monitor.snapshot.CheckSnapshot`).
    ``conclusive`` is 0 when the check could not look at the domain (this machine's trouble): such
    a run is kept, and never compared."""

    __tablename__ = "monitor_run"
    __table_args__ = (Index("ix_monitor_run_domain_started", "domain", "started_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(Text)  # A-labels, lower case, no trailing dot
    started_at: Mapped[datetime] = mapped_column(DateTime())  # UTC, naive
    elapsed_ms: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # ok, warning, error
    conclusive: Mapped[int] = mapped_column(Integer)  # 1 or 0
    snapshot: Mapped[str] = mapped_column(Text)


class MonitorEventRow(Base):
    """An event of ``mtasts monitor``: opened by one run, cleared by a later one (``cleared_at``
    NULL: still open). At most one open event per (domain, code, subject)."""

    __tablename__ = "monitor_event"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(Text, index=True)
    code: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)  # JSON object of strings
    opened_at: Mapped[datetime] = mapped_column(DateTime())
    opened_run: Mapped[int] = mapped_column(ForeignKey("monitor_run.id", ondelete="CASCADE"))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime())
    cleared_run: Mapped[int | None] = mapped_column(ForeignKey("monitor_run.id", ondelete="SET NULL"))


Index(
    "uq_monitor_event_open",
    MonitorEventRow.domain,
    MonitorEventRow.code,
    MonitorEventRow.subject,
    unique=True,
    sqlite_where=MonitorEventRow.cleared_at.is_(None),
    postgresql_where=MonitorEventRow.cleared_at.is_(None),
)


class MonitorDeliveryRow(Base):
    """One notification of an event's opening or clearing on one channel (``mail``, ``webhook``):
    kept until delivered (``delivered_at``), with every attempt counted and the last error, so
    that a notifier that is down loses nothing."""

    __tablename__ = "monitor_delivery"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("monitor_event.id", ondelete="CASCADE"), index=True)
    transition: Mapped[str] = mapped_column(String(16))  # opened, cleared
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(), index=True)


# --- the reporters' days (revision 0006): what the dashboard reads besides the roll-ups -------


class ReporterDayRow(Base):
    """One sending organisation's reports for one policy domain and day (``''``: no domain): how
    many, and the sessions they counted twice, listed under both a ``tlsa`` and an ``sts``
    result for the domain in one report (as the ``sts`` results counted them; see
    :func:`mtasts.store.rollups.report_domains`). Kept at ingest like the roll-ups: each
    reporter's last report and days reported, and what to count once, are read from here."""

    __tablename__ = "tlsrpt_reporter_day"
    __table_args__ = ({"sqlite_with_rowid": False},)  # SQLite: the key is the table (one B-tree)

    policy_domain: Mapped[str] = mapped_column(Text, primary_key=True)
    organization_name: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reports: Mapped[int] = mapped_column(BigInteger)
    twice_successful: Mapped[int] = mapped_column(BigInteger)
    twice_failed: Mapped[int] = mapped_column(BigInteger)
    # revision 0007: the sessions of these reports' policy results for the domain (a period's
    # sender totals are summed from here)
    successful: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")


Index(  # what was counted twice, per domain and day, read without sorting the whole table
    "ix_tlsrpt_reporter_day_twice",
    ReporterDayRow.policy_domain,
    ReporterDayRow.day,
    ReporterDayRow.twice_successful,
    ReporterDayRow.twice_failed,
    sqlite_where=(ReporterDayRow.twice_successful > 0) | (ReporterDayRow.twice_failed > 0),
    postgresql_where=(ReporterDayRow.twice_successful > 0) | (ReporterDayRow.twice_failed > 0),
)


# --- the failure values per day (revision 0007): what a period's roll-up is read from ---------


class FailureDayRow(Base):
    """:class:`FailureTotalRow` per day: the failed sessions of one policy domain, sending
    organisation and failure-detail value on one day, and ``first_seen`` (the same order as
    there: its day is this row's). A period's failure values (``rollup(since=...)``) are summed
    from the rows of its days instead of from every failure detail. The key starts like
    :class:`FailureTotalRow`'s, so that summing per value needs no sort, and one domain's rows
    are one range."""

    __tablename__ = "tlsrpt_failure_day"
    __table_args__ = ({"sqlite_with_rowid": False},)  # SQLite: the key is the table (one B-tree)

    policy_domain: Mapped[str] = mapped_column(Text, primary_key=True)
    organization_name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    failed: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[int] = mapped_column(BigInteger)

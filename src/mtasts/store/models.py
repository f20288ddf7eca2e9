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
    "FailureDetailRow",
    "FailureTotalRow",
    "PolicyResultRow",
    "PublishedPolicyRow",
    "ReportRow",
    "SenderTotalRow",
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


class SenderTotalRow(Base):
    __tablename__ = "tlsrpt_sender_total"
    __table_args__ = ({"sqlite_with_rowid": False},)  # SQLite: the key is the table (one B-tree)

    policy_domain: Mapped[str] = mapped_column(Text, primary_key=True)
    organization_name: Mapped[str] = mapped_column(Text, primary_key=True)
    successful: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)
    first_failed: Mapped[date | None] = mapped_column(Date)
    last_failed: Mapped[date | None] = mapped_column(Date)


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

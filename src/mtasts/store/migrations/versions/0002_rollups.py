"""Roll-up tables (sessions summed per domain and day, per domain and sender, per failure-detail
value), filled from the stored rows, so that a summary reads them instead of every row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (days since 1970-01-01) * 2^40 + failure id: orders failure details by (day, id)
FIRST_SEEN = {
    "sqlite": "(CAST(julianday(r.day) - 2440587.5 AS INTEGER) * 1099511627776 + f.id)",
    "postgresql": "((r.day - DATE '1970-01-01')::bigint * 1099511627776 + f.id)",
}
FAILURES = """
    FROM tlsrpt_failure f
    JOIN tlsrpt_policy p ON p.id = f.policy_pk
    JOIN tlsrpt_report r ON r.id = p.report_pk
"""
KINDS = {
    "result_type": "f.result_type",
    "sending_ip": "COALESCE(NULLIF(f.sending_mta_ip, ''), '')",
    "mx": "COALESCE(NULLIF(f.receiving_mx_hostname, ''), NULLIF(f.receiving_ip, ''), '')",
    "reason": "NULLIF(f.failure_reason_code, '')",
}


def upgrade() -> None:
    op.create_table(
        "tlsrpt_day_total",
        sa.Column("policy_domain", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("policy_type", sa.String(32), nullable=False),
        sa.Column("successful", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("policy_domain", "day", "policy_type"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tlsrpt_sender_total",
        sa.Column("policy_domain", sa.Text(), nullable=False),
        sa.Column("organization_name", sa.Text(), nullable=False),
        sa.Column("successful", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("first_failed", sa.Date(), nullable=True),
        sa.Column("last_failed", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("policy_domain", "organization_name"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tlsrpt_failure_total",
        sa.Column("policy_domain", sa.Text(), nullable=False),
        sa.Column("organization_name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("policy_domain", "organization_name", "kind", "value"),
        sqlite_with_rowid=False,
    )
    op.execute(
        """
        INSERT INTO tlsrpt_day_total (policy_domain, day, policy_type, successful, failed)
        SELECT COALESCE(p.policy_domain, ''), r.day, p.policy_type, SUM(p.total_successful), SUM(p.total_failure)
        FROM tlsrpt_policy p JOIN tlsrpt_report r ON r.id = p.report_pk
        GROUP BY COALESCE(p.policy_domain, ''), r.day, p.policy_type
        """
    )
    op.execute(
        """
        INSERT INTO tlsrpt_sender_total
            (policy_domain, organization_name, successful, failed, first_failed, last_failed)
        SELECT COALESCE(p.policy_domain, ''), r.organization_name, SUM(p.total_successful), SUM(p.total_failure),
            MIN(CASE WHEN p.total_failure > 0 THEN r.day END), MAX(CASE WHEN p.total_failure > 0 THEN r.day END)
        FROM tlsrpt_policy p JOIN tlsrpt_report r ON r.id = p.report_pk
        GROUP BY COALESCE(p.policy_domain, ''), r.organization_name
        """
    )
    first_seen = FIRST_SEEN[op.get_bind().dialect.name]
    for kind, value in KINDS.items():
        op.execute(
            f"""
            INSERT INTO tlsrpt_failure_total
                (policy_domain, organization_name, kind, value, failed, first_day, last_day, first_seen)
            SELECT COALESCE(p.policy_domain, ''), r.organization_name, '{kind}', {value},
                SUM(f.failed_session_count), MIN(r.day), MAX(r.day), MIN({first_seen})
            {FAILURES}
            WHERE {value} IS NOT NULL
            GROUP BY COALESCE(p.policy_domain, ''), r.organization_name, {value}
            """  # constants only
        )


def downgrade() -> None:
    op.drop_table("tlsrpt_failure_total")
    op.drop_table("tlsrpt_sender_total")
    op.drop_table("tlsrpt_day_total")

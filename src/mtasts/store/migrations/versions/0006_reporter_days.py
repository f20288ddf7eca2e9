"""The reporters' days: per policy domain, sending organisation and day, how many reports, and
the sessions they counted twice (under both a ``tlsa`` and an ``sts`` result for the domain in
one report), filled from the stored rows. The report dashboard and ``mtasts report summary``
read each reporter's last report and what to count once from here instead of every policy row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Per report and policy domain first (does it hold a tlsa result? what do its sts results
# count?), then per domain, organisation and day: the rule of mtasts.store.rollups.report_domains.
BACKFILL = """
INSERT INTO tlsrpt_reporter_day (policy_domain, organization_name, day, reports, twice_successful, twice_failed)
SELECT k.policy_domain, r.organization_name, r.day, COUNT(*),
    SUM(CASE WHEN k.has_tlsa = 1 THEN k.sts_successful ELSE 0 END),
    SUM(CASE WHEN k.has_tlsa = 1 THEN k.sts_failed ELSE 0 END)
FROM (
    SELECT p.report_pk, COALESCE(p.policy_domain, '') AS policy_domain,
        MAX(CASE WHEN p.policy_type = 'tlsa' THEN 1 ELSE 0 END) AS has_tlsa,
        SUM(CASE WHEN p.policy_type = 'sts' THEN p.total_successful ELSE 0 END) AS sts_successful,
        SUM(CASE WHEN p.policy_type = 'sts' THEN p.total_failure ELSE 0 END) AS sts_failed
    FROM tlsrpt_policy p
    GROUP BY p.report_pk, COALESCE(p.policy_domain, '')
) k
JOIN tlsrpt_report r ON r.id = k.report_pk
GROUP BY k.policy_domain, r.organization_name, r.day
"""


def upgrade() -> None:
    op.create_table(
        "tlsrpt_reporter_day",
        sa.Column("policy_domain", sa.Text(), nullable=False),
        sa.Column("organization_name", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reports", sa.BigInteger(), nullable=False),
        sa.Column("twice_successful", sa.BigInteger(), nullable=False),
        sa.Column("twice_failed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("policy_domain", "organization_name", "day"),
        sqlite_with_rowid=False,
    )
    twice = sa.text("twice_successful > 0 OR twice_failed > 0")
    op.create_index(
        "ix_tlsrpt_reporter_day_twice",
        "tlsrpt_reporter_day",
        ["policy_domain", "day", "twice_successful", "twice_failed"],
        sqlite_where=twice,
        postgresql_where=twice,
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_tlsrpt_reporter_day_twice", table_name="tlsrpt_reporter_day")
    op.drop_table("tlsrpt_reporter_day")

"""A period's roll-up from roll-up tables: the failure values per day (``tlsrpt_failure_day``),
the sessions of each reporter-day row (``successful``, ``failed``), and what was counted twice
kept beside the day and sender totals (``twice_successful``, ``twice_failed``), and the
reports per domain and sender (``tlsrpt_sender_total.reports``: the store's change stamp, summed
from a few thousand rows where counting the reports reads them all). Everything is filled
from the stored rows, so that ``rollup(since=...)`` (the dashboard's periods,
``mtasts report summary --days``) never reads the rows again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MAX_COUNT = 2**63 - 1

# (days since 1970-01-01) * 2^40 + failure id: orders failure details by (day, id), as in 0002
FIRST_SEEN = {
    "sqlite": "(CAST(julianday(r.day) - 2440587.5 AS INTEGER) * 1099511627776 + f.id)",
    "postgresql": "((r.day - DATE '1970-01-01')::bigint * 1099511627776 + f.id)",
}
KINDS = {  # as in 0002 and mtasts.store.rollups.detail_values
    "result_type": "f.result_type",
    "sending_ip": "COALESCE(NULLIF(f.sending_mta_ip, ''), '')",
    "mx": "COALESCE(NULLIF(f.receiving_mx_hostname, ''), NULLIF(f.receiving_ip, ''), '')",
    "reason": "NULLIF(f.failure_reason_code, '')",
}


def capped_sum(expression: str, dialect: str) -> str:
    """SUM(expression) saturated at 2^63-1, like the roll-ups (NULL over no rows, as SUM).
    PostgreSQL sums bigint as numeric; SQLite's SUM() raises past 2^63-1, so there the high and
    low 32 bits are summed apart (each fits for up to 2^31 rows) and joined with a test instead
    of an overflow."""
    if dialect == "postgresql":  # not LEAST(): it would make the NULL of no rows 2^63-1
        return f"(CASE WHEN SUM({expression}) > {MAX_COUNT} THEN {MAX_COUNT} ELSE SUM({expression}) END)"
    high, low = f"SUM(({expression}) >> 32)", f"SUM(({expression}) & 4294967295)"
    too_big = f"{high} > ({MAX_COUNT} - {low}) / 4294967296"
    return f"(CASE WHEN {too_big} THEN {MAX_COUNT} ELSE {high} * 4294967296 + {low} END)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name

    def total(expression: str) -> str:
        return capped_sum(expression, dialect)

    zero = sa.text("0")
    for table in ("tlsrpt_day_total", "tlsrpt_sender_total"):
        op.add_column(table, sa.Column("twice_successful", sa.BigInteger(), nullable=False, server_default=zero))
        op.add_column(table, sa.Column("twice_failed", sa.BigInteger(), nullable=False, server_default=zero))
    op.add_column("tlsrpt_sender_total", sa.Column("reports", sa.BigInteger(), nullable=False, server_default=zero))
    for name in ("successful", "failed"):
        op.add_column("tlsrpt_reporter_day", sa.Column(name, sa.BigInteger(), nullable=False, server_default=zero))
    op.create_table(
        "tlsrpt_failure_day",
        sa.Column("policy_domain", sa.Text(), nullable=False),
        sa.Column("organization_name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("policy_domain", "organization_name", "kind", "value", "day"),
        sqlite_with_rowid=False,
    )
    # The reporter-day rows again from the stored rows, now with their sessions (the rule of
    # mtasts.store.rollups.report_domains, as in 0006, per report and policy domain first).
    op.execute("DELETE FROM tlsrpt_reporter_day")
    op.execute(
        f"""
        INSERT INTO tlsrpt_reporter_day
            (policy_domain, organization_name, day, reports, twice_successful, twice_failed, successful, failed)
        SELECT k.policy_domain, r.organization_name, r.day, COUNT(*),
            {total("CASE WHEN k.has_tlsa = 1 THEN k.sts_successful ELSE 0 END")},
            {total("CASE WHEN k.has_tlsa = 1 THEN k.sts_failed ELSE 0 END")},
            {total("k.successful")}, {total("k.failed")}
        FROM (
            SELECT p.report_pk, COALESCE(p.policy_domain, '') AS policy_domain,
                MAX(CASE WHEN p.policy_type = 'tlsa' THEN 1 ELSE 0 END) AS has_tlsa,
                {total("CASE WHEN p.policy_type = 'sts' THEN p.total_successful ELSE 0 END")} AS sts_successful,
                {total("CASE WHEN p.policy_type = 'sts' THEN p.total_failure ELSE 0 END")} AS sts_failed,
                {total("p.total_successful")} AS successful, {total("p.total_failure")} AS failed
            FROM tlsrpt_policy p
            GROUP BY p.report_pk, COALESCE(p.policy_domain, '')
        ) k
        JOIN tlsrpt_report r ON r.id = k.report_pk
        GROUP BY k.policy_domain, r.organization_name, r.day
        """  # noqa: S608 (constants only)
    )
    # What was counted twice, beside the day totals (on the sts rows) and the sender totals.
    twice = "(g.twice_successful > 0 OR g.twice_failed > 0)"
    for column in ("twice_successful", "twice_failed", "reports"):
        op.execute(
            f"""
            UPDATE tlsrpt_sender_total SET {column} = COALESCE((
                SELECT {total("g." + column)} FROM tlsrpt_reporter_day g
                WHERE g.policy_domain = tlsrpt_sender_total.policy_domain
                    AND g.organization_name = tlsrpt_sender_total.organization_name
            ), 0)
            """  # noqa: S608 (constants only)
        )
        if column == "reports":
            continue
        op.execute(
            f"""
            UPDATE tlsrpt_day_total SET {column} = COALESCE((
                SELECT {total("g." + column)} FROM tlsrpt_reporter_day g
                WHERE g.policy_domain = tlsrpt_day_total.policy_domain AND g.day = tlsrpt_day_total.day
                    AND {twice}
            ), 0)
            WHERE policy_type = 'sts'
            """  # noqa: S608 (constants only)
        )
    first_seen = FIRST_SEEN[dialect]
    for kind, value in KINDS.items():
        op.execute(
            f"""
            INSERT INTO tlsrpt_failure_day (policy_domain, organization_name, kind, value, day, failed, first_seen)
            SELECT COALESCE(p.policy_domain, ''), r.organization_name, '{kind}', {value}, r.day,
                {total("f.failed_session_count")}, MIN({first_seen})
            FROM tlsrpt_failure f
            JOIN tlsrpt_policy p ON p.id = f.policy_pk
            JOIN tlsrpt_report r ON r.id = p.report_pk
            WHERE {value} IS NOT NULL
            GROUP BY COALESCE(p.policy_domain, ''), r.organization_name, {value}, r.day
            """  # noqa: S608 (constants only)
        )


def downgrade() -> None:
    op.drop_table("tlsrpt_failure_day")
    op.drop_column("tlsrpt_reporter_day", "failed")  # SQLite: ALTER TABLE DROP COLUMN (3.35 and later)
    op.drop_column("tlsrpt_reporter_day", "successful")
    op.drop_column("tlsrpt_sender_total", "reports")
    for table in ("tlsrpt_sender_total", "tlsrpt_day_total"):
        op.drop_column(table, "twice_failed")
        op.drop_column(table, "twice_successful")

"""TLSRPT reports, policies and failure details.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tlsrpt_report",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("organization_name", sa.Text(), nullable=False),
        sa.Column("report_id", sa.Text(), nullable=False),
        sa.Column("contact_info", sa.Text(), nullable=True),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("dedup_key"),
    )
    op.create_index("ix_tlsrpt_report_day", "tlsrpt_report", ["day"])
    op.create_index("ix_tlsrpt_report_digest", "tlsrpt_report", ["digest"])
    op.create_table(
        "tlsrpt_policy",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("report_pk", Id, sa.ForeignKey("tlsrpt_report.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(32), nullable=False),
        sa.Column("policy_domain", sa.Text(), nullable=True),
        sa.Column("policy_string", sa.Text(), nullable=False),
        sa.Column("mx_host", sa.Text(), nullable=False),
        sa.Column("total_successful", sa.BigInteger(), nullable=False),
        sa.Column("total_failure", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_tlsrpt_policy_report_pk", "tlsrpt_policy", ["report_pk"])
    op.create_index("ix_tlsrpt_policy_domain", "tlsrpt_policy", ["policy_domain"])
    op.create_table(
        "tlsrpt_failure",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("policy_pk", Id, sa.ForeignKey("tlsrpt_policy.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("result_type", sa.Text(), nullable=False),
        sa.Column("failed_session_count", sa.BigInteger(), nullable=False),
        sa.Column("sending_mta_ip", sa.Text(), nullable=True),
        sa.Column("receiving_mx_hostname", sa.Text(), nullable=True),
        sa.Column("receiving_mx_helo", sa.Text(), nullable=True),
        sa.Column("receiving_ip", sa.Text(), nullable=True),
        sa.Column("additional_information", sa.Text(), nullable=True),
        sa.Column("failure_reason_code", sa.Text(), nullable=True),
    )
    op.create_index("ix_tlsrpt_failure_policy_pk", "tlsrpt_failure", ["policy_pk"])


def downgrade() -> None:
    op.drop_table("tlsrpt_failure")
    op.drop_table("tlsrpt_policy")
    op.drop_table("tlsrpt_report")

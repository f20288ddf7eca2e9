"""The monitor's history: scheduled check runs and the events they raised (issue 13, ``mtasts monitor``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_run",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("elapsed_ms", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conclusive", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
    )
    op.create_index("ix_monitor_run_domain_started", "monitor_run", ["domain", "started_at"])
    op.create_table(
        "monitor_event",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fix", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("opened_run", Id, sa.ForeignKey("monitor_run.id", ondelete="CASCADE"), nullable=False),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.Column("cleared_run", Id, sa.ForeignKey("monitor_run.id", ondelete="SET NULL"), nullable=True),
    )
    op.create_index("ix_monitor_event_domain", "monitor_event", ["domain"])
    op.create_index(
        "uq_monitor_event_open",
        "monitor_event",
        ["domain", "code", "subject"],
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
    op.create_table(
        "monitor_delivery",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", Id, sa.ForeignKey("monitor_event.id", ondelete="CASCADE"), nullable=False),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_monitor_delivery_event_id", "monitor_delivery", ["event_id"])
    op.create_index("ix_monitor_delivery_delivered_at", "monitor_delivery", ["delivered_at"])


def downgrade() -> None:
    op.drop_table("monitor_delivery")
    op.drop_table("monitor_event")
    op.drop_table("monitor_run")

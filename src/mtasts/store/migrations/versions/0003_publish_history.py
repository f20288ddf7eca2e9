"""The publish history: every policy body a domain's policy host served, its id, sha256, mode,
max_age, from and until when, and the reason when a guard was overridden.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "publish_history",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("max_age", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("served_from", sa.DateTime(), nullable=False),
        sa.Column("served_until", sa.DateTime(), nullable=True),
        sa.Column("forced_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("domain", "policy_id", name="uq_publish_history_domain_id"),
    )
    op.create_index("ix_publish_history_domain", "publish_history", ["domain"])


def downgrade() -> None:
    op.drop_table("publish_history")

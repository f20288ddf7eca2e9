"""The monitor's history: scheduled check runs and the events they raised (issue 13, ``mtasts monitor``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """No tables yet: the monitor's tables land with ``mtasts monitor``."""


def downgrade() -> None:
    """Nothing to drop."""

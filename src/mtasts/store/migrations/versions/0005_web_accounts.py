"""The web interface's local accounts, sessions and audit trail (issue 13, ``mtasts web``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """No tables yet: the accounts' tables land with ``mtasts web user``."""


def downgrade() -> None:
    """Nothing to drop."""

"""PostgreSQL: the raw JSON of the reports compressed with LZ4 instead of pglz, when the server
can (PostgreSQL 14 or later, built with LZ4, as the Debian and PGDG packages are).

A report's JSON above about 2 KiB is compressed as it is stored; pglz cost the server ≈ 13.5 µs
of CPU per report on ``bench/report.py``'s reports (1.3 KiB on average, one in thirteen over
2 KiB), LZ4 ≈ 6 µs, for about 5% more room on disk. Only the column's setting changes: values
stored before stay as they are (each value records how it was compressed, and both read back
the same). Nothing to do on SQLite, or on a server without LZ4.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_LZ4 = "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"


def _lz4_available() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == "postgresql" and bool(bind.execute(sa.text(_LZ4)).scalar())


def upgrade() -> None:
    if _lz4_available():
        op.execute("ALTER TABLE tlsrpt_report ALTER COLUMN raw SET COMPRESSION lz4")


def downgrade() -> None:
    if _lz4_available():
        op.execute("ALTER TABLE tlsrpt_report ALTER COLUMN raw SET COMPRESSION DEFAULT")

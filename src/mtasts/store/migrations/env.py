"""Alembic environment: always run on a connection handed over by :class:`ReportStore`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from mtasts.store.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through mtasts.store.ReportStore.migrate(), which passes a connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

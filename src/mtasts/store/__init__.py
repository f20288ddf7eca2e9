"""Report storage behind one protocol: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema
managed by Alembic (:mod:`mtasts.store.store`), or plain memory (:mod:`mtasts.store.memory`)."""

from typing import TYPE_CHECKING

from mtasts.store.interface import AddResult, Message, MessageOutcome, ReportStoreProtocol, StoredReport, dedup_key
from mtasts.store.memory import MemoryDatabase, MemoryReportStore
from mtasts.store.store import ReportStore, default_db_url, normalise_url

__all__ = [
    "AddResult",
    "MemoryDatabase",
    "MemoryReportStore",
    "Message",
    "MessageOutcome",
    "ReportStore",
    "ReportStoreProtocol",
    "StoredReport",
    "dedup_key",
    "default_db_url",
    "normalise_url",
]

if TYPE_CHECKING:  # each implementation satisfies the protocol (checked by mypy, costs nothing)
    _sql: type[ReportStoreProtocol] = ReportStore
    _memory: type[ReportStoreProtocol] = MemoryReportStore

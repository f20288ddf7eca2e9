"""Report storage: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema managed by Alembic."""

from mtasts.store.store import AddResult, ReportStore, StoredReport, default_db_url, normalise_url

__all__ = ["AddResult", "ReportStore", "StoredReport", "default_db_url", "normalise_url"]

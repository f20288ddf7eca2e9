"""Store failures as one line for a person: which database, what went wrong, passwords redacted.

Callers (the CLI, ``report ingest``, ``report serve``) catch :class:`StoreError` and print its
message; nothing from SQLAlchemy or the database driver reaches a user as a traceback.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

__all__ = ["StoreError", "StoreUnavailable", "describe_store_error", "redact_url"]


class StoreError(Exception):
    """The store cannot be used; ``message`` is one line naming the database (redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnavailable(StoreError):
    """The database cannot be reached or stopped answering (a server down, a dropped link)."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs and error lines."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"


def describe_store_error(exc: BaseException, url: str) -> str:
    """One line for ``exc`` raised while using the database at ``url``: the driver's first line,
    without SQLAlchemy's appendix (SQL, parameters, documentation links)."""
    original = getattr(exc, "orig", None) if isinstance(exc, SQLAlchemyError) else None
    reason = str(original if original is not None else exc).strip().splitlines()
    first = reason[0].strip() if reason else type(exc).__name__
    return f"database {redact_url(url)}: {first}"

"""Store failures as one line for a person: which database, what went wrong, passwords redacted.

Callers (the CLI, ``report ingest``, ``report serve``) catch :class:`StoreError` and print its
message; nothing from SQLAlchemy or the database driver reaches a user as a traceback.

``StoreError``
 ├── ``UnsupportedDatabase``  the URL names no database mtasts can use (the user's command line)
 ├── ``StoreMissing``         a read-only open found no mtasts database there (nothing was created)
 └── ``StoreUnavailable``     the database cannot be reached or stopped answering
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    DisconnectionError,
    OperationalError,
    SQLAlchemyError,
)

__all__ = [
    "SUPPORTED_URLS",
    "StoreError",
    "StoreMissing",
    "StoreUnavailable",
    "UnsupportedDatabase",
    "describe_store_error",
    "is_unavailable",
    "redact_url",
    "translate_store_errors",
]

SUPPORTED_URLS: Final = "a SQLite file path, sqlite:///PATH, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"


class StoreError(Exception):
    """The store cannot be used; ``message`` is one line naming the database (redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnavailable(StoreError):
    """The database cannot be reached or stopped answering (a server down, a dropped link)."""


class StoreMissing(StoreError):
    """A read-only command found no mtasts database where it was told to look (no file, or a
    database without mtasts' tables); it created nothing."""


class UnsupportedDatabase(StoreError):
    """The database URL is malformed or names a database mtasts does not support: a mistake on
    the command line (or in ``$MTASTS_DB``), not trouble with a database."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs and error lines."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"


def describe_store_error(exc: BaseException, url: str) -> str:
    """One line for ``exc`` raised while using the database at ``url``: the driver's first line,
    without SQLAlchemy's appendix (SQL, parameters, documentation links)."""
    if isinstance(exc, StoreError):
        return exc.message
    original = getattr(exc, "orig", None) if isinstance(exc, SQLAlchemyError) else None
    reason = str(original if original is not None else exc).strip().splitlines()
    first = reason[0].strip() if reason else type(exc).__name__
    return f"database {redact_url(url)}: {first}"


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be used at all (unreachable, locked, gone,
    its file unreadable), rather than that mtasts asked for something wrong (a bug)."""
    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, DatabaseError) and _NOT_A_DATABASE in str(exc.orig).lower():
        return True  # SQLite: the path is a file, but not a database (or an encrypted one)
    if not isinstance(exc, OperationalError):
        return False
    # SQLite reports a wrong query ("no such table", a syntax error, an arithmetic overflow) as
    # OperationalError too: a broken schema or a bug, not an outage, so it stays an internal error.
    text = str(exc.orig).lower()
    return not text.startswith(_SQLITE_QUERY_ERRORS)


_NOT_A_DATABASE: Final = "file is not a database"
_SQLITE_QUERY_ERRORS: Final = ("no such table", "no such column", "near ", "misuse", "integer overflow")


@contextlib.contextmanager
def translate_store_errors(url: str) -> Iterator[None]:
    """Within the block, a database that cannot be used becomes :class:`StoreUnavailable` with
    one line naming it; anything else (a bug) passes through unchanged."""
    try:
        yield
    except SQLAlchemyError as exc:
        if is_unavailable(exc):
            raise StoreUnavailable(describe_store_error(exc, url)) from exc
        raise

"""Where the resolver keeps its cache entries beyond memory: one small protocol, four stores.

The daemon always answers from memory; a :class:`PolicyStore` is what it loads at start
(a restarted daemon answers from the persisted cache at once, DNS or not) and writes each
changed entry to. Here: :class:`MemoryStore` and :class:`SqliteStore`; for a fleet,
:mod:`~mtasts.resolver.redis_store` and :mod:`~mtasts.resolver.pg_store`. The protocol is kept
to what a shared store can do as cheaply: whole entries by domain, serialised by
:func:`entry_to_json` / :func:`entry_from_json` so every store holds the same document.

A store failure is the driver's to absorb (it logs, counts and keeps answering from memory);
stores raise :class:`StoreError` for it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from mtasts.core.policy import Policy, parse_policy
from mtasts.core.problems import ParseError
from mtasts.resolver.cache import CacheEntry

__all__ = [
    "MemoryStore",
    "PolicyStore",
    "SqliteStore",
    "StoreError",
    "entry_from_json",
    "entry_to_json",
    "hide_password",
    "useful_until",
]

_FORMAT = 1  # the version of the stored document


class StoreError(Exception):
    """The store could not be read or written (its cause chained)."""


class PolicyStore(Protocol):
    """Cache entries by domain. Every method may raise :class:`StoreError`."""

    async def load_all(self) -> list[CacheEntry]:
        """Every stored entry (read once at start)."""
        ...

    async def get(self, domain: str) -> CacheEntry | None: ...

    async def put(self, entry: CacheEntry) -> None: ...

    async def delete(self, domain: str) -> None: ...

    async def close(self) -> None: ...


def hide_password(url: str) -> str:
    """``scheme://user:***@host/...``: a URL fit for logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.partition("/")[0]:
        return url
    credentials, _, host = rest.partition("/")[0].rpartition("@")
    user = credentials.partition(":")[0]
    tail = rest.partition("/")[1] + rest.partition("/")[2]
    return f"{scheme}://{user + ':***' if ':' in credentials else user}@{host}{tail}"


def useful_until(entry: CacheEntry) -> float:
    """The wall-clock second after which a stored ``entry`` is worth nothing: the policy's
    expiry (``max_age``), or the negative, back-off or fail-open time of an entry without a
    valid policy. Shared stores drop entries then, so no daemon can revive an expired policy
    from them."""
    until = entry.expires_at if entry.policy is not None else 0.0
    return max(until, entry.negative_until, entry.retry_after, entry.fail_open_until)


def entry_to_json(entry: CacheEntry) -> str:
    """The stored document of ``entry``: the policy as the body fetched (re-parsed on load)."""
    document: dict[str, Any] = {
        "format": _FORMAT,
        "domain": entry.domain,
        "policy_id": entry.policy_id,
        "body": None if entry.body is None or entry.policy is None else entry.body.decode("utf-8"),
        "fetched_at": entry.fetched_at,
        "expires_at": entry.expires_at,
        "txt_next_check": entry.txt_next_check,
        "negative_until": entry.negative_until,
        "failed_id": entry.failed_id,
        "retry_after": entry.retry_after,
        "fail_open_until": entry.fail_open_until,
        "last_error": entry.last_error,
        "mx_hosts": list(entry.mx_hosts),
        "mx_expires_at": entry.mx_expires_at,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def entry_from_json(text: str | bytes) -> CacheEntry:
    """The entry a stored document holds; :class:`StoreError` when it is not one."""
    try:
        document = json.loads(text)
        if not isinstance(document, Mapping) or document.get("format") != _FORMAT:
            raise StoreError("not a resolver cache entry of a known format")
        body_text = document["body"]
        body = None if body_text is None else str(body_text).encode("utf-8")
        policy: Policy | None = None
        if body is not None:
            policy = parse_policy(body)  # the sender's reading, as when it was fetched
        return CacheEntry(
            str(document["domain"]),
            policy=policy,
            policy_id=document["policy_id"],
            body=body,
            fetched_at=float(document["fetched_at"]),
            expires_at=float(document["expires_at"]),
            txt_next_check=float(document["txt_next_check"]),
            negative_until=float(document["negative_until"]),
            failed_id=document["failed_id"],
            retry_after=float(document["retry_after"]),
            fail_open_until=float(document["fail_open_until"]),
            last_error=str(document["last_error"]),
            mx_hosts=tuple(str(h) for h in document["mx_hosts"]),
            mx_expires_at=float(document["mx_expires_at"]),
        )
    except StoreError:
        raise
    except (ValueError, KeyError, TypeError, ParseError) as exc:
        raise StoreError(f"a stored entry cannot be read: {exc}") from exc


class MemoryStore:
    """Entries in a dict: the store when persistence is off, and the contract's reference."""

    def __init__(self) -> None:
        self._entries: dict[str, str] = {}

    async def load_all(self) -> list[CacheEntry]:
        entries = []
        for text in self._entries.values():
            try:
                entries.append(entry_from_json(text))
            except StoreError:
                continue  # as every store: one unreadable entry must not cost the rest
        return entries

    async def get(self, domain: str) -> CacheEntry | None:
        text = self._entries.get(domain)
        return None if text is None else entry_from_json(text)

    async def put(self, entry: CacheEntry) -> None:
        self._entries[entry.domain] = entry_to_json(entry)

    async def delete(self, domain: str) -> None:
        self._entries.pop(domain, None)

    async def close(self) -> None:
        return None


class SqliteStore:
    """Entries in one SQLite table (WAL, one connection used from worker threads in turn).

    Opening creates the file and its directory; it happens on the first call, not in the
    constructor.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS resolver_cache (domain TEXT PRIMARY KEY, entry TEXT NOT NULL)"
            )
            self._connection = connection
        return self._connection

    async def _run(self, sql: str, parameters: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        def work() -> list[tuple[str, ...]]:
            with self._lock:
                try:
                    return list(self._connect().execute(sql, parameters).fetchall())
                except (sqlite3.Error, OSError) as exc:
                    raise StoreError(f"the SQLite cache {self.path}: {exc}") from exc

        return await asyncio.to_thread(work)

    async def load_all(self) -> list[CacheEntry]:
        rows = await self._run("SELECT entry FROM resolver_cache")
        entries = []
        for (text,) in rows:
            try:
                entries.append(entry_from_json(text))
            except StoreError:
                continue  # one unreadable row must not cost the rest of the cache
        return entries

    async def get(self, domain: str) -> CacheEntry | None:
        rows = await self._run("SELECT entry FROM resolver_cache WHERE domain = ?", (domain,))
        return entry_from_json(rows[0][0]) if rows else None

    async def put(self, entry: CacheEntry) -> None:
        await self._run(
            "INSERT INTO resolver_cache (domain, entry) VALUES (?, ?) "
            "ON CONFLICT(domain) DO UPDATE SET entry = excluded.entry",
            (entry.domain, entry_to_json(entry)),
        )

    async def delete(self, domain: str) -> None:
        await self._run("DELETE FROM resolver_cache WHERE domain = ?", (domain,))

    async def close(self) -> None:
        def work() -> None:
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await asyncio.to_thread(work)

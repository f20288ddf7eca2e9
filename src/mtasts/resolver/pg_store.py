"""A PostgreSQL :class:`~mtasts.resolver.store.PolicyStore`: one cache shared by a fleet of daemons.

One table, ``domain TEXT PRIMARY KEY, entry TEXT, useful_until DOUBLE PRECISION``, holding the
same JSON document as every other store (:func:`~mtasts.resolver.store.entry_to_json`).
``useful_until`` is :func:`~mtasts.resolver.store.useful_until`: the policy's expiry (or the
negative, back-off or fail-open time of an entry without a policy). Reads never return an
entry past it, so no daemon revives an expired policy; writes of an entry with nothing left to
keep delete the row; expired rows are purged at load and every ``purge_interval`` seconds of
writes (PostgreSQL has no TTL of its own).

One connection (autocommit: each statement is its own transaction, and every write is one
upsert), opened on first use, one statement at a time. Every operation is bounded by
``timeout``; a PostgreSQL or connection error drops the connection and becomes
:class:`~mtasts.resolver.store.StoreError`, and for ``retry_after`` seconds the store fails at
once instead of reconnecting, so an outage costs the daemon nothing but counted store errors:
answers keep coming from memory (the driver's rule), never wrong ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.store import StoreError, entry_from_json, entry_to_json, hide_password, useful_until

__all__ = ["DEFAULT_TABLE", "PostgresStore"]

DEFAULT_TABLE = "mtasts_resolver_cache"


class PostgresStore:
    """Entries in the PostgreSQL table ``table`` (``SCHEMA.TABLE`` allowed; the schema and the
    table are created when missing) of the database at ``url`` (``postgresql://USER@HOST/DB``).
    Construction connects to nothing."""

    def __init__(
        self,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float = 2.0,
        retry_after: float = 5.0,
        purge_interval: float = 600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0 or retry_after < 0 or purge_interval <= 0:
            raise ValueError("timeout and purge_interval must be positive, retry_after not negative")
        schema, dot, name = table.rpartition(".")
        if not name or (dot and not schema):
            raise ValueError(f"{table!r} is not TABLE or SCHEMA.TABLE")
        self.url = url
        self.table = table
        self.timeout = timeout
        self.retry_after = retry_after
        self.purge_interval = purge_interval
        self.clock = clock
        self.monotonic = monotonic
        self._schema = schema or None
        self._name = name
        self._connection: Any = None
        self._lock = asyncio.Lock()
        self._down_until = 0.0
        self._next_purge = 0.0

    # --- plumbing ------------------------------------------------------------------------------

    def _identifier(self) -> Any:
        from psycopg import sql  # noqa: PLC0415 (loaded only for a PostgreSQL store)

        return sql.Identifier(self._schema, self._name) if self._schema else sql.Identifier(self._name)

    async def _connect(self) -> Any:
        import psycopg  # noqa: PLC0415 (loaded only for a PostgreSQL store)
        from psycopg import sql  # noqa: PLC0415

        connection = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.timeout + 0.999))
        )
        try:
            if self._schema:
                await connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema)))
            await connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (domain TEXT PRIMARY KEY, entry TEXT NOT NULL,"
                    " useful_until DOUBLE PRECISION NOT NULL)"
                ).format(self._identifier())
            )
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _run(self, what: str, query: Any, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement; its rows (none for a write). Every failure is a :class:`StoreError`."""
        import psycopg  # noqa: PLC0415 (loaded only for a PostgreSQL store)

        if self.monotonic() < self._down_until:
            raise StoreError(f"PostgreSQL {hide_password(self.url)}: {what}: unavailable, retried in a moment")
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    if self._connection is None or self._connection.closed:
                        self._connection = await self._connect()
                    cursor = await self._connection.execute(query, parameters)
                    return list(await cursor.fetchall()) if cursor.description is not None else []
            except (psycopg.Error, OSError, TimeoutError) as exc:
                await self._drop()
                self._down_until = self.monotonic() + self.retry_after
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StoreError(f"PostgreSQL {hide_password(self.url)}: {what}: {reason}") from exc

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing left to do
                await asyncio.wait_for(connection.close(), 1.0)

    def _sql(self, text: str) -> Any:
        from psycopg import sql  # noqa: PLC0415 (loaded only for a PostgreSQL store)

        return sql.SQL(text).format(table=self._identifier())

    # --- the protocol ----------------------------------------------------------------------------

    async def load_all(self) -> list[CacheEntry]:
        now = self.clock()
        await self._purge(now)
        rows = await self._run("load", self._sql("SELECT entry FROM {table} WHERE useful_until > %s"), (now,))
        entries = []
        for (text,) in rows:
            try:
                entries.append(entry_from_json(text))
            except StoreError:
                continue  # one unreadable row must not cost the rest of the cache
        return entries

    async def get(self, domain: str) -> CacheEntry | None:
        query = self._sql("SELECT entry FROM {table} WHERE domain = %s AND useful_until > %s")
        rows = await self._run("get", query, (domain, self.clock()))
        return entry_from_json(rows[0][0]) if rows else None

    async def put(self, entry: CacheEntry) -> None:
        now = self.clock()
        until = useful_until(entry)
        if until <= now:
            await self.delete(entry.domain)
            return
        query = self._sql(
            "INSERT INTO {table} (domain, entry, useful_until) VALUES (%s, %s, %s) "
            "ON CONFLICT (domain) DO UPDATE SET entry = EXCLUDED.entry, useful_until = EXCLUDED.useful_until"
        )
        await self._run("put", query, (entry.domain, entry_to_json(entry), until))
        if self.monotonic() >= self._next_purge:
            await self._purge(now)

    async def delete(self, domain: str) -> None:
        await self._run("delete", self._sql("DELETE FROM {table} WHERE domain = %s"), (domain,))

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _purge(self, now: float) -> None:
        self._next_purge = self.monotonic() + self.purge_interval
        await self._run("purge", self._sql("DELETE FROM {table} WHERE useful_until <= %s"), (now,))

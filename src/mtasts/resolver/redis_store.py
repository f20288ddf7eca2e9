"""A Redis :class:`~mtasts.resolver.store.PolicyStore`: one cache shared by a fleet of daemons.

Each entry is one string key, ``<prefix><domain>``, holding the same JSON document as every
other store (:func:`~mtasts.resolver.store.entry_to_json`), written with a Redis TTL equal to
the time the entry is still worth something: the policy's remaining ``max_age`` (or the
negative, back-off or fail-open time for an entry without a valid policy). Redis thus drops an
expired policy by itself, and a daemon can never revive one from the store (the peer daemon's
measured flaw: entries that never expire). An entry with nothing left to keep is deleted.

Every Redis or connection error becomes :class:`~mtasts.resolver.store.StoreError`; the driver
then keeps answering from memory (an outage degrades to memory-only, never to wrong answers).
The client is created on first use, with short socket timeouts, so a Redis that hangs costs
a write or a load, never an answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.store import StoreError, entry_from_json, entry_to_json, hide_password, useful_until

__all__ = ["DEFAULT_PREFIX", "RedisStore", "ttl_of"]

DEFAULT_PREFIX = "mtasts:resolver:"
_SCAN_BATCH = 500


def ttl_of(entry: CacheEntry, now: float) -> int:
    """Whole seconds the stored entry stays useful (0: nothing worth keeping), rounded up."""
    remaining = useful_until(entry) - now
    return 0 if remaining <= 0 else int(remaining) + (0 if remaining == int(remaining) else 1)


class RedisStore:
    """Entries in Redis at ``url`` (``redis://host:port/db``, ``rediss://``, ``unix://``) under
    ``prefix``. Construction connects to nothing."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not prefix:
            raise ValueError("the key prefix must not be empty (the store would own the whole database)")
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.clock = clock
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            try:
                import redis.asyncio  # noqa: PLC0415 (an optional dependency, loaded only for Redis)
            except ImportError as exc:  # an optional dependency
                raise StoreError("the Redis store needs the 'redis' package (pip install redis)") from exc
            try:
                self._client = redis.asyncio.Redis.from_url(
                    self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
                )
            except ValueError as exc:
                raise StoreError(f"{self.url!r} is not a Redis URL: {exc}") from exc
        return self._client

    async def _call(self, what: str, method: str, *arguments: Any, **options: Any) -> Any:
        import redis.exceptions  # noqa: PLC0415 (loaded by _redis() already)

        client = self._redis()
        try:
            return await getattr(client, method)(*arguments, **options)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            raise StoreError(f"Redis {hide_password(self.url)}: {what}: {exc}") from exc

    def _key(self, domain: str) -> str:
        return self.prefix + domain

    async def load_all(self) -> list[CacheEntry]:
        entries: list[CacheEntry] = []
        cursor: int = 0
        while True:
            cursor, keys = await self._call("scan", "scan", cursor, match=self.prefix + "*", count=_SCAN_BATCH)
            if keys:
                for text in await self._call("load", "mget", keys):
                    if text is None:
                        continue  # expired between SCAN and MGET
                    try:
                        entries.append(entry_from_json(text))
                    except StoreError:
                        continue  # one unreadable entry must not cost the rest of the cache
            if not cursor:
                return entries

    async def get(self, domain: str) -> CacheEntry | None:
        text = await self._call("get", "get", self._key(domain))
        return None if text is None else entry_from_json(text)

    async def put(self, entry: CacheEntry) -> None:
        ttl = ttl_of(entry, self.clock())
        if ttl <= 0:
            await self.delete(entry.domain)
            return
        await self._call("set", "set", self._key(entry.domain), entry_to_json(entry), ex=ttl)

    async def delete(self, domain: str) -> None:
        await self._call("delete", "delete", self._key(domain))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except Exception as exc:  # closing a broken connection: nothing left to do
                raise StoreError(f"Redis {hide_password(self.url)}: close: {exc}") from exc

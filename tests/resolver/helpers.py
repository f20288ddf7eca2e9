"""Test helpers for the resolver: counting network sources and a socketmap client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from mtasts.net.settings import NetworkSettings
from mtasts.resolver.cache import FetchResult
from mtasts.resolver.redis_store import RedisStore
from mtasts.resolver.sources import NetworkSources

REDIS_URL = "redis://127.0.0.1:6379/0"


@asynccontextmanager
async def redis_store(url: str = REDIS_URL, *, clock: Callable[[], float] = lambda: 0.0) -> AsyncIterator[RedisStore]:
    """A :class:`RedisStore` on the real server under a prefix of its own, emptied afterwards.

    The default clock is 0 so that the contract's entries (dated from the epoch) are live;
    tests about real expiry pass ``time.time``."""
    import pytest

    redis = pytest.importorskip("redis.asyncio", reason="the Redis store tests need redis-py (pip install redis)")
    prefix = f"mtasts-test:{uuid.uuid4().hex}:"
    store = RedisStore(url, prefix=prefix, clock=clock)
    try:
        yield store
    finally:
        await store.close()
        client = redis.Redis.from_url(url)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class CountingSources(NetworkSources):
    """The real network sources, counting policy fetches (the lab's HTTPS log is the lab's)."""

    def __init__(self, settings: NetworkSettings) -> None:
        super().__init__(settings)
        self.fetches = 0

    async def fetch(self, domain: str) -> FetchResult:
        self.fetches += 1
        return await super().fetch(domain)


class SocketmapClient:
    """A socketmap client as Postfix's dict_sockmap is: one netstring out, one netstring in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> SocketmapClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    @classmethod
    async def connect_unix(cls, path: Path) -> SocketmapClient:
        reader, writer = await asyncio.open_unix_connection(str(path))
        return cls(reader, writer)

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def read_reply(self) -> str:
        length = await self.reader.readuntil(b":")
        data = await self.reader.readexactly(int(length[:-1]))
        assert await self.reader.readexactly(1) == b","
        return data.decode()

    async def query(self, name: str, key: str) -> str:
        payload = f"{name} {key}".encode()
        await self.send(b"%d:%s," % (len(payload), payload))
        return await asyncio.wait_for(self.read_reply(), 10)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

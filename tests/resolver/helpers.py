"""Test helpers for the resolver: counting network sources and a socketmap client."""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mtasts.net.settings import NetworkSettings
from mtasts.resolver.cache import FetchResult
from mtasts.resolver.redis_store import RedisStore
from mtasts.resolver.sources import NetworkSources
from tests.commands import MTASTS

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


class PolicyRequestLog:
    """The lab's HTTPS log for one policy host (``mta-sts.<domain>``) over a ``with`` block:
    every request it read, as ``(method, path)``, counted by the lab itself
    (:meth:`~mtasts.lab.world.Lab.https_requests`), so a test can tell how many times a daemon
    in another process fetched the policy (as bench/resolver.py counts them)."""

    def __init__(self, controller: Any, domain: str) -> None:
        self.controller = controller
        self.host = f"mta-sts.{domain}"
        self._before = 0

    def __enter__(self) -> PolicyRequestLog:
        self._before = len(self.controller.https_requests(self.host))
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of each request read since the block began."""
        logged = self.controller.https_requests(self.host)[self._before :]
        return [(request.method, request.path) for request in logged]

    @property
    def fetches(self) -> int:
        """Policy requests (``GET /.well-known/mta-sts.txt``) logged so far."""
        from mtasts.lab.plan import POLICY_PATH

        return self.requests.count(("GET", POLICY_PATH))


class ServeProcess:
    """``mtasts resolver serve`` in a subprocess, as an operator runs it: its stderr collected
    line by line by a thread (so a test can wait for a log line), stopped with SIGTERM.

    Waiting for a line is waiting for a state of the daemon, bounded by ``timeout``; nothing
    here sleeps for a fixed time."""

    def __init__(self, arguments: list[str], *, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import threading

        self.process = subprocess.Popen(
            [*MTASTS, "resolver", "serve", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
        )
        self.lines: list[str] = []
        self._terminated = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_line(self, pattern: str, *, after: int = 0, timeout: float = 20.0) -> re.Match[str]:
        """The first stderr line from number ``after`` on that matches ``pattern`` (a regex)."""
        import time

        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    found = re.search(pattern, line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r}; stderr:\n{''.join(self.lines)}")
                self._changed.wait(min(left, 0.5))

    def signal(self, signum: int) -> int:
        """Send ``signum``; the number of stderr lines so far (for :meth:`wait_line`'s ``after``)."""
        with self._changed:
            count = len(self.lines)
        self.process.send_signal(signum)
        self._terminated = self._terminated or signum == signal.SIGTERM
        return count

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (unless already sent: a second one would cut the graceful stop short), then
        the exit status."""
        if self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()


class BlockingSocketmapClient:
    """The same client for blocking tests (a daemon in another process): one socket, one
    netstring out, one netstring in."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        import socket

        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send(self, name: str, key: str) -> None:
        payload = f"{name} {key}".encode()
        self.sock.sendall(b"%d:%s," % (len(payload), payload))

    def read_reply(self) -> str:
        """One reply; ``ConnectionError`` when the daemon closed the connection first."""
        while True:
            length, colon, rest = self.buffer.partition(b":")
            if colon and len(rest) > int(length):
                data, self.buffer = rest[: int(length)], rest[int(length) + 1 :]
                return data.decode()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buffer += chunk

    def query(self, name: str, key: str) -> str:
        self.send(name, key)
        return self.read_reply()

    def close(self) -> None:
        self.sock.close()


def query_once(port: int, name: str, key: str) -> str:
    """One lookup on a connection of its own."""
    client = BlockingSocketmapClient(port)
    try:
        return client.query(name, key)
    finally:
        client.close()

"""The admin listener every daemon has: plain HTTP for ``GET /metrics`` and the like.

``publish serve``, ``resolver serve`` and ``monitor serve`` each answer a few admin requests
(Prometheus text, a health check, a reload or a cache flush) on an address of their own,
loopback by default. What the listener is, is the same for all three, so it lives here once:
its bounds (at most 64 connections, 16 per client, an 8 KiB request head, header and idle
timeouts, 100 requests per connection: :mod:`mtasts.net.server` and
:mod:`mtasts.net.http11`), where it listens, and starting and stopping it. What each daemon
answers is its own :data:`~mtasts.net.http11.App`.
"""

from __future__ import annotations

import asyncio
from typing import Final

from mtasts.net.http11 import App, HttpLimits, serve_http
from mtasts.net.server import Listener, ServerLimits, StreamServer

__all__ = ["ADMIN_HTTP", "ADMIN_LIMITS", "PROMETHEUS_TEXT", "AdminListener"]

ADMIN_LIMITS: Final = ServerLimits(handshake_timeout=5.0, max_connections=64, max_connections_per_client=16)
ADMIN_HTTP: Final = HttpLimits(max_header_bytes=8 * 1024, header_timeout=10.0, idle_timeout=30.0, max_requests=100)
PROMETHEUS_TEXT: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of Prometheus's text exposition format, version 0.0.4."""


class AdminListener:
    """``app`` served over plain HTTP on ``host``:``port`` (``0``: a free port, known after
    :meth:`start`); ``name`` names it in the logs. Nothing is bound before :meth:`start`."""

    def __init__(self, name: str, app: App, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server = StreamServer(name, limits=ADMIN_LIMITS)

    @property
    def address(self) -> str:
        """Where it listens (``[v6]:port`` for an IPv6 address), the port filled in after :meth:`start`."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> int:
        """Listen (``OSError`` when it cannot) and return the port."""
        self.port = await self._server.start([Listener(self.host, self._serve, name="admin")], self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        await self._server.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        await serve_http(reader, writer, self.app, limits=ADMIN_HTTP, client=client)

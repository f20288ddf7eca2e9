"""Listener lifecycle shared by the lab's servers: binding, connection tracking, clean close.

asyncio's ``Server.close()`` (Python 3.11) stops accepting but leaves established connections
running, so every handler the lab starts is registered here and :meth:`Connections.aclose`
cancels them and aborts their transports: after a lab stops, no task, socket or transport of
it is left. Protocol code never sees any of this.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = [
    "DEFAULT_LIMITS",
    "Connections",
    "Limits",
    "SharedPortServer",
    "bind_same_port",
    "close_writer",
    "sanitize",
]

log = logging.getLogger("mtasts.lab")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

_BIND_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client can make a lab server do (seconds and bytes).

    ``idle_timeout`` bounds every wait for client data, ``handshake_timeout`` every TLS
    handshake, ``hang_timeout`` how long a hanging policy host holds a connection.
    """

    idle_timeout: float = 10.0
    handshake_timeout: float = 5.0
    hang_timeout: float = 60.0
    max_header_bytes: int = 8 * 1024
    max_body_bytes: int = 1024 * 1024
    max_smtp_line: int = 1000  # RFC 5321 §4.5.3.1.6: a text line, CRLF included
    max_message_bytes: int = 1024 * 1024
    max_dns_queries_per_connection: int = 100

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "handshake_timeout", "hang_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_header_bytes", "max_body_bytes", "max_smtp_line", "max_message_bytes"):
            if getattr(self, name) < 64:
                raise ValueError(f"{name} must be at least 64 bytes")


DEFAULT_LIMITS = Limits()


def sanitize(data: bytes | str, limit: int = 80) -> str:
    """Client input made safe for one log line: printable ASCII, shortened."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    cleaned = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


async def close_writer(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Flush and close a stream; abort it when the peer does not let it close in time."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (OSError, TimeoutError, ssl.SSLError):
        writer.transport.abort()


class Connections:
    """The live connections of a lab, so that stopping it ends every one of them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    def __len__(self) -> int:
        return len(self._tasks)

    def wrap(self, handler: Handler, what: str) -> Handler:
        """``handler`` registered for cleanup; an unexpected error is logged, never raised."""

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self._writers.add(writer)
            try:
                await handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                log.debug("%s: connection ended: %r", what, exc)
            except Exception:  # a bug: keep serving, say where
                log.exception("%s: unexpected error", what)
            finally:
                try:
                    if self._closing:
                        writer.transport.abort()  # the lab is stopping: no goodbyes
                    else:
                        await close_writer(writer)
                finally:
                    self._writers.discard(writer)
                    self._tasks.discard(task)

        return run

    async def aclose(self) -> None:
        """Cancel every handler and abort every transport still open."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        # let connection_lost callbacks run, which close the sockets
        for _ in range(3):
            await asyncio.sleep(0)


async def bind_same_port(
    listeners: Sequence[tuple[str, Handler]], port: int, *, limit: int
) -> tuple[list[asyncio.Server], int]:
    """Start one TCP server per ``(address, handler)``, all on the same port number.

    With ``port=0`` the first address picks a free port and the others reuse its number; when
    that number is taken on another address, everything is closed and tried again.
    """
    if not listeners:
        return [], port
    for _ in range(_BIND_ATTEMPTS):
        servers: list[asyncio.Server] = []
        try:
            chosen = port
            for address, handler in listeners:
                server = await asyncio.start_server(handler, address, chosen, limit=limit, reuse_address=True)
                servers.append(server)
                if chosen == 0:
                    chosen = server.sockets[0].getsockname()[1]
        except OSError as exc:
            await close_servers(servers)
            if port != 0 or exc.errno != errno.EADDRINUSE:
                raise
            continue
        return servers, chosen
    raise OSError(errno.EADDRINUSE, "no port number is free on every lab address")


async def close_servers(servers: Sequence[asyncio.Server]) -> None:
    """Stop listening (established connections are :class:`Connections`' business)."""
    for server in servers:
        server.close()
    for server in servers:
        await server.wait_closed()


class _HasAddress(Protocol):
    @property
    def address(self) -> str: ...


_H = TypeVar("_H", bound=_HasAddress)


class SharedPortServer(Generic[_H]):
    """One listener per host, each on its host's own address, all on one port number: the
    lifecycle the lab's HTTPS and SMTP servers share. Subclasses say how to serve a host
    (:meth:`_handler`) and how long a line may be (:meth:`_stream_limit`)."""

    def __init__(self, hosts: Sequence[_H], *, port: int, limits: Limits) -> None:
        self.hosts = tuple(hosts)
        self.port = port
        self.limits = limits
        self._servers: list[asyncio.Server] = []
        self._connections = Connections()

    async def start(self) -> None:
        """Listen on every host's address (port chosen once, shared)."""
        listeners = [(host.address, self._handler(host)) for host in self.hosts]
        self._servers, self.port = await bind_same_port(listeners, self.port, limit=self._stream_limit())

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        await close_servers(self._servers)
        self._servers = []
        await self._connections.aclose()

    def _handler(self, host: _H) -> Handler:
        raise NotImplementedError

    def _stream_limit(self) -> int:
        raise NotImplementedError

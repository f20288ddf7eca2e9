"""What the lab's servers add to :mod:`mtasts.net.server`: their limits and "one host per address".

The generic parts (listeners, TLS at accept, connection caps and tracking, a clean stop,
``sanitize``) live in :mod:`mtasts.net.server`, shared with mtasts' other servers; this module
keeps the lab's own: :class:`Limits` (the lab's bounds, including its protocol-specific ones) and
:class:`SharedPortServer`, which gives every lab host its own loopback address on one shared
port number, so DNS alone decides which host (and which certificate) a client reaches, and
:func:`check_delay`, the one rule for the latency every lab server adds to its answers.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from mtasts.net.server import Connections, Handler, Listener, ServerLimits, StreamServer, close_writer, sanitize

__all__ = [
    "DEFAULT_LIMITS",
    "Connections",
    "Handler",
    "Limits",
    "SharedPortServer",
    "check_delay",
    "close_writer",
    "sanitize",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client can make a lab server do (seconds and bytes).

    ``idle_timeout`` bounds every wait for client data, ``handshake_timeout`` every TLS
    handshake, ``hang_timeout`` how long a hanging policy host holds a connection;
    ``max_connections`` caps the connections of each lab server (DNS, HTTPS, SMTP) at once,
    ``max_connections_per_client`` those from one client address. Every lab client connects
    from 127.0.0.1, so by default the two are equal.
    """

    idle_timeout: float = 10.0
    handshake_timeout: float = 5.0
    hang_timeout: float = 60.0
    max_header_bytes: int = 8 * 1024
    max_body_bytes: int = 1024 * 1024
    max_smtp_line: int = 1000  # RFC 5321 §4.5.3.1.6: a text line, CRLF included
    max_message_bytes: int = 1024 * 1024
    max_dns_queries_per_connection: int = 100
    max_connections: int = 1000
    max_connections_per_client: int = 1000

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "handshake_timeout", "hang_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_header_bytes", "max_body_bytes", "max_smtp_line", "max_message_bytes"):
            if getattr(self, name) < 64:
                raise ValueError(f"{name} must be at least 64 bytes")
        self.server_limits()  # the connection caps are checked there

    def server_limits(self) -> ServerLimits:
        """The part of these limits that :class:`~mtasts.net.server.StreamServer` enforces."""
        return ServerLimits(
            handshake_timeout=self.handshake_timeout,
            max_connections=self.max_connections,
            max_connections_per_client=self.max_connections_per_client,
        )


DEFAULT_LIMITS = Limits()

MAX_DELAY = 10.0  # seconds; more is no round trip on this planet, and would outlast every timeout


def check_delay(delay: float) -> float:
    """``delay`` (seconds a lab server waits before each answer) if it is usable, else ``ValueError``.

    The delay models the network between client and server, not server limits, which is why it
    is not in :class:`Limits`: it is a property of the simulated world that every lab server
    applies alike (DNS answers, HTTP responses, SMTP replies). 0 means no latency and costs
    nothing: the servers then make no sleep call at all.
    """
    if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"the lab delay must be between 0 and {MAX_DELAY:g} seconds, not {delay!r}")
    return float(delay)


class _HasAddress(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def name(self) -> str: ...


_H = TypeVar("_H", bound=_HasAddress)


class SharedPortServer(Generic[_H]):
    """One listener per host, each on its host's own address, all on one port number: the
    lifecycle the lab's HTTPS and SMTP servers share. Subclasses say how to serve a host
    (:meth:`_handler`), whether its listener terminates TLS (:meth:`_tls`), how long a line may
    be (:meth:`_stream_limit`) and what a client refused by a cap is told (``busy_reply``).
    ``delay`` (seconds, see :func:`check_delay`) is what subclasses wait before each answer."""

    busy_reply: bytes | None = None

    def __init__(self, kind: str, hosts: Sequence[_H], *, port: int, limits: Limits, delay: float = 0.0) -> None:
        self.hosts = tuple(hosts)
        self.limits = limits
        self.delay = check_delay(delay)
        self._port = port
        self._server = StreamServer(
            f"lab {kind}",
            limits=limits.server_limits(),
            stream_limit=self._stream_limit(),
            busy_reply=self.busy_reply,
        )
        self._kind = kind

    @property
    def port(self) -> int:
        """The port every host listens on (chosen at :meth:`start` when 0 was asked for)."""
        return self._server.port or self._port

    @property
    def server(self) -> StreamServer:
        """The listeners and connections (caps, counts)."""
        return self._server

    async def start(self) -> None:
        """Listen on every host's address (port chosen once, shared)."""
        listeners = [
            Listener(host.address, self._handler(host), self._tls(host), f"lab {self._kind} {host.name}")
            for host in self.hosts
        ]
        await self._server.start(listeners, self._port)

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        await self._server.stop()

    def _handler(self, host: _H) -> Handler:
        raise NotImplementedError

    def _tls(self, host: _H) -> ssl.SSLContext | None:
        return None

    def _stream_limit(self) -> int:
        raise NotImplementedError

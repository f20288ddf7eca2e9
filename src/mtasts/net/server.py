"""Shared plumbing for mtasts' TCP servers: listeners, connection caps and tracking, TLS at accept.

Every server mtasts runs (the lab's DNS, HTTPS and SMTP hosts today; the policy host, the
resolver's admin endpoint and the report endpoint later) takes its listener lifecycle from
:class:`StreamServer`, so that the rules below are written once:

**TLS is terminated at accept, never by upgrading a stream that is already reading.**
``StreamWriter.start_tls`` after ``start_server`` loses handshakes: the transport starts reading
as soon as the connection is accepted, so a ClientHello that arrives before the handler gets to
``start_tls`` (most of the time under uvloop, and on any loaded machine) lands in the
``StreamReader``'s buffer as plain bytes. The TLS layer never sees it and the handshake dies on
its timeout: the lab's policy hosts randomly "timed out" for correct domains that way. Here a
listener with an ``SSLContext`` hands each accepted socket, before any byte of it was read, to
``loop.connect_accepted_socket(ssl=...)``: the kernel keeps the ClientHello until the TLS
layer reads it. The certificate is chosen per listening address (each :class:`Listener` has
its own context) or by SNI inside one context (:func:`select_by_sni`); the handshake has a
deadline (:attr:`ServerLimits.handshake_timeout`). A protocol that upgrades in-band (SMTP
STARTTLS, RFC 3207) must prove that no byte beyond the command was read before the upgrade
(see :mod:`mtasts.lab.smtp`): refuse when something is buffered, stop reading before replying.

**Every connection is counted from accept to close.** :class:`Connections` caps them per
server and per client address before any work is done for them (a client that opens sockets
and never sends a ClientHello holds a slot only until the handshake deadline), and
:meth:`StreamServer.stop` cancels every handler and aborts every transport, handshakes in
progress included (asyncio's ``Server.close()`` on Python 3.11 leaves established connections
running and cannot reach connections still in their handshake).

Protocol code only sees ``(reader, writer)``; an unexpected error in it is logged and ends that
one connection, never the server.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_SERVER_LIMITS",
    "Connections",
    "Handler",
    "Listener",
    "ServerLimits",
    "StreamServer",
    "close_writer",
    "sanitize",
    "select_by_sni",
]

log = logging.getLogger("mtasts.net.server")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""Serves one connection; the server closes the stream when it returns."""

_BIND_ATTEMPTS = 20
_BACKLOG = 1024
_ACCEPT_BURST = 16  # accepts in a row before letting other tasks run
_ACCEPT_RETRY_DELAY = 0.5  # seconds; out of file descriptors or memory: let connections end first
_ACCEPT_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What any server bounds, whatever its protocol.

    ``max_connections`` caps the connections a server holds at once (handshakes included),
    ``max_connections_per_client`` those from one client address, so one client cannot take
    every slot; ``handshake_timeout`` bounds each TLS handshake and ``close_timeout`` how long a
    peer may delay a graceful close before the connection is aborted.
    """

    handshake_timeout: float = 5.0
    close_timeout: float = 1.0
    max_connections: int = 1000
    max_connections_per_client: int = 100

    def __post_init__(self) -> None:
        for name in ("handshake_timeout", "close_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_connections", "max_connections_per_client"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


DEFAULT_SERVER_LIMITS = ServerLimits()


def sanitize(data: bytes | str, limit: int = 80) -> str:
    """Client input made safe for one log line: printable ASCII, shortened."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    cleaned = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


async def close_writer(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Flush and close a stream; abort it when the peer does not let it close in time.

    ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` wraps the wait in a new
    task, a measurable cost at every connection's end when thousands a second end."""
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError, ValueError):
        writer.transport.abort()


def select_by_sni(
    listening: ssl.SSLContext, by_name: Mapping[str, ssl.SSLContext], default: ssl.SSLContext
) -> ssl.SSLContext:
    """Make ``listening`` present, per handshake, the context of the name the client asks for.

    A ClientHello whose SNI is a key of ``by_name`` (case and a trailing dot ignored) gets that
    context; no SNI or any other name gets ``default``, as shared web hosting does. Returns
    ``listening`` (its ``sni_callback`` set), which is what a :class:`Listener` takes.
    """
    table = {name.rstrip(".").lower(): context for name, context in by_name.items()}

    def choose(connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        wanted = server_name.rstrip(".").lower() if server_name else None
        chosen = table.get(wanted, default) if wanted is not None else default
        if connection.context is not chosen:
            connection.context = chosen

    listening.sni_callback = choose
    return listening


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening address: who serves its connections and, for TLS, the context it uses.

    ``tls`` ``None`` is plain TCP (a protocol may still upgrade in-band); ``name`` labels log lines.
    """

    address: str
    handler: Handler
    tls: ssl.SSLContext | None = None
    name: str = ""
    # asked with the accepted socket, before any byte is read, for another context than ``tls``
    # (None: ``tls``); it may peek (MSG_PEEK) but not read: TLS-ALPN-01 (mtasts.publish.alpn)
    choose_tls: Callable[[socket.socket], Awaitable[ssl.SSLContext | None]] | None = None


class Connections:
    """The live connections of one server: counted per client address, capped, closable.

    A slot is taken at accept (:meth:`admit`) and given back when the connection ends
    (:meth:`release`), so connections still in their TLS handshake count too.
    """

    def __init__(self, *, max_connections: int, max_per_client: int) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.refused = 0
        self._per_client: dict[str, int] = {}
        self._total = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.closing = False

    def __len__(self) -> int:
        return self._total

    def of(self, client: str) -> int:
        """How many connections ``client`` holds."""
        return self._per_client.get(client, 0)

    def admit(self, client: str) -> bool:
        """Take a slot for a new connection from ``client``; ``False`` when a cap is reached."""
        if self.closing or self._total >= self.max_connections or self.of(client) >= self.max_per_client:
            self.refused += 1
            return False
        self._total += 1
        self._per_client[client] = self.of(client) + 1
        return True

    def release(self, client: str) -> None:
        """Give back the slot of a connection from ``client`` that ended."""
        self._total -= 1
        left = self._per_client[client] - 1
        if left:
            self._per_client[client] = left
        else:
            del self._per_client[client]

    def track(self, task: asyncio.Task[None], client: str) -> None:
        """Keep ``task`` (serving a connection of ``client``) until it ends; then free the slot."""
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self.release(client)

        task.add_done_callback(done)

    def opened(self, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    def closed(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)

    async def aclose(self) -> None:
        """Refuse new connections, cancel every handler and abort every transport still open."""
        self.closing = True
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


class StreamServer:
    """TCP listeners (plain or TLS-at-accept) sharing one port number, connection caps and a
    clean stop.

    ``stream_limit`` is the ``StreamReader`` limit (the longest line ``readuntil`` accepts);
    ``busy_reply`` is sent, best effort, to a client refused by a cap before the socket is
    closed (e.g. SMTP's ``421``; ``None`` for TLS listeners, which just close). Construction
    binds nothing; :meth:`start` does.
    """

    def __init__(
        self,
        name: str,
        *,
        limits: ServerLimits = DEFAULT_SERVER_LIMITS,
        stream_limit: int = 64 * 1024,
        busy_reply: bytes | None = None,
    ) -> None:
        self.name = name
        self.limits = limits
        self.stream_limit = stream_limit
        self.busy_reply = busy_reply
        self.port = 0
        self.connections = Connections(
            max_connections=limits.max_connections, max_per_client=limits.max_connections_per_client
        )
        self._sockets: list[socket.socket] = []
        self._acceptors: set[asyncio.Task[None]] = set()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return tuple(self._sockets)

    @property
    def refused(self) -> int:
        """How many connections a cap turned away."""
        return self.connections.refused

    def __len__(self) -> int:
        return len(self.connections)

    async def start(self, listeners: Sequence[Listener], port: int = 0) -> int:
        """Listen on every ``listener``'s address, all on port ``port``; the port number used.

        With ``port=0`` the first address picks a free port and the others reuse its number;
        when that number is taken on another address, everything is closed and tried again.
        """
        if self._sockets:
            raise RuntimeError(f"{self.name}: already listening")
        self.connections.closing = False
        if not listeners:
            return port
        loop = asyncio.get_running_loop()
        for _ in range(_BIND_ATTEMPTS):
            sockets: list[socket.socket] = []
            try:
                chosen = port
                for listener in listeners:
                    sock = await _listening_socket(loop, listener.address, chosen)
                    sockets.append(sock)
                    if chosen == 0:
                        chosen = sock.getsockname()[1]
            except OSError as exc:
                for sock in sockets:
                    sock.close()
                if port != 0 or exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._sockets, self.port = sockets, chosen
            for sock, listener in zip(sockets, listeners, strict=True):
                task = loop.create_task(self._accept(sock, listener), name=f"{self.name} accept {listener.address}")
                self._acceptors.add(task)
            return chosen
        raise OSError(errno.EADDRINUSE, f"{self.name}: no port number is free on every address")

    async def stop(self) -> None:
        """Stop listening, then end every connection (handshakes in progress included)."""
        acceptors = list(self._acceptors)
        for task in acceptors:
            task.cancel()
        if acceptors:
            await asyncio.gather(*acceptors, return_exceptions=True)
        self._acceptors.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        await self.connections.aclose()

    # --- per connection ---------------------------------------------------------------------

    async def _accept(self, sock: socket.socket, listener: Listener) -> None:
        loop = asyncio.get_running_loop()
        accepted = 0
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _ACCEPT_RESOURCE_ERRNOS:
                    log.warning("%s: cannot accept connections (%s); retrying", self.name, exc.strerror)
                    await asyncio.sleep(_ACCEPT_RETRY_DELAY)
                else:  # the peer gave up before accept (ECONNABORTED) and the like
                    log.debug("%s: accept failed: %r", self.name, exc)
                continue
            self._dispatch(loop, conn, peer, listener)
            accepted += 1
            if accepted % _ACCEPT_BURST == 0:
                await asyncio.sleep(0)  # a flood of connections must not starve the handlers

    def _dispatch(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, peer: object, listener: Listener) -> None:
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.connections.admit(client):
            log.debug("%s: refused a connection from %s (connection cap)", self.name, client)
            _refuse(conn, self.busy_reply)
            return
        conn.setblocking(False)
        handed_over: list[bool] = []
        task = loop.create_task(self._serve(conn, listener, client, handed_over), name=f"{self.name} {client}")
        self.connections.track(task, client)
        # a task cancelled before its first step never runs its body: the socket is still ours
        task.add_done_callback(lambda _: None if handed_over else conn.close())

    async def _serve(self, conn: socket.socket, listener: Listener, client: str, handed_over: list[bool]) -> None:
        what = listener.name or self.name
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.stream_limit)
        opened: list[asyncio.StreamWriter] = []
        # The callback only hands the writer back: the handler runs in this task. It must not
        # be None, or StreamWriter.start_tls would think this is the client side.
        protocol = asyncio.StreamReaderProtocol(reader, lambda _reader, writer: opened.append(writer))
        tls = listener.tls
        if tls is not None and listener.choose_tls is not None:
            tls = await listener.choose_tls(conn) or tls
        # From here the transport owns the socket (both asyncio and uvloop take it before
        # their first await) and closes it, whatever happens next.
        handed_over.append(True)
        try:
            if listener.tls is None:
                await loop.connect_accepted_socket(lambda: protocol, conn)
            else:
                await loop.connect_accepted_socket(
                    lambda: protocol, conn, ssl=tls, ssl_handshake_timeout=self.limits.handshake_timeout
                )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError; so is the deadline
            step = "TLS handshake" if listener.tls is not None else "connection set-up"
            log.debug("%s: %s with %s failed: %r", what, step, client, exc)
            return
        if not opened:  # the transport closed before the protocol saw it (a peer gone at once)
            return
        writer = opened[0]
        self.connections.opened(writer)
        try:
            await listener.handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
            log.debug("%s: connection from %s ended: %r", what, client, exc)
        except Exception:  # a bug: keep serving the others, say where
            log.exception("%s: unexpected error serving %s", what, client)
        finally:
            try:
                if self.connections.closing:
                    writer.transport.abort()  # the server is stopping: no goodbyes
                else:
                    await close_writer(writer, self.limits.close_timeout)
            finally:
                self.connections.closed(writer)


async def _listening_socket(loop: asyncio.AbstractEventLoop, address: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on ``address``:``port`` (as asyncio would make it)."""
    sockaddr: tuple[Any, ...]
    try:
        ip = ipaddress.ip_address(address)  # the usual case, and a lab binds thousands: no lookup
    except ValueError:
        infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        if not infos:
            raise OSError(errno.EADDRNOTAVAIL, f"no address for {address!r}") from None
        family, _, _, _, sockaddr = infos[0]
    else:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sockaddr = (address, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _refuse(conn: socket.socket, reply: bytes | None) -> None:
    """Turn a connection away at once: the busy reply if the socket takes it now, then close."""
    try:
        if reply:
            conn.setblocking(False)
            conn.send(reply)
    except OSError:
        pass
    finally:
        conn.close()

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

Protocol code sees either ``(reader, writer)`` (a :data:`Handler`, run in a task per
connection) or protocol callbacks (a :class:`ServerProtocol`, for a :class:`Listener` with
``protocol``: no stream objects and no task once the connection is open, which is what a host
answering one small request per new TLS connection spends most of its Python time on). Both
come through the same accept, caps, TLS-at-accept and stop code; a protocol connection may
continue as a stream (:meth:`ServerProtocol.hand_over`) for the rare request its callbacks do
not answer themselves. An unexpected error in either is logged and ends that one connection,
never the server.
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
from typing import Any, cast

__all__ = [
    "DEFAULT_SERVER_LIMITS",
    "BindError",
    "Connections",
    "Handler",
    "Listener",
    "ProtocolFactory",
    "ServerLimits",
    "ServerProtocol",
    "StreamServer",
    "close_writer",
    "sanitize",
    "select_by_sni",
]

log = logging.getLogger("mtasts.net.server")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""Serves one connection; the server closes the stream when it returns."""

ProtocolFactory = Callable[[str], "ServerProtocol"]
"""Makes the protocol of one accepted connection, given the client's address (before the TLS
handshake: the protocol's ``connection_made`` comes after it)."""

_BIND_ATTEMPTS = 20
_BACKLOG = 1024
# accepts per readiness of a listening socket: one, like nginx (multi_accept off); a burst would
# put a burst of TLS handshakes ahead of the requests of connections already open
_ACCEPT_BURST = 1
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


class BindError(OSError):
    """A listening address of :meth:`StreamServer.start` cannot be bound: ``address`` and
    ``port`` (the one tried) say which, ``errno`` and ``strerror`` are the system's, so the
    caller can name the address at fault among several."""

    def __init__(self, code: int | None, strerror: str, address: str, port: int) -> None:
        super().__init__(code, strerror)
        self.address = address
        self.port = port


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening address: who serves its connections and, for TLS, the context it uses.

    Exactly one of ``handler`` (a task with a stream per connection) and ``protocol`` (a
    :class:`ServerProtocol` per connection, see the module docstring) serves it. ``tls``
    ``None`` is plain TCP (a protocol may still upgrade in-band); ``name`` labels log lines.
    """

    address: str
    handler: Handler | None = None
    tls: ssl.SSLContext | None = None
    name: str = ""
    # asked with the accepted socket, before any byte is read, for another context than ``tls``
    # (what it awaits to None: ``tls``); it may peek (MSG_PEEK) but not read: TLS-ALPN-01
    # (mtasts.publish.alpn). Returning None instead of an awaitable is "``tls``, decided at
    # once": no coroutine per connection while nothing needs a look at the ClientHello.
    choose_tls: Callable[[socket.socket], Awaitable[ssl.SSLContext | None] | None] | None = None
    protocol: ProtocolFactory | None = None

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.protocol is None):
            raise ValueError(f"listener {self.address}: give a handler or a protocol, not both or neither")


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
        # protocol connections: opening (TLS handshake, or choose_tls) and open
        self._openings: dict[asyncio.Task[None], tuple[ServerProtocol, socket.socket]] = {}
        self._protocols: set[ServerProtocol] = set()
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

    def track_opening(self, task: asyncio.Task[None], protocol: ServerProtocol, conn: socket.socket) -> None:
        """Keep ``task`` (setting up ``protocol``'s connection on ``conn``) until it ends. Its
        slot is given back here only when the connection never opened; once it did, the
        protocol gives it back at ``connection_lost`` (:meth:`ServerProtocol.connection_lost`)."""
        self._openings[task] = (protocol, conn)
        task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[None]) -> None:
        protocol, conn = self._openings.pop(task)
        if not task.cancelled() and (exc := task.exception()) is not None:  # a bug (the expected failures are caught)
            log.error("unexpected error opening a connection from %s", protocol.client, exc_info=exc)
        if protocol._state == _NEW:  # cancelled before the transport took the socket
            conn.close()
        if protocol._state in (_NEW, _OPENING):  # no transport reached connection_made
            protocol._state = _ENDED
            self.release(protocol.client)

    def opened(self, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    def closed(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)

    async def aclose(self) -> None:
        """Refuse new connections, cancel every handler and abort every transport still open."""
        self.closing = True
        # streams first: a task cancelled between its stream's connection_made and its next step
        # has the loop close that stream internally, which leaves it looking open for good
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = [*self._tasks, *self._openings]  # cancelling an opening aborts its handshake
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for protocol in list(self._protocols):
            protocol.transport.abort()  # its connection_lost gives the slot back
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
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the listeners are registered with
        self._accept_retries: dict[socket.socket, asyncio.TimerHandle] = {}

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
                    raise BindError(exc.errno, exc.strerror or str(exc), listener.address, chosen) from exc
                continue
            self._sockets, self.port, self._loop = sockets, chosen, loop
            for sock, listener in zip(sockets, listeners, strict=True):
                loop.add_reader(sock, self._accept, loop, sock, listener)
            return chosen
        raise OSError(errno.EADDRINUSE, f"{self.name}: no port number is free on every address")

    async def stop(self) -> None:
        """Stop listening, then end every connection (handshakes in progress included)."""
        for handle in self._accept_retries.values():
            handle.cancel()
        self._accept_retries.clear()
        for sock in self._sockets:
            if self._loop is not None:
                self._loop.remove_reader(sock)
            sock.close()
        self._sockets, self._loop = [], None
        await self.connections.aclose()

    # --- per connection ---------------------------------------------------------------------

    def _accept(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, listener: Listener) -> None:
        """Accept what the listening socket holds (the loop calls this while it is readable):
        no future, task or reader registration per connection. At most ``_ACCEPT_BURST`` in a
        row, then the loop runs the rest (a flood of connections must not starve them)."""
        for _ in range(_ACCEPT_BURST):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_RESOURCE_ERRNOS:  # let connections end first
                    log.warning("%s: cannot accept connections (%s); retrying", self.name, exc.strerror)
                    loop.remove_reader(sock)
                    self._accept_retries[sock] = loop.call_later(
                        _ACCEPT_RETRY_DELAY, self._accept_again, loop, sock, listener
                    )
                    return
                log.debug("%s: accept failed: %r", self.name, exc)  # the peer gave up first, and the like
                continue
            self._dispatch(loop, conn, peer, listener)

    def _accept_again(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, listener: Listener) -> None:
        del self._accept_retries[sock]
        loop.add_reader(sock, self._accept, loop, sock, listener)

    def _dispatch(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, peer: object, listener: Listener) -> None:
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.connections.admit(client):
            log.debug("%s: refused a connection from %s (connection cap)", self.name, client)
            _refuse(conn, self.busy_reply)
            return
        conn.setblocking(False)
        if listener.protocol is not None:
            protocol = listener.protocol(client)
            protocol._server = self
            opening = loop.create_task(self._open(conn, listener, protocol), name=f"{self.name} {client}")
            self.connections.track_opening(opening, protocol, conn)
            return
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

        # The callback only hands the writer back (and counts it): the handler runs in this
        # task. It must not be None, or StreamWriter.start_tls would think this is the client side.
        def made(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            opened.append(writer)
            self.connections.opened(writer)  # from here stop() aborts it, whatever this task does

        protocol = asyncio.StreamReaderProtocol(reader, made)
        tls = listener.tls
        if tls is not None and listener.choose_tls is not None and (choosing := listener.choose_tls(conn)) is not None:
            tls = await choosing or tls
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
            for writer in opened:
                writer.transport.abort()
                self.connections.closed(writer)
            return
        except BaseException:  # cancelled by stop(), which aborts the stream if there is one
            for writer in opened:
                self.connections.closed(writer)
            raise
        if not opened:  # the transport closed before the protocol saw it (a peer gone at once)
            return
        writer = opened[0]
        assert listener.handler is not None  # a Listener has a handler or a protocol
        await self._serve_stream(listener.handler, reader, writer, client, what)

    async def _serve_stream(
        self,
        handler: Handler,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
        what: str,
    ) -> None:
        """Run ``handler`` on an open stream (already in :meth:`Connections.opened`), then close it."""
        try:
            await handler(reader, writer)
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

    async def _open(self, conn: socket.socket, listener: Listener, protocol: ServerProtocol) -> None:
        """Set up a protocol connection: TLS (if any) on the accepted socket before any byte of
        it is read, then ``protocol.connection_made``; the task ends there."""
        loop = asyncio.get_running_loop()
        tls = listener.tls
        try:
            if tls is not None and listener.choose_tls is not None and (choosing := listener.choose_tls(conn)):
                tls = await choosing or tls
            # from here the transport owns the socket (uvloop and asyncio take it before their
            # first await) and closes it, whatever happens next
            protocol._state = _OPENING
            if tls is None:
                await loop.connect_accepted_socket(lambda: protocol, conn)
            else:
                await loop.connect_accepted_socket(
                    lambda: protocol,
                    conn,
                    ssl=tls,
                    ssl_handshake_timeout=self.limits.handshake_timeout,
                    ssl_shutdown_timeout=self.limits.close_timeout,
                )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError; so is the deadline
            step = "TLS handshake" if listener.tls is not None else "connection set-up"
            log.debug("%s: %s with %s failed: %r", listener.name or self.name, step, protocol.client, exc)


_NEW, _OPENING, _OPEN, _HANDED_OVER, _ENDED = range(5)  # the states of a ServerProtocol's connection


class ServerProtocol(asyncio.Protocol):
    """The protocol of one connection of a :class:`Listener` with ``protocol``.

    The server makes it at accept (``client``: the peer address), takes a connection slot for
    it then, and gives the slot back when the connection ends: :meth:`connection_made` and
    :meth:`connection_lost` here do that bookkeeping, so a subclass that overrides them calls
    them (``super()``). ``connection_made`` comes after the TLS handshake; a connection whose
    handshake fails never reaches the protocol. :meth:`close` is the graceful end (bounded by
    :attr:`ServerLimits.close_timeout`); :meth:`StreamServer.stop` aborts the transport.
    """

    __slots__ = ("_server", "_state", "client", "transport")
    transport: asyncio.Transport

    def __init__(self, client: str) -> None:
        self.client = client
        self._state = _NEW
        self._server: StreamServer | None = None  # set by the server that accepted it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's TLS transport is one without subclassing asyncio's)
        self.transport = cast(asyncio.Transport, transport)
        server = self._server
        if server is None or self._state not in (_NEW, _OPENING):
            return
        self._state = _OPEN
        server.connections._protocols.add(self)
        if server.connections.closing:  # stop() is sweeping: do not outlive it
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        if server is not None and self._state in (_NEW, _OPENING, _OPEN):
            self._state = _ENDED
            server.connections._protocols.discard(self)
            server.connections.release(self.client)

    def close(self) -> None:
        """End the connection once what was written is sent; abort it when the peer does not
        let it close within ``close_timeout`` (over TLS the TLS layer keeps that deadline:
        ``ssl_shutdown_timeout``)."""
        transport = self.transport
        if transport.is_closing():
            return
        transport.close()
        server = self._server
        if server is not None and transport.get_extra_info("sslcontext") is None:
            asyncio.get_running_loop().call_later(server.limits.close_timeout, transport.abort)

    def hand_over(self, handler: Handler, data: bytes = b"", *, eof: bool = False) -> None:
        """Serve the rest of this connection as a stream, from a task running ``handler``: its
        reader first holds ``data`` (what this protocol received and did not consume) and then
        the end of input if ``eof``. The connection keeps its slot and its place in
        :meth:`StreamServer.stop`; this protocol gets no callback any more."""
        server = self._server
        if server is None or self._state != _OPEN:
            raise RuntimeError("hand_over: the connection is not open")
        transport = self.transport
        reader = asyncio.StreamReader(limit=server.stream_limit)
        opened: list[asyncio.StreamWriter] = []
        stream = asyncio.StreamReaderProtocol(reader, lambda _reader, writer: opened.append(writer))
        transport.set_protocol(stream)
        stream.connection_made(transport)
        if data:
            reader.feed_data(data)
        if eof:
            reader.feed_eof()
        writer = opened[0]
        self._state = _HANDED_OVER
        connections = server.connections
        connections._protocols.discard(self)
        connections.opened(writer)
        transport.resume_reading()  # the stream reader pauses by itself when it holds too much
        task = asyncio.get_running_loop().create_task(
            server._serve_stream(handler, reader, writer, self.client, server.name), name=f"{server.name} {self.client}"
        )
        connections.track(task, self.client)


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

"""Shared plumbing for mtasts' TCP servers: listeners, connection caps and tracking, TLS at accept.

Every server mtasts runs (the lab's DNS, HTTPS and SMTP hosts, the policy host, the admin
endpoints, the report endpoint) takes its listener lifecycle from
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
TLS handshakes in progress may be capped apart (:attr:`ServerLimits.max_handshakes`), at
accept too. A protocol that must tell a client over a cap why, in its own words (HTTP's
``503``), needs the handshake done first: its :class:`Listener` takes ``admit_when_open``,
which applies the connection caps once the connection is open and leaves the handshake caps to
bound what comes before (:meth:`ServerProtocol.refused`). A protocol class of a library (that is
no :class:`ServerProtocol`, such as uvicorn's ``H11Protocol``) serves a listener through
:class:`ProtocolAdapter`.

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
from dataclasses import dataclass, replace
from typing import Literal, cast

__all__ = [
    "DEFAULT_SERVER_LIMITS",
    "BindError",
    "Connections",
    "Handler",
    "Listener",
    "ProtocolAdapter",
    "ProtocolFactory",
    "Refusal",
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
    peer may delay a graceful close before the connection is aborted. ``max_handshakes`` and
    ``max_handshakes_per_client`` cap the TLS handshakes in progress, at accept, apart from the
    connections (``None``: not apart); a listener with ``admit_when_open`` needs them.
    """

    handshake_timeout: float = 5.0
    close_timeout: float = 1.0
    max_connections: int = 1000
    max_connections_per_client: int = 100
    max_handshakes: int | None = None
    max_handshakes_per_client: int | None = None

    def __post_init__(self) -> None:
        for name in ("handshake_timeout", "close_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_connections", "max_connections_per_client", "max_handshakes", "max_handshakes_per_client"):
            value = getattr(self, name)
            if value is not None and value < 1:
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
class Refusal:
    """Why a cap turned a connection away: ``cap`` is what is capped, ``scope`` whose count is
    full (``server``: the total; ``client``: the client address's), ``count`` how many it holds.
    Its text says so: ``this client has 3 TLS handshakes in progress``."""

    cap: Literal["connections", "handshakes"]
    scope: Literal["server", "client"]
    count: int

    def __str__(self) -> str:
        holder = "the server has" if self.scope == "server" else "this client has"
        held = "connections open" if self.cap == "connections" else "TLS handshakes in progress"
        return f"{holder} {self.count} {held}"


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

    ``admit_when_open`` (protocol listeners only) applies the connection caps when the
    connection is open (after its TLS handshake) rather than at accept, so that the protocol
    can answer a refused client (:meth:`ServerProtocol.refused`); until then the connection
    counts against the handshake caps only (:attr:`ServerLimits.max_handshakes`), which the
    server then requires. ``receive_buffer`` sets ``SO_RCVBUF`` of the listening socket, which
    the accepted ones inherit (a small one keeps each connection's TLS read buffers small).
    An IPv6 address listens for IPv6 only (so that ``0.0.0.0`` and ``::`` can share a port)
    unless ``dual_stack``: then ``::`` takes IPv4 connections too (as IPv4-mapped addresses).
    ``address`` may be a host name: the server then listens on every address it resolves to
    (``localhost``: ``127.0.0.1`` and ``::1``), as asyncio's ``create_server`` does.
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
    admit_when_open: bool = False
    receive_buffer: int | None = None
    dual_stack: bool = False

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.protocol is None):
            raise ValueError(f"listener {self.address}: give a handler or a protocol, not both or neither")
        if self.admit_when_open and self.protocol is None:
            raise ValueError(f"listener {self.address}: admit_when_open needs a protocol")


class Connections:
    """The live connections of one server: counted per client address, capped, closable.

    A slot is taken at accept (:meth:`admit`) and given back when the connection ends
    (:meth:`release`), so connections still in their TLS handshake count too (unless their
    listener has ``admit_when_open``). With handshake caps, TLS handshakes in progress are
    counted apart too (:meth:`handshake_refusal`, :meth:`begin_handshake`, :meth:`end_handshake`).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        max_per_client: int,
        max_handshakes: int | None = None,
        max_handshakes_per_client: int | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.max_handshakes = max_handshakes
        self.max_handshakes_per_client = max_handshakes_per_client
        self.counts_handshakes = max_handshakes is not None or max_handshakes_per_client is not None
        self.refused = 0
        self._per_client: dict[str, int] = {}
        self._total = 0
        self._handshakes_per_client: dict[str, int] = {}
        self._handshakes = 0
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
        return self.refusal(client) is None

    def refusal(self, client: str) -> Refusal | None:
        """Take a slot for a new connection from ``client`` (``None``), or say which cap is reached."""
        total, mine = self._total, self._per_client.get(client, 0)
        if self.closing or total >= self.max_connections or mine >= self.max_per_client:
            self.refused += 1
            if total >= self.max_connections or self.closing:
                return Refusal("connections", "server", total)
            return Refusal("connections", "client", mine)
        self._total = total + 1
        self._per_client[client] = mine + 1
        return None

    def handshakes(self, client: str | None = None) -> int:
        """How many TLS handshakes are in progress (``client``'s, or in all), when they are counted."""
        return self._handshakes if client is None else self._handshakes_per_client.get(client, 0)

    def handshake_refusal(self, client: str) -> Refusal | None:
        """``None`` when ``client`` may start one more TLS handshake, else which cap is reached."""
        total, mine = self._handshakes, self._handshakes_per_client.get(client, 0)
        if self.max_handshakes is not None and total >= self.max_handshakes:
            self.refused += 1
            return Refusal("handshakes", "server", total)
        if self.max_handshakes_per_client is not None and mine >= self.max_handshakes_per_client:
            self.refused += 1
            return Refusal("handshakes", "client", mine)
        return None

    def begin_handshake(self, client: str) -> None:
        self._handshakes += 1
        self._handshakes_per_client[client] = self._handshakes_per_client.get(client, 0) + 1

    def end_handshake(self, client: str) -> None:
        self._handshakes -= 1
        left = self._handshakes_per_client[client] - 1
        if left:
            self._handshakes_per_client[client] = left
        else:
            del self._handshakes_per_client[client]

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
            protocol._give_back(self)

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
    closed (e.g. SMTP's ``421``; ``None`` for TLS listeners, which just close); ``on_refused``
    is told of every connection a cap turned away at accept (the client address, the
    :class:`Refusal`), for a log of the server's own. ``backlog`` is that of every listening
    socket. Construction binds nothing; :meth:`start` does.
    """

    def __init__(
        self,
        name: str,
        *,
        limits: ServerLimits = DEFAULT_SERVER_LIMITS,
        stream_limit: int = 64 * 1024,
        busy_reply: bytes | None = None,
        on_refused: Callable[[str, Refusal], None] | None = None,
        backlog: int = _BACKLOG,
    ) -> None:
        self.name = name
        self.limits = limits
        self.stream_limit = stream_limit
        self.busy_reply = busy_reply
        self.on_refused = on_refused
        self.backlog = backlog
        self.port = 0
        self.connections = Connections(
            max_connections=limits.max_connections,
            max_per_client=limits.max_connections_per_client,
            max_handshakes=limits.max_handshakes,
            max_handshakes_per_client=limits.max_handshakes_per_client,
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
        if any(listener.admit_when_open for listener in listeners) and not self.connections.counts_handshakes:
            raise ValueError(f"{self.name}: a listener with admit_when_open needs ServerLimits.max_handshakes")
        self.connections.closing = False
        if not listeners:
            return port
        loop = asyncio.get_running_loop()
        bound: list[Listener] = []
        for listener in listeners:
            try:
                bound += await _every_address(loop, listener)
            except OSError as exc:
                raise BindError(exc.errno, exc.strerror or str(exc), listener.address, port) from exc
        for _ in range(_BIND_ATTEMPTS):
            sockets: list[socket.socket] = []
            try:
                chosen = port
                for listener in bound:
                    sock = _listening_socket(listener, chosen, self.backlog)
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
            for sock, listener in zip(sockets, bound, strict=True):
                loop.add_reader(sock, self._accept, loop, sock, listener)
            return chosen
        raise OSError(errno.EADDRINUSE, f"{self.name}: no port number is free on every address")

    def adopt(self, pairs: Sequence[tuple[socket.socket, Listener]]) -> int:
        """Accept on sockets already bound and listening (a command that binds first, to name a
        taken address before it starts anything else), each served as its listener says; the
        port number of the first. The sockets are the server's from here (:meth:`close`)."""
        if self._sockets:
            raise RuntimeError(f"{self.name}: already listening")
        if any(listener.admit_when_open for _, listener in pairs) and not self.connections.counts_handshakes:
            raise ValueError(f"{self.name}: a listener with admit_when_open needs ServerLimits.max_handshakes")
        self.connections.closing = False
        loop = asyncio.get_running_loop()
        self._sockets, self._loop = [sock for sock, _ in pairs], loop
        self.port = int(pairs[0][0].getsockname()[1]) if pairs else 0
        for sock, listener in pairs:
            sock.setblocking(False)
            loop.add_reader(sock, self._accept, loop, sock, listener)
        return self.port

    def close(self) -> None:
        """Stop listening; the connections go on until :meth:`stop` (time for a protocol's own
        graceful end, such as finishing the requests under way). Twice is harmless."""
        for handle in self._accept_retries.values():
            handle.cancel()
        self._accept_retries.clear()
        for sock in self._sockets:
            if self._loop is not None:
                self._loop.remove_reader(sock)
            sock.close()
        self._sockets, self._loop = [], None

    async def stop(self) -> None:
        """Stop listening, then end every connection (handshakes in progress included)."""
        self.close()
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
        connections = self.connections
        handshake = connections.counts_handshakes and listener.tls is not None
        refusal = connections.handshake_refusal(client) if handshake else None
        if refusal is None and not listener.admit_when_open:
            refusal = connections.refusal(client)
        if refusal is not None:
            log.debug("%s: refused a connection from %s (%s)", self.name, client, refusal)
            _refuse(conn, self.busy_reply)
            if self.on_refused is not None:
                self.on_refused(client, refusal)
            return
        if handshake:
            connections.begin_handshake(client)
        conn.setblocking(False)
        if listener.protocol is not None:
            protocol = listener.protocol(client)
            protocol._server = self
            protocol._slot = not listener.admit_when_open
            protocol._handshaking = handshake
            opening = loop.create_task(self._open(conn, listener, protocol), name=f"{self.name} {client}")
            connections.track_opening(opening, protocol, conn)
            return
        handed_over: list[bool] = []
        task = loop.create_task(
            self._serve(conn, listener, client, handed_over, handshake), name=f"{self.name} {client}"
        )
        connections.track(task, client)

        def done(_: asyncio.Task[None]) -> None:
            # a task cancelled before its first step never runs its body: the socket is still ours
            if not handed_over:
                conn.close()
                if handshake:
                    connections.end_handshake(client)

        task.add_done_callback(done)

    async def _serve(
        self, conn: socket.socket, listener: Listener, client: str, handed_over: list[bool], handshake: bool = False
    ) -> None:
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
                try:
                    await loop.connect_accepted_socket(
                        lambda: protocol, conn, ssl=tls, ssl_handshake_timeout=self.limits.handshake_timeout
                    )
                finally:
                    if handshake:
                        self.connections.end_handshake(client)
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
            protocol.setup_failed(exc)


# the states of a ServerProtocol's connection (_REFUSED: open, refused by a cap, closing)
_NEW, _OPENING, _OPEN, _HANDED_OVER, _ENDED, _REFUSED = range(6)


class ServerProtocol(asyncio.Protocol):
    """The protocol of one connection of a :class:`Listener` with ``protocol``.

    The server makes it at accept (``client``: the peer address), takes a connection slot for
    it then, and gives the slot back when the connection ends: :meth:`connection_made` and
    :meth:`connection_lost` here do that bookkeeping, so a subclass that overrides them calls
    them (``super()``). ``connection_made`` comes after the TLS handshake; a connection whose
    handshake fails never reaches the protocol (:meth:`setup_failed` says it failed).
    :meth:`close` is the graceful end (bounded by :attr:`ServerLimits.close_timeout`);
    :meth:`StreamServer.stop` aborts the transport.

    On a listener with ``admit_when_open`` the connection caps are applied in
    :meth:`connection_made`: a connection over a cap gets there all the same, with
    :attr:`refusal` set (a subclass's ``connection_made`` may look at it after ``super()``), and
    :meth:`refused` is called on the next loop turn (closing a TLS transport from inside the
    callback that completes its handshake would not reach the client).
    """

    __slots__ = ("_handshaking", "_server", "_slot", "_state", "client", "refusal", "transport")
    transport: asyncio.Transport

    def __init__(self, client: str) -> None:
        self.client = client
        self.refusal: Refusal | None = None
        self._state = _NEW
        self._server: StreamServer | None = None  # set by the server that accepted it
        self._slot = False  # holds a connection slot
        self._handshaking = False  # counted among the handshakes in progress

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's TLS transport is one without subclassing asyncio's)
        self.transport = cast(asyncio.Transport, transport)
        server = self._server
        if server is None or self._state not in (_NEW, _OPENING):
            return
        connections = server.connections
        if self._handshaking:
            self._handshaking = False
            connections.end_handshake(self.client)
        if not self._slot:  # admit_when_open: the caps apply now
            refusal = connections.refusal(self.client)
            if refusal is not None:
                self._state, self.refusal = _REFUSED, refusal
                connections._protocols.add(self)  # stop() still ends it
                if connections.closing:
                    self.transport.abort()
                else:
                    asyncio.get_running_loop().call_soon(self._answer_refusal, refusal)
                return
            self._slot = True
        self._state = _OPEN
        connections._protocols.add(self)
        if connections.closing:  # stop() is sweeping: do not outlive it
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        if server is not None and self._state in (_NEW, _OPENING, _OPEN, _REFUSED):
            self._state = _ENDED
            server.connections._protocols.discard(self)
            self._give_back(server.connections)

    def _give_back(self, connections: Connections) -> None:
        """Give back what this connection holds: its handshake's count, its slot."""
        if self._handshaking:
            self._handshaking = False
            connections.end_handshake(self.client)
        if self._slot:
            self._slot = False
            connections.release(self.client)

    def _answer_refusal(self, refusal: Refusal) -> None:
        if self._state == _REFUSED and not self.transport.is_closing():
            self.refused(refusal)

    def refused(self, refusal: Refusal) -> None:
        """Answer a client that a connection cap refused once the connection was open
        (``admit_when_open``), then close; this default just closes. The connection holds no
        slot; :meth:`StreamServer.stop` still ends it."""
        self.close()

    def setup_failed(self, exc: OSError | TimeoutError) -> None:
        """The connection never opened: its TLS handshake failed (``ssl.SSLError``), the peer
        left, or the handshake deadline passed (``TimeoutError``). The server has logged it at
        debug level; this default does nothing more."""

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


class ProtocolAdapter(ServerProtocol):
    """A connection served by any ``asyncio.Protocol`` (``inner``), such as a library's that
    is no :class:`ServerProtocol` (uvicorn's ``H11Protocol``): the server's bookkeeping here,
    then every callback passed on to ``inner``, which needs no change. A factory for a
    :class:`Listener`: ``lambda client: ProtocolAdapter(client, make_protocol())``. A subclass
    may override :meth:`refused` (``inner`` has had ``connection_made``) and :meth:`setup_failed`.
    """

    __slots__ = ("inner",)

    def __init__(self, client: str, inner: asyncio.Protocol) -> None:
        super().__init__(client)
        self.inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


async def _every_address(loop: asyncio.AbstractEventLoop, listener: Listener) -> list[Listener]:
    """``listener`` once per address it stands for: itself for an IP address; for a host name,
    one per address the name resolves to, each once, in the resolver's order (what asyncio's
    ``create_server`` binds for a name, so that ``localhost`` is ``127.0.0.1`` *and* ``::1``, not
    whichever the resolver lists first). When a name has addresses of both families, its IPv6
    ones listen for IPv6 only, so that the IPv4 ones can share the port."""
    try:
        ipaddress.ip_address(listener.address)  # the usual case, and a lab binds thousands: no lookup
    except ValueError:
        pass
    else:
        return [listener]
    infos = await loop.getaddrinfo(listener.address, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    hosts = list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not hosts:
        raise OSError(errno.EADDRNOTAVAIL, f"no address for {listener.address!r}")
    both = len({":" in host for host in hosts}) == 2
    return [replace(listener, address=host, dual_stack=listener.dual_stack and not both) for host in hosts]


def _listening_socket(listener: Listener, port: int, backlog: int = _BACKLOG) -> socket.socket:
    """A non-blocking listening TCP socket on ``listener.address`` (an IP address: see
    :func:`_every_address`), port ``port``, made as asyncio would make it."""
    address = listener.address
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sockaddr = (address, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if listener.dual_stack else 1)
        if listener.receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, listener.receive_buffer)
        sock.bind(sockaddr)
        sock.listen(backlog)
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

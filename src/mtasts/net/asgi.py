"""An ASGI app served over HTTP/1.1 with every resource a client can hold bounded.

uvicorn's own server accepts without caps, waits for a request head for ever and lets a body
trickle in at a byte a minute: fine behind a proxy that bounds all that, not facing the internet.
Here uvicorn's HTTP/1.1 protocol (``H11Protocol``, which needs no change) runs under a guard of
our own (:class:`GuardedH11Protocol`) on connections accepted by the shared plumbing
(:class:`~mtasts.net.server.StreamServer`: caps of open connections in total and per client, TLS
at accept, a clean stop). :class:`AsgiServer` puts them together; ``mtasts report serve`` and
``mtasts web serve`` both serve through it.

What the guard bounds (:class:`~mtasts.net.asgi_limits.AsgiLimits`) and how a client learns of it, always a JSON error
``{"error": {"code", "message"}}`` and the connection closed:

=========================================  ======  ===================================
what                                       status  error code
=========================================  ======  ===================================
request head not complete in time          408     ``http.header_timeout``
no byte of body for / body too slow        408     ``http.body_timeout``
request head larger than ``max_head``      431     ``http.head_too_large``
not HTTP/1.1 (h11 cannot parse it)         400     ``http.bad_request``
over a connection cap (total, per client)  503     ``http.too_many_connections``
=========================================  ======  ===================================

A 503 carries ``Retry-After``. An idle keep-alive connection is closed without a word after
``keep_alive_timeout``. What the server does with these failures (an access line, a tally for
a summary, nothing) is its own: :class:`HttpHooks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.lifespan.on import LifespanOn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from mtasts.net.asgi_limits import DEFAULT_ASGI_LIMITS, KIB, AsgiLimits
from mtasts.net.server import Listener, ProtocolAdapter, Refusal, StreamServer

__all__ = [
    "AsgiServer",
    "ConnectionFailure",
    "GuardedConnection",
    "GuardedH11Protocol",
    "HttpHooks",
    "debug_logger",
    "handshake_failure",
]


@dataclass(frozen=True, slots=True)
class ConnectionFailure:
    """A connection the guard (or a TLS handshake) ended before any request got under way:
    who, what was answered (``status``, body bytes ``sent``; ``None``: nothing), the bytes
    ``received`` (``None``: not counted), how long it took, the error code and details."""

    client: str
    status: int | None
    received: int | None
    sent: int | None
    seconds: float
    code: str
    details: tuple[str, ...] = ()


class HttpHooks:
    """What a server does with the failures the guard handles; this default does nothing (the
    plumbing logs at debug level). A server overrides what it records."""

    def failed(self, code: str, now: float) -> None:
        """Any failure the guard closed a connection for (``now``: monotonic), to count it."""

    def answered(self, state: dict[str, Any], code: str, status: int, sent: int) -> None:
        """The guard answered a request under way (a stalled body): ``state`` is its ASGI
        scope's state, for the app's access log to say so once the app sees the close."""

    def connection_failed(self, failure: ConnectionFailure) -> None:
        """A connection that never got to a request (a head that never came, a TLS handshake
        that failed, a connection over a cap)."""


class _DebugLogger(logging.Logger):
    """uvicorn's own messages, all at debug level: what they say of a request ("Invalid HTTP
    request received.", an exception in the app) the server's own log already says, and a bug's
    traceback belongs at debug level (``MTASTS_DEBUG=1``)."""

    def isEnabledFor(self, level: int) -> bool:
        return self.parent is not None and self.parent.isEnabledFor(logging.DEBUG)

    def handle(self, record: logging.LogRecord) -> None:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        super().handle(record)


def debug_logger(name: str, parent: logging.Logger) -> logging.Logger:
    """A logger for uvicorn's messages that turns each into a debug record of ``parent``."""
    logger = _DebugLogger(name, logging.DEBUG)  # DEBUG: no TRACE lines
    logger.parent = parent
    return logger


class _Guard:
    """What the connections of one server share: the limits, the hooks, the tick of the checks
    (the caps of connections are :class:`~mtasts.net.server.StreamServer`'s)."""

    def __init__(self, limits: AsgiLimits, hooks: HttpHooks, logger: logging.Logger) -> None:
        self.limits = limits
        self.hooks = hooks
        self.logger = logger
        self.tick = max(0.05, min(1.0, limits.header_timeout / 4, limits.body_timeout / 4))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus what it lacks against slow clients: a deadline for the
    request head, and an idle timeout and minimum rate for the body; the answer to a client over
    a connection cap (:class:`GuardedConnection`). ``_guard`` is set on a subclass made per
    server (:meth:`AsgiServer.listener`)."""

    _guard: ClassVar[_Guard]

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.logger = self._guard.logger
        self._peer = "unknown"
        self._phase = "head"
        self._since = 0.0
        self._last = 0.0
        self._received = 0
        self._tail = b""  # the last bytes of the head read so far (its end may span two reads)
        self._served = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer = self.client[0] if self.client else "unknown"
        self._since = self._last = self.loop.time()
        limit_reads = getattr(transport, "set_read_buffer_limits", None)
        if limit_reads is not None:
            # TLS transports buffer up to 256 KiB of undelivered input per connection by
            # default; 64 KiB is plenty for a request and keeps 200 slow uploads small
            limit_reads(high=64 * KIB)
        self._enter("head")
        self._timer = self.loop.call_later(self._guard.tick, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        self._last = self.loop.time()
        if self._phase == "head" and self._head_too_large(data):
            max_head = self._guard.limits.max_head
            self._close_with(431, "http.head_too_large", f"the request head is larger than {max_head} bytes")
            return
        super().data_received(data)
        self._sync()

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the head that ends in ``data`` is over the cap. h11 refuses a head over it
        only while the head is incomplete; one that arrives whole in a read would pass."""
        before = self._received - len(data)  # bytes of this head read before ``data``
        window = self._tail + data
        start = before - len(self._tail)  # where ``window`` begins in the head
        self._tail = window[-3:]
        end = window.find(b"\r\n\r\n")
        return end >= 0 and start + end + 4 > self._guard.limits.max_head

    def on_response_complete(self) -> None:
        self._served += 1
        unread = self.conn.their_state is h11.SEND_BODY
        super().on_response_complete()
        if unread:  # answered before the body ended (refused): do not wait for the rest
            self._linger()
        self._sync()

    def _linger(self) -> None:
        """Give a closing connection a moment to take the answer, then drop it: a TLS close
        otherwise waits (up to 30 s) for a client that may still be sending a body."""
        self.transport.close()
        self.loop.call_later(1.0, self.transport.abort)

    def _sync(self) -> None:
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else "busy"
        if phase != self._phase:
            self._enter(phase)

    def _enter(self, phase: str) -> None:
        self._phase = phase
        self._since = self._last = self.loop.time()
        self._received = 0
        self._tail = b""

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        limits, now = self._guard.limits, self.loop.time()
        if self._phase == "head" and now - self._since > limits.header_timeout:
            if self._received == 0 and self._served:
                self.transport.close()  # an idle keep-alive connection: nothing is lost
                return
            self._close_with(
                408, "http.header_timeout", f"the request head did not arrive within {limits.header_timeout:g} s"
            )
            return
        if self._phase == "body":
            elapsed = now - self._since
            if self.flow.read_paused:
                # the application is not reading: the wait is ours, not the client's
                self._since += self._guard.tick
                self._last = now
            elif now - self._last > limits.body_timeout:
                self._close_with(408, "http.body_timeout", f"no byte of the body for {limits.body_timeout:g} s")
                return
            elif now - self._since > limits.body_timeout and self._received < limits.min_body_rate * elapsed:
                self._close_with(
                    408,
                    "http.body_timeout",
                    f"the body came slower than {limits.min_body_rate:g} bytes/s",
                )
                return
        self._timer = self.loop.call_later(self._guard.tick, self._check)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what h11 cannot parse, as a JSON error with its code like any
        other: 431 for a head over the size cap, else 400."""
        max_head = self._guard.limits.max_head
        if self._phase == "head" and self._received > max_head:
            self._close_with(431, "http.head_too_large", f"the request head is larger than {max_head} bytes")
        else:
            self._close_with(400, "http.bad_request", "not a valid HTTP/1.1 request")

    def close_with(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` with a JSON error (unless a response has started) and close the
        connection. The hooks hear of it: :meth:`HttpHooks.answered` when a request is under
        way (the app sees the connection close), else :meth:`HttpHooks.connection_failed`."""
        self._close_with(status, code, message)

    def _close_with(self, status: int, code: str, message: str) -> None:
        hooks = self._guard.hooks
        hooks.failed(code, time.monotonic())
        cycle = None if self._phase == "head" else self.cycle
        sent: int | None = None
        if cycle is None or not cycle.response_started:
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            extra = f"retry-after: {self._guard.limits.retry_after}\r\n" if status == 503 else ""
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n{extra}connection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
            sent = len(body)
        if cycle is not None:
            if sent is not None:
                hooks.answered(cycle.scope.setdefault("state", {}), code, status, sent)
        else:
            hooks.connection_failed(
                ConnectionFailure(self._peer, status, self._received, sent, self.loop.time() - self._since, code)
            )
        self._linger()


def handshake_failure(exc: BaseException, *, timed_out: bool, timeout: float) -> tuple[str, str]:
    """The code and the detail of a TLS handshake that failed with ``exc``: the reason OpenSSL
    gives (``HTTP_REQUEST``: plain HTTP on the TLS port; ``TLSV1_ALERT_UNKNOWN_CA``: the client
    does not trust the certificate; ...), or a client that went away, or the deadline."""
    if isinstance(exc, TimeoutError) or (timed_out and isinstance(exc, ConnectionAbortedError)):
        return "tls.handshake_timeout", f"no TLS handshake within {timeout:g} s"
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        return "tls.handshake", str(exc.reason or exc.strerror or type(exc).__name__)
    return "tls.handshake", "the client closed the connection"


class GuardedConnection(ProtocolAdapter):
    """One connection as the shared server plumbing sees it, served by the guarded HTTP/1.1
    protocol: a client over a cap (applied once open: ``admit_when_open``) reads a 503; a TLS
    handshake that fails is a :class:`ConnectionFailure` for the hooks."""

    __slots__ = ("_accepted",)
    inner: GuardedH11Protocol

    def __init__(self, client: str, inner: GuardedH11Protocol) -> None:
        super().__init__(client, inner)
        self._accepted = time.monotonic()

    def refused(self, refusal: Refusal) -> None:
        self.inner.close_with(503, "http.too_many_connections", f"too many connections: {refusal}")

    def setup_failed(self, exc: OSError | TimeoutError) -> None:
        guard = self.inner._guard
        seconds = time.monotonic() - self._accepted
        timeout = guard.limits.handshake_timeout
        code, detail = handshake_failure(exc, timed_out=seconds >= timeout * 0.99, timeout=timeout)
        guard.hooks.failed(code, time.monotonic())
        guard.hooks.connection_failed(ConnectionFailure(self.client, None, None, None, seconds, code, (detail,)))


class AsgiServer:
    """``app`` served by the guarded HTTP/1.1 protocol on a :class:`StreamServer` with
    ``limits``; nothing happens until :meth:`start`.

    It listens on ``host``:``port`` (a host name: each of its addresses; ``::`` takes IPv4
    clients too), or on ``sockets`` already bound and listening (a command that binds first to
    name a taken address before anything else starts). ``tls`` is terminated at accept.
    ``proxy_headers`` lets uvicorn take the client address and scheme from ``X-Forwarded-*``
    of the ``forwarded_allow_ips``; ``lifespan`` runs the app's start-up and shut-down;
    ``on_refused`` is told of a connection a cap closed at accept (handshake caps, TLS only).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: str,
        limits: AsgiLimits = DEFAULT_ASGI_LIMITS,
        hooks: HttpHooks | None = None,
        logger: logging.Logger | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        sockets: Sequence[socket.socket] = (),
        tls: ssl.SSLContext | None = None,
        proxy_headers: bool = False,
        forwarded_allow_ips: Sequence[str] = ("127.0.0.1",),
        lifespan: bool = False,
        receive_buffer: int | None = None,
        on_refused: Callable[[str, Refusal], None] | None = None,
    ) -> None:
        self.app = app
        self.name = name
        self.limits = limits
        self.hooks = hooks or HttpHooks()
        self.logger = logger or debug_logger(f"mtasts.net.asgi.{name}", logging.getLogger("mtasts.net.asgi"))
        self.host = host
        self.port = port
        self.given_sockets = tuple(sockets)
        self.tls = tls
        self.proxy_headers = proxy_headers
        self.forwarded_allow_ips = tuple(forwarded_allow_ips)
        self.lifespan = lifespan
        self.receive_buffer = receive_buffer
        self.on_refused = on_refused
        self.server: StreamServer | None = None
        self.state: ServerState | None = None
        self._lifespan: LifespanOn | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        if self.server is None or not self.server.sockets:
            raise RuntimeError("the server is not started")
        return self.server.sockets

    def _config(self) -> uvicorn.Config:
        limits = self.limits
        config = uvicorn.Config(
            self.app,
            proxy_headers=self.proxy_headers,
            forwarded_allow_ips=list(self.forwarded_allow_ips),
            lifespan="on" if self.lifespan else "off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=limits.keep_alive_timeout,
            h11_max_incomplete_event_size=limits.max_head,
        )
        config.load()
        return config

    def listener(self, config: uvicorn.Config, address: str) -> Listener:
        """The listener of ``address``: uvicorn's HTTP/1.1 under the guard, one per connection."""
        guard = _Guard(self.limits, self.hooks, self.logger)
        protocol: type[GuardedH11Protocol] = type("GuardedH11Protocol", (GuardedH11Protocol,), {"_guard": guard})
        state = self.state
        assert state is not None

        def new_connection(client: str) -> GuardedConnection:
            return GuardedConnection(client, protocol(config=config, server_state=state, app_state={}))

        return Listener(
            address,
            tls=self.tls,
            protocol=new_connection,
            admit_when_open=True,
            receive_buffer=self.receive_buffer,
            dual_stack=True,
        )

    async def start(self) -> None:
        """Run the app's start-up (``lifespan``), then listen; raises
        :class:`~mtasts.net.server.BindError` when an address cannot be bound, with nothing
        left open (given ``sockets`` stay the caller's to close)."""
        config = self._config()
        self.state = ServerState()
        if self.lifespan:
            self._lifespan = LifespanOn(config)
            await self._lifespan.startup()
            if self._lifespan.should_exit:
                raise RuntimeError(f"{self.name}: the application's start-up failed")
        self.server = StreamServer(
            self.name,
            limits=self.limits.server_limits(),
            on_refused=self.on_refused,
            backlog=min(2048, self.limits.max_connections),
        )
        try:
            if self.given_sockets:
                pairs = [(sock, self.listener(config, str(sock.getsockname()[0]))) for sock in self.given_sockets]
                self.server.adopt(pairs)
            else:
                await self.server.start([self.listener(config, self.host)], self.port)
        except BaseException:
            await self.stop(0)
            raise
        self._ticker = asyncio.create_task(self._tick(self.state))

    @staticmethod
    async def _tick(state: ServerState) -> None:
        """The Date header, once a second (what uvicorn's own server loop does)."""
        while True:
            state.default_headers = [(b"date", formatdate(usegmt=True).encode("ascii"))]
            await asyncio.sleep(1.0)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let the requests under way end for up to ``grace`` seconds (idle
        connections close at once), then drop what is left and run the app's shut-down."""
        server, state = self.server, self.state
        if server is not None:
            server.close()  # no new connections
        if state is not None:
            for connection in list(state.connections):
                connection.shutdown()
            deadline = time.monotonic() + grace
            while state.tasks and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if server is not None:
            # still open (a slow upload, a client that does not answer the TLS close), or in
            # the handshake: dropped, which ends their requests the way a client disconnect
            # does, without a cancelled task's traceback
            await server.stop()
        if state is not None:
            deadline = time.monotonic() + 1
            while state.tasks and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for task in list(state.tasks):
                task.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._lifespan is not None:
            await self._lifespan.shutdown()
        self.server = self.state = self._lifespan = self._ticker = None

"""A small HTTP/1.1 server connection over h11: keep-alive, bounded head, timeouts, rate limit.

The policy host and its admin listener answer GETs of small, fixed bodies, so this is all
they need: :func:`serve_http` reads requests from one connection (already TLS-terminated by
:mod:`mtasts.net.server`, or plain), asks an application for each answer
(:data:`App`: request in, :class:`HttpResponse` out) and writes it, until the client closes,
a bound is reached or a timeout fires. Nothing here knows about policies.

Bounds, per connection: the request head (request line and headers) is at most
``max_header_bytes`` (else ``431``) and must arrive within ``header_timeout`` of its first
byte (else ``408``); between requests a connection may sit idle for ``idle_timeout`` (then it
is closed without a word); at most ``max_requests`` requests, the last answered with
``Connection: close``. Per client address, over all its connections: a token bucket of
``requests_per_second`` with ``burst`` (over it: ``429`` with ``Retry-After``). A request
that announces a body is answered and the connection closed after it; the body is read only
when the application asks for it (:attr:`HttpRequest.receive`: the report endpoint of
``[report]``), chunk by chunk, each read within the deadline the application gives, so what
it keeps and how long it waits is the application's bound; otherwise it is never read.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

import h11

from mtasts._version import __version__

__all__ = [
    "App",
    "BodyIncomplete",
    "BodyReader",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "Observer",
    "RateLimiter",
    "authority_name",
    "serve_http",
]

_READ_CHUNK = 16 * 1024
_SERVER = f"mtasts/{__version__}"
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one connection may take (see the module docstring)."""

    max_header_bytes: int = 8 * 1024
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_requests: int = 1000


BodyReader = Callable[[float], Awaitable[bytes]]
"""The next chunk of a request's body (``b""``: the body is complete), waiting at most the
given seconds (then :class:`TimeoutError`); :class:`BodyIncomplete` when the client ended the
body early or broke the framing. Valid only while the application answers the request."""


class BodyIncomplete(ConnectionError):
    """The client closed the connection or broke the HTTP framing before the end of the body."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request head. ``headers`` have lower-case names, in order; ``server_name`` is the
    name the TLS handshake chose (``None`` on a plain listener); ``client`` the peer address."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    client: str
    server_name: str | None = None
    has_body: bool = False
    receive: BodyReader | None = field(default=None, compare=False, repr=False)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or ``None``."""
        return next((value for key, value in self.headers if key == name), None)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An answer: ``headers`` besides ``Content-Length``, ``Date`` and ``Server`` (added here);
    ``close`` ends the connection after it; ``label`` names what it was about for logs and
    metrics (the policy domain)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain"),)
    close: bool = False
    label: str = ""


App = Callable[[HttpRequest], Awaitable[HttpResponse]]
Observer = Callable[[HttpRequest | None, HttpResponse, int], None]
"""Told about every response sent: the request (``None`` when none could be read), the
response, and the body bytes sent (0 for HEAD)."""


class RateLimiter:
    """Token buckets per client address, sans I/O: the caller passes monotonic seconds.

    At most ``max_clients`` buckets are kept; beyond that the stalest half is forgotten (a
    forgotten client gets a full bucket back, which only ever errs on the side of serving)."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 100_000) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str, now: float) -> float:
        """0.0 when ``client`` may have one more request now, else the seconds to wait."""
        tokens, last = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._remember(client, (tokens - 1.0, now))
            return 0.0
        self._remember(client, (tokens, now))
        return (1.0 - tokens) / self._rate

    def _remember(self, client: str, state: tuple[float, float]) -> None:
        if client not in self._buckets and len(self._buckets) >= self._max_clients:
            for stale in sorted(self._buckets, key=lambda c: self._buckets[c][1])[: self._max_clients // 2]:
                del self._buckets[stale]
        self._buckets[client] = state


class _Date:
    """The ``Date`` header (RFC 9110 §6.6.1: an origin server with a clock sends it), formatted
    once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second, self._text = now, formatdate(now, usegmt=True)
        return self._text


_date = _Date()


def _plain(status: int, text: str, *, close: bool = True, label: str = "") -> HttpResponse:
    return HttpResponse(status, text.encode() + b"\n", close=close, label=label)


async def serve_http(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    app: App,
    *,
    limits: HttpLimits,
    client: str,
    server_name: str | None = None,
    rate: RateLimiter | None = None,
    observe: Observer | None = None,
    label: str = "",
) -> None:
    """Serve requests on one connection until it ends (the caller closes the stream)."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
    loop = asyncio.get_running_loop()
    head_started: float | None = None
    served = 0

    async def send(request: HttpRequest | None, response: HttpResponse, *, head_only: bool = False) -> None:
        headers = [
            *response.headers,
            ("Content-Length", str(len(response.body))),
            ("Date", _date()),
            ("Server", _SERVER),
        ]
        if response.close:
            headers.append(("Connection", "close"))
        reason = _REASONS.get(response.status, b"")
        data = connection.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if not head_only and response.body:
            data += connection.send(h11.Data(data=response.body))
        data += connection.send(h11.EndOfMessage())
        writer.write(data)
        await asyncio.wait_for(writer.drain(), limits.idle_timeout)
        if observe is not None:
            observe(request, response, 0 if head_only else len(response.body))

    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = exc.error_status_hint
                reason = "request head too large" if status == 431 else f"bad request: {exc}"
                await send(None, _plain(status, reason, label=label))
            return
        if event is h11.NEED_DATA:
            idle = connection.their_state is h11.IDLE and head_started is None
            wait = limits.idle_timeout if idle else limits.header_timeout - (loop.time() - (head_started or 0.0))
            try:
                data = await asyncio.wait_for(reader.read(_READ_CHUNK), max(wait, 0.0))
            except TimeoutError:
                if not idle and connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await send(None, _plain(408, "the request head took too long", label=label))
                return
            if data and head_started is None and connection.their_state is h11.IDLE:
                head_started = loop.time()
            connection.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return
        if not isinstance(event, h11.Request):  # Data / EndOfMessage of a request already answered
            if isinstance(event, h11.EndOfMessage) and connection.our_state is h11.DONE:
                if not _next_cycle(connection):
                    return
                head_started = loop.time() if connection.trailing_data[0] else None
            continue
        served += 1
        has_body = any(k.lower() in (b"content-length", b"transfer-encoding") and v != b"0" for k, v in event.headers)
        request = HttpRequest(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("ascii", "replace"),
            headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers),
            client=client,
            server_name=server_name,
            has_body=has_body,
            receive=_body_reader(connection, reader, writer) if has_body else None,
        )
        wait = rate.allow(client, loop.time()) if rate is not None else 0.0
        if wait > 0:
            response = HttpResponse(
                429,
                b"too many requests\n",
                (("Content-Type", "text/plain"), ("Retry-After", str(math.ceil(wait)))),
                label=label,
            )
        else:
            response = await app(request)
        must_close = request.has_body or served >= limits.max_requests or connection.their_http_version != b"1.1"
        if must_close and not response.close:
            response = HttpResponse(response.status, response.body, response.headers, True, response.label)
        await send(request, response, head_only=request.method == "HEAD")
        if response.close or connection.our_state is h11.MUST_CLOSE:  # we, or the client, said close
            return
        # the request had no body: its EndOfMessage comes next, then the next cycle


def _body_reader(connection: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> BodyReader:
    """The :data:`BodyReader` of the request ``connection`` has just parsed the head of."""
    ended = False

    async def receive(timeout: float) -> bytes:
        nonlocal ended
        if ended:
            return b""
        if connection.client_is_waiting_for_100_continue:  # RFC 9110 §10.1.1: the client waits for it
            writer.write(connection.send(h11.InformationalResponse(status_code=100, headers=[])))
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise BodyIncomplete(f"the body is not valid HTTP/1.1: {exc}") from exc
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(_READ_CHUNK), max(timeout, 0.0))
                try:
                    connection.receive_data(data)
                except h11.RemoteProtocolError as exc:
                    raise BodyIncomplete(str(exc)) from exc
                continue
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                ended = True
                return b""
            raise BodyIncomplete("the client closed the connection before the end of the body")

    return receive


def _next_cycle(connection: h11.Connection) -> bool:
    """Start the next request/response cycle; ``False`` when the connection must close."""
    if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
        return False
    connection.start_next_cycle()
    return True


def authority_name(host: str) -> str:
    """The host part of a ``Host`` header, compared like a DNS name (case, trailing dot): the
    policy host and the ACME challenge listener match names by it."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rpartition(":")[0].rstrip(".").lower() if ":" in host else host.rstrip(".").lower()

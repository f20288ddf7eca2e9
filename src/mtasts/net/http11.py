"""A small HTTP/1.1 server connection: keep-alive, bounded head, timeouts, rate limit.

The policy host and its admin listener answer GETs of small, fixed bodies, so this is all
they need: :func:`serve_http` reads requests from one connection (already TLS-terminated by
:mod:`mtasts.net.server`, or plain), asks an application for each answer
(:data:`App`: request in, :class:`HttpResponse` out) and writes it, until the client closes,
a bound is reached or a timeout fires. Nothing here knows about policies.

:class:`HttpProtocol` is the same server as protocol callbacks (a
:class:`~mtasts.net.server.ServerProtocol`), for the policy listeners: a sender opens a TLS
connection, sends one GET and leaves, and a stream, a task and a timeout context per
connection and per read were a sixth of the host's CPU for it (``bench/publish.py``,
callgrind). It answers in ``data_received`` what the application can answer at once
(:data:`Answer`: the policy, every refusal); a request with a body, or one the application
leaves (``None``: the report endpoint), is handed over with the bytes after it to
:func:`serve_http` on a stream (:meth:`~mtasts.net.server.ServerProtocol.hand_over`), which
serves the rest of that connection. The bounds and answers are the same either way (one
parser, one set of limits, the same responses).

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

Why request heads are parsed here and not by h11: a policy GET is one request line and a few
headers, and h11's general state machine and event objects cost about 80 µs of CPU per
request, five times everything else the host does for it (``bench/publish.py``, profiled).
:func:`parse_head` is the RFC 9112 grammar for a head (§2.2 message framing, §3 request
line, §5 field lines, RFC 9110 §5.6.2 tokens), strict: anything else is a ``400`` (or ``505``
for another major version), as h11 answered. A request with a body is rare here (the report
endpoint's POSTs) and its framing (``Content-Length``, chunked coding, ``100-continue``) is
not hand-written: its head is handed to h11, which parses it again and reads the body.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

import h11

from mtasts._version import __version__
from mtasts.net.ratelimit import RateLimiter
from mtasts.net.server import ServerProtocol

__all__ = [
    "Answer",
    "App",
    "BodyIncomplete",
    "BodyReader",
    "HeadError",
    "HttpLimits",
    "HttpProtocol",
    "HttpRequest",
    "HttpResponse",
    "HttpService",
    "Observer",
    "ParsedHead",
    "authority_name",
    "parse_head",
    "serve_http",
]

_READ_CHUNK = 16 * 1024
_SERVER = f"mtasts/{__version__}"
_REASONS = {status.value: status.phrase for status in HTTPStatus}

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN_RE = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_TEXT_TOKEN_RE = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version; the target is visible
# ASCII (every form of §3.2 is); HTTP-version = "HTTP/" DIGIT "." DIGIT (§2.3)
_REQUEST_LINE_RE = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
# RFC 9110 §5.5: a field value has no CTL but HTAB (obs-text, 0x80-0xFF, is allowed)
_VALUE_CTL_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TEXT_VALUE_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 §2.2: a recipient MAY take a bare LF as a line terminator (so does h11); the head
# ends at the first empty line
_HEAD_END_RE = re.compile(rb"\n\r?\n")
_OWS = b" \t"


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
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or ``None``."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An answer: ``headers`` besides ``Content-Length``, ``Date`` and ``Server`` (added here);
    ``close`` ends the connection after it; ``label`` names what it was about for logs and
    metrics (the policy domain).

    The head is rendered once, when the response is made (all but ``Date``, which changes once
    a second, and ``Connection: close``, which the connection decides): an application that
    answers many requests with one response object (the policy host: one per served name)
    pays for it once. A header name that is not a token or a value with a control character
    is a bug of the application: :class:`ValueError` here, never bytes on the wire."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain"),)
    close: bool = False
    label: str = ""
    _head: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 999:
            raise ValueError(f"{self.status} is not an HTTP status code")
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, '')}"]
        for name, value in self.headers:
            if not _TEXT_TOKEN_RE.fullmatch(name) or _TEXT_VALUE_CTL_RE.search(value) or value != value.strip(" \t"):
                raise ValueError(f"not a valid header field: {name!r}: {value!r}")
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        before_date = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        object.__setattr__(self, "_head", (before_date, f"Server: {_SERVER}\r\n".encode("ascii")))

    def encode(self, *, close: bool, head_only: bool = False, date: bytes | None = None) -> bytes:
        """The bytes on the wire: the head (``Connection: close`` when ``close``) and, unless
        ``head_only`` (the answer to ``HEAD``), the body; ``date`` is the ``Date`` field line."""
        before_date, after_date = self._head
        ending = b"Connection: close\r\n\r\n" if close else b"\r\n"
        body = b"" if head_only else self.body
        return b"".join((before_date, _date() if date is None else date, after_date, ending, body))


App = Callable[[HttpRequest], Awaitable[HttpResponse]]
Observer = Callable[[HttpRequest | None, HttpResponse, int], None]
"""Told about every response sent: the request (``None`` when none could be read), the
response, and the body bytes sent (0 for HEAD)."""


class _Date:
    """The ``Date`` field line (RFC 9110 §6.6.1: an origin server with a clock sends it),
    formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second, self._line = now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
        return self._line


_date = _Date()


# --- request heads --------------------------------------------------------------------------


class HeadError(ValueError):
    """A request head that is not HTTP/1.1: ``status`` is the answer (400, 431 or 505)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class ParsedHead:
    """A request head as :func:`parse_head` read it: ``headers`` with lower-case names;
    ``keep_alive`` whether the client lets the connection carry another request (HTTP/1.1
    without ``Connection: close``); ``has_body`` whether it announces a body."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    keep_alive: bool
    has_body: bool


def parse_head(head: bytes) -> ParsedHead:
    """Read one request head (``head``: the request line and field lines, up to the LF that
    ends the last of them, not included); raises :class:`HeadError`. Linear in the length of
    ``head``: one split, one regular expression match per line (none can backtrack beyond its
    line)."""
    lines = head.split(b"\n")
    request_line = lines[0].removesuffix(b"\r")
    matched = _REQUEST_LINE_RE.fullmatch(request_line)
    if matched is None:
        if not request_line:
            raise HeadError(400, "no request line received")
        raise HeadError(400, f"not an HTTP/1.1 request line: {request_line[:80]!r}")
    method, target, major, minor = matched.groups()
    if major != b"1":
        raise HeadError(505, f"HTTP/{major.decode()}.{minor.decode()} is not supported: speak HTTP/1.1")
    headers: list[tuple[str, str]] = []
    hosts = 0
    close = False
    has_body = False
    for raw in lines[1:]:
        line = raw.removesuffix(b"\r")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN_RE.fullmatch(name):  # also obs-fold (RFC 9112 §5.2: reject it)
            raise HeadError(400, f"not a header field line: {line[:80]!r}")
        value = value.strip(_OWS)
        if _VALUE_CTL_RE.search(value):
            raise HeadError(400, f"a control character in the value of {name[:80]!r}")
        lower = name.lower()
        if lower == b"host":
            hosts += 1
        elif lower == b"connection":
            close = close or any(option.strip(_OWS).lower() == b"close" for option in value.split(b","))
        elif lower in (b"content-length", b"transfer-encoding") and value != b"0":
            has_body = True
        headers.append((lower.decode("ascii"), value.decode("latin-1")))
    if minor != b"0" and hosts == 0:  # HTTP/1.1 (a later 1.x is read as 1.1, RFC 9112 §2.3)
        raise HeadError(400, "Missing mandatory Host: header")  # RFC 9112 §3.2
    if hosts > 1:
        raise HeadError(400, "Found multiple Host: headers")
    return ParsedHead(
        method.decode("ascii"),
        target.decode("ascii"),
        tuple(headers),
        keep_alive=minor == b"1" and not close,  # HTTP/1.0 keep-alive is not offered
        has_body=has_body,
    )


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
    served: int = 0,
) -> None:
    """Serve requests on one connection until it ends (the caller closes the stream);
    ``served``: how many this connection had before (handed over by :class:`HttpProtocol`)."""
    loop = asyncio.get_running_loop()
    buffer = b""

    transport = writer.transport

    async def send(request: HttpRequest | None, response: HttpResponse, *, close: bool, head_only: bool) -> None:
        writer.write(response.encode(close=close, head_only=head_only))
        if transport.get_write_buffer_size():  # not all sent at once: wait, within idle_timeout
            async with asyncio.timeout(limits.idle_timeout):
                await writer.drain()
        if observe is not None:
            observe(request, response, 0 if head_only else len(response.body))

    while True:
        # 1. a whole head: the first byte within idle_timeout, the rest within header_timeout
        head_started = loop.time() if buffer else None
        scanned = 0
        while (end := _HEAD_END_RE.search(buffer, max(scanned - 2, 0))) is None:
            if len(buffer) > limits.max_header_bytes:
                await send(None, _plain(431, "request head too large", label=label), close=True, head_only=False)
                return
            scanned = len(buffer)
            idle = head_started is None
            wait = limits.idle_timeout if idle else limits.header_timeout - (loop.time() - (head_started or 0.0))
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    data = await reader.read(_READ_CHUNK)
            except TimeoutError:
                if head_started is not None:
                    timed_out = _plain(408, "the request head took too long", label=label)
                    await send(None, timed_out, close=True, head_only=False)
                return
            if not data:  # the client closed: between requests that is the normal end
                if buffer:
                    closed = _plain(400, "bad request: the connection closed inside the request head", label=label)
                    await send(None, closed, close=True, head_only=False)
                return
            if head_started is None:
                head_started = loop.time()
            buffer += data
        if end.start() > limits.max_header_bytes:
            await send(None, _plain(431, "request head too large", label=label), close=True, head_only=False)
            return
        try:
            head = parse_head(buffer[: end.start()])
        except HeadError as exc:
            reason = "request head too large" if exc.status == 431 else f"bad request: {exc.message}"
            await send(None, _plain(exc.status, reason, label=label), close=True, head_only=False)
            return
        served += 1
        receive: BodyReader | None = None
        if head.has_body:  # the body's framing is h11's (see the module docstring)
            connection = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
            connection.receive_data(buffer)
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                failed = _plain(exc.error_status_hint, f"bad request: {exc}", label=label)
                await send(None, failed, close=True, head_only=False)
                return
            if not isinstance(event, h11.Request):  # cannot be: the head is complete
                await send(None, _plain(400, "bad request", label=label), close=True, head_only=False)
                return
            receive = _body_reader(connection, reader, writer)
            buffer = b""
        else:
            buffer = buffer[end.end() :]
        request = HttpRequest(head.method, head.target, head.headers, client, server_name, head.has_body, receive)
        wait = rate.wait(client, loop.time()) if rate is not None else 0.0
        if wait > 0:
            response = HttpResponse(
                429,
                b"too many requests\n",
                (("Content-Type", "text/plain"), ("Retry-After", str(math.ceil(wait)))),
                label=label,
            )
        else:
            response = await app(request)
        close = response.close or head.has_body or not head.keep_alive or served >= limits.max_requests
        await send(request, response, close=close, head_only=request.method == "HEAD")
        if close:
            return


Answer = Callable[[HttpRequest], HttpResponse | None]
"""The answer to a request, made at once (no I/O, no waiting), or ``None``: the request goes
to the :data:`App` of the :class:`HttpService`, on a stream."""

Names = Callable[[asyncio.BaseTransport], tuple[str | None, str]]
"""A connection's server name (for :attr:`HttpRequest.server_name`) and label (for the
responses made here), read from its open transport."""


def _no_names(_: asyncio.BaseTransport) -> tuple[str | None, str]:
    return None, ""


@dataclass(frozen=True, slots=True)
class HttpService:
    """What every :class:`HttpProtocol` connection of a listener shares (made once, not per
    connection): ``answer`` for what can be answered at once, ``app`` for the rest (and for
    every request with a body), the bounds, the per-client rate, the observer, and ``names``."""

    answer: Answer
    app: App
    limits: HttpLimits
    rate: RateLimiter | None = None
    observe: Observer | None = None
    names: Names = _no_names


class HttpProtocol(ServerProtocol):
    """One connection served by callbacks (see the module docstring): the same requests, bounds
    and answers as :func:`serve_http`, which it hands over to for what ``answer`` leaves.

    One timer per connection: it fires at the earliest deadline that may have passed (the
    first byte of a head within ``idle_timeout``, the rest within ``header_timeout``, a stalled
    write within ``idle_timeout``) and, when the deadline moved later meanwhile, sets itself
    again, so keep-alive requests never touch it."""

    __slots__ = (
        "_buffer",
        "_deadline",
        "_done",
        "_eof",
        "_head_started",
        "_label",
        "_loop",
        "_scanned",
        "_served",
        "_server_name",
        "_service",
        "_timer",
        "_timer_at",
        "_writing_paused",
    )

    def __init__(self, client: str, service: HttpService) -> None:
        super().__init__(client)
        self._service = service
        self._buffer = b""
        self._scanned = 0  # bytes of the buffer known to hold no end of head
        self._served = 0
        self._head_started: float | None = None  # loop time of the current head's first byte
        self._writing_paused = False
        self._eof = False
        self._done = False  # closing or handed over: no more requests here
        self._server_name: str | None = None
        self._label = ""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0

    # --- the transport's callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._server_name, self._label = self._service.names(transport)
        self._loop = loop = asyncio.get_running_loop()
        self._deadline = self._timer_at = at = loop.time() + self._service.limits.idle_timeout
        self._timer = loop.call_at(at, self._on_timer)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._buffer = self._buffer + data if self._buffer else data
        self._process()

    def eof_received(self) -> bool | None:
        # the client sent everything: answer what is complete (even with writing paused: the
        # transport holds it), then the end of input decides like serve_http's read of b""
        self._eof = True
        self._writing_paused = False
        self._process()
        if not self._done:
            if self._buffer:
                self._fail(400, "bad request: the connection closed inside the request head")
            else:
                self._finish()
        return None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self.transport.pause_reading()
        self._set_deadline(self._loop.time() + self._service.limits.idle_timeout)

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._done:
            return
        self.transport.resume_reading()
        self._set_deadline(self._loop.time() + self._service.limits.idle_timeout)
        self._process()

    def _stop(self) -> None:
        """This connection answers no more heads here: no more timeouts for it."""
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    # --- requests -----------------------------------------------------------------------------

    def _process(self) -> None:
        """Answer every complete head in the buffer, in order, while the transport takes writes."""
        service = self._service
        limits = service.limits
        while not self._done and not self._writing_paused:
            buffer = self._buffer
            if not buffer:
                self._head_started = None
                return
            end = _HEAD_END_RE.search(buffer, max(self._scanned - 2, 0))
            if end is None:
                if len(buffer) > limits.max_header_bytes:
                    self._fail(431, "request head too large")
                    return
                self._scanned = len(buffer)
                if self._head_started is None:
                    self._head_started = now = self._loop.time()
                    self._set_deadline(now + limits.header_timeout)
                return
            self._scanned = 0
            if end.start() > limits.max_header_bytes:
                self._fail(431, "request head too large")
                return
            try:
                head = parse_head(buffer[: end.start()])
            except HeadError as exc:
                self._fail(exc.status, "request head too large" if exc.status == 431 else f"bad request: {exc.message}")
                return
            if head.has_body:  # its framing and body are serve_http's (h11)
                self._hand_over()
                return
            request = HttpRequest(head.method, head.target, head.headers, self.client, self._server_name)
            response = service.answer(request)
            if response is None:
                self._hand_over()
                return
            self._served += 1
            self._buffer = buffer[end.end() :]
            self._head_started = None
            rate = service.rate
            if rate is not None and (wait := rate.wait(self.client, self._loop.time())) > 0:
                response = HttpResponse(
                    429,
                    b"too many requests\n",
                    (("Content-Type", "text/plain"), ("Retry-After", str(math.ceil(wait)))),
                    label=self._label,
                )
            close = response.close or not head.keep_alive or self._served >= limits.max_requests
            head_only = request.method == "HEAD"
            self.transport.write(response.encode(close=close, head_only=head_only))
            if service.observe is not None:
                service.observe(request, response, 0 if head_only else len(response.body))
            if close:
                self._finish()
                return
            self._deadline = self._loop.time() + limits.idle_timeout  # later: the timer catches up

    def _fail(self, status: int, reason: str) -> None:
        """Answer a head that cannot be served (``status``) and close, as serve_http does."""
        response = _plain(status, reason, label=self._label)
        self.transport.write(response.encode(close=True))
        if self._service.observe is not None:
            self._service.observe(None, response, len(response.body))
        self._finish()

    def _finish(self) -> None:
        self._stop()
        self.close()

    def _hand_over(self) -> None:
        """Serve this connection's rest, from the current head on, with serve_http."""
        self._stop()
        data, self._buffer = self._buffer, b""
        self.hand_over(self._serve_stream, data, eof=self._eof)

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        service = self._service
        await serve_http(
            reader,
            writer,
            service.app,
            limits=service.limits,
            client=self.client,
            server_name=self._server_name,
            rate=service.rate,
            observe=service.observe,
            label=self._label,
            served=self._served,
        )

    # --- time ---------------------------------------------------------------------------------

    def _set_deadline(self, at: float) -> None:
        self._deadline = at
        if at < self._timer_at and self._timer is not None:  # earlier than the timer: set it again
            self._timer.cancel()
            self._timer_at = at
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._done:
            return
        if self._loop.time() < self._deadline:  # the deadline moved on since the timer was set
            self._timer_at = self._deadline
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            return
        if self._head_started is not None and not self._writing_paused:
            self._fail(408, "the request head took too long")
        else:  # idle between requests, or a client that does not read its answers
            self._finish()


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


def authority_name(host: str) -> str:
    """The host part of a ``Host`` header, compared like a DNS name (case, trailing dot): the
    policy host and the ACME challenge listener match names by it."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rpartition(":")[0].rstrip(".").lower() if ":" in host else host.rstrip(".").lower()

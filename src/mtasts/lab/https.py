"""The lab's HTTPS hosts: policy hosts (``mta-sts.<domain>``) and the TLSRPT sink.

A deliberately small HTTP/1.1 responder: one request per connection (``Connection: close``),
bodies only by ``Content-Length``, every size and wait bounded by :class:`~mtasts.lab._net.Limits`.
:func:`parse_head` is sans-I/O (bytes in, :class:`Request` or :class:`HttpError` out).
:class:`HttpsServer` terminates TLS at accept (:mod:`mtasts.net.server` says why: upgrading an
accepted stream with ``start_tls`` loses ClientHellos), with the context of the host bound to
that address, whose SNI callback picks the host's certificate or the default site's; so DNS
alone selects host and certificate. With a ``delay``, every response is sent that long after
its request was read (the handshake itself is not delayed: see :class:`HttpsServer`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import NamedTuple

from mtasts.lab._net import DEFAULT_LIMITS, Handler, Limits, SharedPortServer, sanitize
from mtasts.lab.plan import HttpAnswer, HttpsHost

__all__ = ["HttpError", "HttpsServer", "LoggedRequest", "Request", "parse_head", "render_answer"]

log = logging.getLogger("mtasts.lab.https")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request; header names are lower-case."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


@dataclass(frozen=True, slots=True)
class HttpError:
    """Why a request cannot be served, as the status to answer with."""

    status: int
    reason: str


def parse_head(head: bytes) -> Request | HttpError:
    """Parse a request line and headers (``head`` ends with the blank line)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return HttpError(400, "non-ASCII request head")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return HttpError(400, f"bad request line {sanitize(lines[0])!r}")
    method, target, _version = parts
    if method not in _METHODS:
        return HttpError(501, f"method {sanitize(method)!r}")
    if not target.startswith("/"):
        return HttpError(400, "the target is not an origin-form path")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or not name.isascii():
            return HttpError(400, f"bad header line {sanitize(line)!r}")
        headers.append((name.lower(), value.strip(" \t")))
    return Request(method, target, tuple(headers))


def render_answer(answer: HttpAnswer, *, head_only: bool = False) -> bytes:
    """The bytes of a response; the connection always closes after it."""
    try:
        reason = HTTPStatus(answer.status).phrase
    except ValueError:
        reason = "Status"
    lines = [
        f"HTTP/1.1 {answer.status} {reason}",
        f"Content-Type: {answer.content_type}",
        f"Content-Length: {len(answer.body)}",
        "Connection: close",
        "Cache-Control: no-store",
    ]
    if answer.location is not None:
        lines.append(f"Location: {answer.location}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if head_only else head + answer.body


Responder = Callable[[Request], HttpAnswer]


class LoggedRequest(NamedTuple):
    """One request an HTTPS host read (:attr:`HttpsServer.requests`): the host it was for, its
    method and its path (without the query)."""

    host: str
    method: str
    path: str


def answer_from_table(host: HttpsHost) -> Responder:
    """A responder that serves ``host.answers`` by path to GET and HEAD."""

    def respond(request: Request) -> HttpAnswer:
        if request.method not in ("GET", "HEAD"):
            return HttpAnswer(405, b"method not allowed\n")
        return host.answers.get(request.path) or HttpAnswer(404, b"not found\n")

    return respond


class HttpsServer(SharedPortServer[HttpsHost]):
    """HTTPS on one shared port for several hosts, each on its own address.

    ``contexts`` gives the server ``SSLContext`` for a host; ``responders`` overrides the
    answer table of a host by name (the sink); ``delay`` (seconds) holds back every response,
    one round trip per request. The TCP and TLS handshakes are not delayed: they happen at
    accept, in :mod:`mtasts.net.server`, and on loopback they cost what they cost; so the lab at
    ``delay`` models a fetch as one round trip of ``delay``, a lower bound on the three or so
    (TCP, TLS 1.3, request) a real fetch over that RTT would take.
    """

    def __init__(
        self,
        hosts: Sequence[HttpsHost],
        contexts: Callable[[HttpsHost], ssl.SSLContext],
        *,
        responders: dict[str, Responder] | None = None,
        port: int = 0,
        limits: Limits = DEFAULT_LIMITS,
        delay: float = 0.0,
    ) -> None:
        self.contexts = contexts
        self.responders = dict(responders or {})
        self.requests: list[LoggedRequest] = []  # every request read, in order, answered or not
        super().__init__("https", hosts, port=port, limits=limits, delay=delay)

    def _stream_limit(self) -> int:
        return self.limits.max_header_bytes

    def _tls(self, host: HttpsHost) -> ssl.SSLContext:
        return self.contexts(host)

    def _handler(self, host: HttpsHost) -> Handler:
        table = answer_from_table(host)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # looked up per connection: a responder set while serving (Lab.serve_policy) applies
            await self._serve(host, self.responders.get(host.name) or table, reader, writer)

        return serve

    async def _serve(
        self, host: HttpsHost, responder: Responder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.limits  # the TLS handshake is done: the listener terminates TLS at accept
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limits.idle_timeout)
        except asyncio.LimitOverrunError:
            await self._send(writer, HttpAnswer(431, b"request head too large\n"))
            return
        parsed = parse_head(head)
        if isinstance(parsed, HttpError):
            log.debug("https %s: %s", host.name, parsed.reason)
            await self._send(writer, HttpAnswer(parsed.status, parsed.reason.encode() + b"\n"))
            return
        if parsed.header("transfer-encoding") is not None:
            await self._send(writer, HttpAnswer(411, b"send a Content-Length\n"))
            return
        length_text = parsed.header("content-length") or "0"
        if not length_text.isdigit():
            await self._send(writer, HttpAnswer(400, b"bad Content-Length\n"))
            return
        length = int(length_text)
        if length > limits.max_body_bytes:
            await self._send(writer, HttpAnswer(413, b"body too large\n"))
            return
        body = await asyncio.wait_for(reader.readexactly(length), limits.idle_timeout) if length else b""
        request = Request(parsed.method, parsed.target, parsed.headers, body)
        self.requests.append(LoggedRequest(host.name, request.method, request.path))
        if host.hang:
            await self._hang(reader)
            return
        answer = responder(request)
        await self._send(writer, answer, head_only=request.method == "HEAD")

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Say nothing until the client leaves or ``hang_timeout`` passes."""
        try:
            async with asyncio.timeout(self.limits.hang_timeout):
                while await reader.read(4096):
                    pass
        except TimeoutError:
            pass

    async def _send(self, writer: asyncio.StreamWriter, answer: HttpAnswer, *, head_only: bool = False) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        writer.write(render_answer(answer, head_only=head_only))
        await asyncio.wait_for(writer.drain(), self.limits.idle_timeout)

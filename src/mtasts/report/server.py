"""The RFC 8460 §5.4 HTTPS endpoint: POST a report, get 201.

A small ASGI app (Starlette) in front of the parser and the store, served by uvicorn's HTTP/1.1
protocol under a guard of our own (:mod:`mtasts.net.asgi`, shared with ``mtasts web serve``);
connections are accepted, their TLS terminated and their numbers capped by the shared server
plumbing (:mod:`mtasts.net.server`). Every check that can
run before the handler does, cheapest first: connection caps, method, media type, per-client
rate, declared size; the body cap is enforced again while reading (a chunked body cannot slip
past it). A bad report is a 4xx with a JSON error (its stable code); an anticipated failure
(store down, server busy) is a 503 with ``Retry-After``; an unexpected one a 500. The server
keeps serving either way.

Anyone can connect, so every resource a client can hold is bounded (defaults; the CLI option):

=============================================  ==================  =============================
limit                                          default             ``mtasts report serve``
=============================================  ==================  =============================
TLS handshake                                  10 s                ``--handshake-timeout``
request head (line and headers) arrives in     10 s                ``--header-timeout``
no byte of body for / body slower than         10 s / 1 KiB/s      ``--body-timeout``,
                                                                   ``--min-body-rate``
open connections, total / per client address   256 / 32            ``--max-connections``,
                                                                   ``--max-connections-per-client``
request body                                   4 MiB               ``--max-body``
bodies held in memory, all requests together   64 MiB              ``--memory-budget``
one body kept in memory up to                  256 KiB             (then spooled to disk)
bodies spooled to disk, all together           1 GiB               ``--spool-budget``
large or chunked bodies received at once       64                  ``--max-uploads``
reports parsed at once (worker processes)      1 small + 1 large   ``--parse-workers``
reports waiting for a worker, per lane         8                   ``--parse-queue``
reports being read per client address          2                   —
repeated failures summarised per               60 s                ``--log-window``
=============================================  ==================  =============================

Bodies are read chunk by chunk into memory while they are small and the memory budget allows,
else into a file in a private spool directory; parsing runs in worker processes (see
:mod:`mtasts.report.parsepool`), never on the event loop. What a slow or large client costs is
thus a file and a few KiB of buffers, and 200 slow 4 MiB bodies cannot grow the process to a
gigabyte. Excess is refused early and cheaply: a connection over the caps gets ``503`` and is
closed, a stalled head or body ``408`` and is closed.

========================================  ======  ==========================================
request                                   status  error code
========================================  ======  ==========================================
another path than ``path`` (when set)     404     ``http.not_found``
not POST                                  405     ``http.method``
Content-Type not tlsrpt+gzip / +json      415     ``http.content_type``
more requests than the client's budget    429     ``http.rate_limited``
body larger than the cap                  413     ``http.too_large``
head or body too slow                     408     ``http.header_timeout``, ``http.body_timeout``
not HTTP/1.1 (h11 cannot parse it)        400     ``http.bad_request``
request head over ``max_head``            431     ``http.head_too_large``
TLS handshake failed or too slow          —       ``tls.handshake``, ``tls.handshake_timeout``
too many handshakes at once (see below)   —       ``tls.too_many_handshakes``
too many connections (total, per client)  503     ``http.too_many_connections``
no memory, disk or parse slot free now    503     ``http.busy``
unreadable report                         400     the parser's code (``report.gzip.too_large``...)
policy domain not on the allow-list       403     ``report.domain.not_accepted``
the store fails                           503     ``store.unavailable``
a bug                                     500     ``http.internal``
stored, or already stored                 201     —
========================================  ======  ==========================================

Logging: exactly one access line per request, and per connection that never got to one (a TLS
handshake that failed, a head that never came, a connection over the caps), on logger
``mtasts.report.access`` (:func:`access_line`: client, method and path, status, body bytes in and
out, duration, then ``stored``/``duplicate`` with the organisation and report-id, or the error
code; client-supplied text is escaped and cut). A failure is that one line, never a traceback:
the reason of a store outage is logged once per window, and a summary per code closes each
window in which failures repeated ("store.unavailable: 412 requests failed in the last 60 s").
An unexpected exception is one line with its type; the traceback, and uvicorn's own messages,
are logged at debug level. What keeps the server from starting (a certificate or key file, the
address, the port, the spool folder) is a :class:`StartupError` naming the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import shutil
import socket
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mtasts.core.tlsrpt_report import DEFAULT_LIMITS, ReportLimits, TlsRptReport
from mtasts.net.asgi import AsgiServer, ConnectionFailure, HttpHooks, debug_logger
from mtasts.net.asgi_limits import AsgiLimits
from mtasts.net.ratelimit import RateLimit, RateLimiter
from mtasts.net.server import BindError, Refusal
from mtasts.report.ingest import utc_now
from mtasts.report.parsepool import (
    ParseFailed,
    ParsePool,
    PoolBusy,
    PoolKind,
    Unexpected,
    pin_malloc_thresholds,
    trim_malloc,
)
from mtasts.store.errors import StoreError, describe_store_error
from mtasts.store.interface import ReportStoreProtocol

__all__ = [
    "ACCEPTED_TYPES",
    "AccessEntry",
    "BodyBudget",
    "EndpointSettings",
    "FailureTally",
    "ReportEndpoint",
    "ReportServer",
    "StartupError",
    "access_line",
    "make_app",
    "parse_domains",
    "sanitise",
    "server_tls_context",
]

log = logging.getLogger(__name__)
access_log = logging.getLogger("mtasts.report.access")

ACCEPTED_TYPES: Final = frozenset({"application/tlsrpt+gzip", "application/tlsrpt+json"})
KIB: Final = 1024
MIB: Final = 1024 * KIB

# what a request's handling leaves in its ASGI scope's state for the access line
_CODE_KEY: Final = "mtasts.error_code"  # the outcome: an error code, "stored" or "duplicate"
_DETAILS_KEY: Final = "mtasts.details"  # more of it: the organisation and report-id of a report
_ANSWER_KEY: Final = "mtasts.answer"  # (status, bytes) sent by the connection guard, not by the app
_REQUEST_FAILURES: Final = frozenset({"store.unavailable", "http.busy", "http.internal"})
_MAX_PEM: Final = 1 * MIB
# how long a closing connection may take to hand over what was written (its TLS close included)
_CLOSE_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """What the access line of one request says. ``None`` is "none": no request line was read
    (``method``, ``target``), no response was sent (``status``), not counted (``received``,
    ``sent``). ``outcome`` is ``stored``, ``duplicate`` or the stable error code; ``details``
    add to it (the organisation and report-id of a report, the reason a TLS handshake failed)."""

    client: str
    method: str | None
    target: str | None
    status: int | None
    received: int | None
    sent: int | None
    seconds: float
    outcome: str
    details: tuple[str, ...] = ()


def access_line(entry: AccessEntry) -> str:
    """The access line of ``entry``, every client-supplied part escaped and cut (:func:`sanitise`)::

    192.0.2.7 "POST /tlsrpt" 201 in=455 out=87 7.1ms stored "Example Sender" "r-1"
    192.0.2.7 "POST /tlsrpt" 400 in=1 out=104 1.1ms report.json.syntax
    192.0.2.7 "- -" - in=- out=- 0.8ms tls.handshake "HTTP_REQUEST"
    """
    request = "- -" if entry.method is None else f"{sanitise(entry.method, 20)} {sanitise(entry.target or '', 120)}"

    def count(value: int | None) -> str:
        return "-" if value is None else str(value)

    details = "".join(f' "{sanitise(detail, 120)}"' for detail in entry.details)
    return (
        f'{sanitise(entry.client, 60)} "{request}" {count(entry.status)} in={count(entry.received)} '
        f"out={count(entry.sent)} {entry.seconds * 1000:.1f}ms {sanitise(entry.outcome, 60)}{details}"
    )


def _log_access(entry: AccessEntry) -> None:
    level = logging.WARNING if entry.status is not None and entry.status >= 500 else logging.INFO
    access_log.log(level, "%s", access_line(entry))


class StartupError(Exception):
    """The server cannot start, and whose fault it is: ``setting`` names it (``cert``, ``key``,
    ``host``, ``port``, ``spool_dir``), ``value`` is what it was given and ``message`` says what
    is wrong with it, so the caller can name its own option ("--cert /x/cert.pem: no such file")."""

    def __init__(self, setting: str, value: object, message: str) -> None:
        super().__init__(f"{setting} {value}: {message}")
        self.setting = setting
        self.value = str(value)
        self.message = message


def _os_reason(exc: OSError) -> str:
    reasons = {
        errno.ENOENT: "no such file",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EISDIR: "is a folder, not a file",
        errno.ENOTDIR: "a part of the path is not a folder",
    }
    return reasons.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()


def _read_pem(setting: str, path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PEM + 1)
    except OSError as exc:
        raise StartupError(setting, path, _os_reason(exc)) from exc
    if len(data) > _MAX_PEM:
        raise StartupError(setting, path, f"larger than {_MAX_PEM // MIB} MiB: not a PEM file")
    return data


def server_tls_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """The server's TLS context (TLS 1.2 and later) for the certificate chain and key in these
    PEM files; :class:`StartupError` names the file at fault and says what is wrong: missing or
    unreadable, not a certificate, not a key, an encrypted key (the server cannot ask for its
    passphrase), or a key that is not the certificate's."""
    cert_data, key_data = _read_pem("cert", certfile), _read_pem("key", keyfile)
    try:
        leaf = x509.load_pem_x509_certificates(cert_data)[0]
    except ValueError:
        hint = " (it holds a private key, not a certificate)" if b"PRIVATE KEY-----" in cert_data else ""
        raise StartupError("cert", certfile, f"no PEM certificate in it{hint}") from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise StartupError(
            "key", keyfile, "the key is encrypted; give it unencrypted (openssl pkey -in KEY -out PLAIN)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = " (it holds a certificate, not a key)" if b"CERTIFICATE-----" in key_data else ""
        raise StartupError("key", keyfile, f"no PEM private key in it{hint}") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise StartupError("key", keyfile, f"it is not the key of the certificate in {certfile}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    def no_passphrase() -> str:
        raise StartupError("key", keyfile, "the key is encrypted; give it unencrypted")

    try:
        context.load_cert_chain(certfile, keyfile, password=no_passphrase)
    except ssl.SSLError as exc:
        raise StartupError("cert", certfile, f"cannot be used with the key {keyfile}: {exc.reason or exc}") from exc
    except OSError as exc:  # replaced or removed since it was read
        raise StartupError("cert", certfile, _os_reason(exc)) from exc
    return context


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """Limits and policy of the endpoint; all are constructor arguments, none is global.
    Times are seconds, sizes bytes; the module docstring says what each one bounds."""

    max_body: int = 4 * MIB
    rate_per_minute: float = 60.0
    burst: int = 20
    allowed_domains: frozenset[str] | None = None
    limits: ReportLimits = DEFAULT_LIMITS
    trust_proxy_headers: bool = False
    forwarded_allow_ips: tuple[str, ...] = field(default=("127.0.0.1",))
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    min_body_rate: float = 1 * KIB
    keep_alive_timeout: int = 5
    max_head: int = 16 * KIB
    max_connections: int = 256
    max_connections_per_client: int = 32
    memory_budget: int = 64 * MIB
    spool_threshold: int = 256 * KIB
    spool_budget: int = 1024 * MIB
    spool_dir: Path | None = None
    max_uploads: int = 64
    upload_wait: float = 1.0
    parse_workers: int = 1
    parse_queue: int = 8
    parse_small_body: int = 64 * KIB
    parses_per_client: int = 2
    parse_pool: PoolKind = "process"
    retry_after: int = 5
    log_window: float = 60.0
    path: str | None = None

    def __post_init__(self) -> None:
        positive = [
            *("max_body", "burst", "rate_per_minute", "handshake_timeout", "header_timeout", "body_timeout"),
            *("keep_alive_timeout", "max_head", "max_connections", "max_connections_per_client"),
            *(
                "max_uploads",
                "upload_wait",
                "memory_budget",
                "spool_budget",
                "parse_workers",
                "parses_per_client",
                "retry_after",
                "log_window",
            ),
        ]
        wrong = [name for name in positive if not getattr(self, name) > 0]
        if wrong or self.min_body_rate < 0 or self.parse_queue < 0 or self.spool_threshold < 0:
            raise ValueError(f"must be positive: {', '.join(wrong) or 'min_body_rate, parse_queue, spool_threshold'}")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"path must begin with /: {self.path!r}")
        if self.allowed_domains is not None:
            object.__setattr__(
                self, "allowed_domains", frozenset(d.strip().rstrip(".").lower() for d in self.allowed_domains)
            )


class FailureTally:
    """Failures counted per code over a window, sans I/O (the caller passes monotonic time),
    so that a flood of the same failure is summarised instead of repeated in the log."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._counts: Counter[str] = Counter()
        self._started: float | None = None

    def note(self, code: str, now: float) -> int:
        """Count one failure; returns how many of ``code`` this window has seen, this one included."""
        if self._started is None:
            self._started = now
        self._counts[code] += 1
        return self._counts[code]

    def due(self, now: float) -> list[tuple[str, int]]:
        """When the window is over: the codes that failed more than once and their counts
        (then a new window starts); else nothing."""
        if self._started is None or now - self._started < self.window:
            return []
        repeated = sorted((code, count) for code, count in self._counts.items() if count > 1)
        self._counts.clear()
        self._started = None
        return repeated


def sanitise(text: str | bytes, limit: int = 120) -> str:
    """Client-supplied ``text`` made safe for a log line: printable ASCII, every other byte
    (controls, quotes, backslashes, non-ASCII) as ``\\xNN``, cut to ``limit`` characters."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    out: list[str] = []
    length = 0
    for byte in data:
        piece = chr(byte) if 0x20 <= byte < 0x7F and byte not in (0x22, 0x5C) else f"\\x{byte:02x}"
        length += len(piece)
        if length > limit:
            out.append("...")
            break
        out.append(piece)
    return "".join(out)


class BodyBudget:
    """Bytes of request bodies held in memory and in spool files, over all requests at once.

    Sans I/O counters; :class:`_Body` does the reading and asks here. A body stays in memory
    while it is at most ``threshold`` bytes and the memory budget has room, else goes to disk;
    when the disk budget is full too, the request is refused (503) rather than queued.
    """

    def __init__(
        self, memory: int, disk: int, threshold: int, directory: Path | None = None, *, uploads: int = 64
    ) -> None:
        self.uploads = asyncio.Semaphore(uploads)
        self.memory_limit = memory
        self.disk_limit = disk
        self.threshold = threshold
        self.directory = directory
        self.memory = 0
        self.disk = 0
        self.touched = False

    def fits_in_memory(self, size: int, more: int) -> bool:
        return size + more <= self.threshold and self.memory + more <= self.memory_limit

    def fits_on_disk(self, more: int) -> bool:
        return self.disk + more <= self.disk_limit


class _Body:
    """One request body being read: chunks in memory, or a spool file once it grows."""

    def __init__(self, budget: BodyBudget, expected: int | None) -> None:
        self._budget = budget
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None
        self.path: Path | None = None
        self.size = 0
        self._in_memory = 0
        self._on_disk = 0
        self._direct_to_disk = expected is not None and expected > budget.threshold
        budget.touched = True

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False when the disk budget has no room for it."""
        budget = self._budget
        if self._file is None and not self._direct_to_disk and budget.fits_in_memory(self.size, len(chunk)):
            self._chunks.append(chunk)
            self._in_memory += len(chunk)
            budget.memory += len(chunk)
            self.size += len(chunk)
            return True
        if not budget.fits_on_disk(self._in_memory + len(chunk)):
            return False
        if self._file is None:
            self._spill()
        assert self._file is not None
        self._file.write(chunk)
        self._on_disk += len(chunk)
        budget.disk += len(chunk)
        self.size += len(chunk)
        return True

    def _spill(self) -> None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 -- closed in source() or release()
            prefix="body-", dir=self._budget.directory, delete=False
        )
        self._file, self.path = handle, Path(handle.name)
        for chunk in self._chunks:
            handle.write(chunk)
        self._budget.memory -= self._in_memory
        self._budget.disk += self._in_memory
        self._on_disk, self._in_memory = self._in_memory, 0
        self._chunks = []

    def source(self) -> bytes | Path:
        """What the parser reads: the body itself, or the spool file (closed, complete)."""
        if self._file is not None:
            self._file.close()
            assert self.path is not None
            return self.path
        data = b"".join(self._chunks)
        self._chunks = [data]
        return data

    def release(self) -> None:
        """Free the memory or the file and give the budget back; safe to call twice."""
        self._chunks = []
        self._budget.memory -= self._in_memory
        self._budget.disk -= self._on_disk
        self._in_memory = self._on_disk = 0
        if self._file is not None:
            self._file.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.path = None


def _error(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    request.scope.setdefault("state", {})[_CODE_KEY] = code
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def make_app(
    store: ReportStoreProtocol,
    settings: EndpointSettings = EndpointSettings(),
    *,
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] | None = None,
    pool: ParsePool | None = None,
    budget: BodyBudget | None = None,
    tally: FailureTally | None = None,
) -> ASGIApp:
    """The endpoint as an ASGI app over an open ``store``, with its access log.

    ``pool`` parses the bodies (default: worker threads, started on first use, for in-process
    use; :class:`ReportServer` passes worker processes), ``budget`` bounds the bodies being read
    and ``tally`` counts failures for the log's summaries.
    """
    limiter = RateLimiter(RateLimit(settings.rate_per_minute, settings.burst), max_clients=100_000)
    ticks = monotonic or time.monotonic
    parser = pool or ParsePool(
        settings.limits,
        workers=settings.parse_workers,
        queue=settings.parse_queue,
        small_body=settings.parse_small_body,
        per_client=settings.parses_per_client,
        kind="thread",
    )
    bodies = budget or BodyBudget(
        settings.memory_budget, settings.spool_budget, settings.spool_threshold, uploads=settings.max_uploads
    )
    failures = tally or FailureTally(settings.log_window)
    retry = {"Retry-After": str(settings.retry_after)}
    closing = {"Connection": "close"}
    busy_message = "the server is busy; send the report again later"

    async def receive_report(request: Request) -> Response:
        # Refusals before the body is read close the connection: reading (and discarding) a
        # body nobody will use would only let the client hold the connection longer.
        if settings.path is not None and request.url.path != settings.path:
            return _error(request, 404, "http.not_found", f"reports are received at {settings.path}", closing)
        if request.method != "POST":
            return _error(
                request, 405, "http.method", "send reports with POST (RFC 8460 §5.4)", {"Allow": "POST", **closing}
            )
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in ACCEPTED_TYPES:
            return _error(
                request,
                415,
                "http.content_type",
                f"Content-Type {sanitise(media_type, 60) or '(none)'!r} is not application/tlsrpt+gzip or "
                "application/tlsrpt+json",
                closing,
            )
        client = request.client.host if request.client else "unknown"
        wait = limiter.wait(client, ticks())
        if wait:
            return _error(
                request,
                429,
                "http.rate_limited",
                "too many reports from this client",
                {"Retry-After": str(int(wait) + 1), **closing},
            )
        declared = request.headers.get("content-length")
        too_large = f"the body is larger than {settings.max_body} bytes"
        if declared is not None and (not declared.isdigit() or int(declared) > settings.max_body):
            return _error(request, 413, "http.too_large", too_large, closing)
        expected = int(declared) if declared is not None else None
        if expected is not None and expected > bodies.threshold and not bodies.fits_on_disk(expected):
            _note_busy(client, "no room to spool the body")
            return _error(request, 503, "http.busy", busy_message, {**retry, **closing})
        if expected is None or expected > bodies.threshold:
            # a large upload costs about a MiB of TLS and HTTP buffers however it is stored:
            # their number is capped, and a request that finds no slot soon is refused
            try:
                await asyncio.wait_for(bodies.uploads.acquire(), settings.upload_wait)
            except TimeoutError:
                _note_busy(client, f"{settings.max_uploads} large uploads are in progress")
                return _error(request, 503, "http.busy", busy_message, {**retry, **closing})
            try:
                return await _read_and_store(request, client, bodies, expected)
            finally:
                bodies.uploads.release()
        return await _read_and_store(request, client, bodies, expected)

    async def _read_and_store(request: Request, client: str, bodies: BodyBudget, expected: int | None) -> Response:
        too_large = f"the body is larger than {settings.max_body} bytes"
        body = _Body(bodies, expected)
        try:
            # ASGI messages read here rather than through request.stream(), which keeps a
            # reference to the previous chunk while it waits for the next: with 200 slow
            # bodies that alone held 50 MB.
            more = True
            while more:
                message = await request.receive()
                if message["type"] != "http.request":
                    # the client left (or the guard closed the connection): nothing can be sent
                    state = request.scope.setdefault("state", {})
                    state.setdefault(_CODE_KEY, "http.disconnected")
                    state.setdefault(_ANSWER_KEY, (None, None))
                    return Response(status_code=400)
                chunk: bytes = message.get("body", b"")
                more = bool(message.get("more_body", False))
                del message
                if body.size + len(chunk) > settings.max_body:
                    return _error(request, 413, "http.too_large", too_large, closing)
                if chunk and not body.add(chunk):
                    _note_busy(client, "no room to spool the body")
                    return _error(request, 503, "http.busy", busy_message, {**retry, **closing})
                del chunk
            try:
                outcome = await parser.parse(client, body.source(), body.size)
            except PoolBusy as exc:
                _note_busy(client, exc.reason)
                return _error(request, 503, "http.busy", busy_message, retry)
        finally:
            body.release()
        if isinstance(outcome, ParseFailed):
            return _error(request, 400, outcome.code, outcome.message)
        if isinstance(outcome, Unexpected):
            if outcome.kind == "BrokenProcessPool":
                _note_busy(client, outcome.message)
                return _error(request, 503, "http.busy", busy_message, retry)
            log.warning("internal error reading a report from %s: %s: %s", client, outcome.kind, outcome.message)
            if outcome.traceback:
                log.debug("%s", outcome.traceback)
            return _error(request, 500, "http.internal", "internal error")
        return await _store(request, client, outcome)

    async def _store(request: Request, client: str, report: TlsRptReport) -> Response:
        if settings.allowed_domains is not None:
            outside = sorted({p.policy_domain or "(none)" for p in report.policies} - settings.allowed_domains)
            if outside or not report.policies:
                return _error(
                    request,
                    403,
                    "report.domain.not_accepted",
                    f"this endpoint takes no reports for {', '.join(outside) or 'reports without a policy'}",
                )
        try:
            (result,) = await asyncio.to_thread(store.add_reports, [report], source=f"https:{client}", now=clock())
        except (SQLAlchemyError, StoreError) as exc:
            # anticipated (the database is down or stopped answering): the access line says
            # 503 store.unavailable; the reason once per window; a summary when it repeats
            if failures.note("store.unavailable", ticks()) == 1:
                reason = exc.message if isinstance(exc, StoreError) else describe_store_error(exc, store.url)
                log.warning("store unavailable: %s", reason)
            return _error(
                request, 503, "store.unavailable", "the report store is unavailable; send the report again later", retry
            )
        state = request.scope.setdefault("state", {})
        state[_CODE_KEY] = "stored" if result.stored else "duplicate"
        state[_DETAILS_KEY] = (result.organization_name, result.report_id)
        return JSONResponse({"stored": result.stored, "id": result.key}, status_code=201)

    def _note_busy(client: str, reason: str) -> None:
        if failures.note("http.busy", ticks()) == 1:
            log.warning("busy, a request from %s is refused: %s", client, reason)

    async def on_error(request: Request, exc: Exception) -> Response:
        failures.note("http.internal", ticks())
        log.warning(
            "internal error on %s %s: %s",
            sanitise(request.method, 20),
            sanitise(request.scope.get("raw_path", b""), 120),
            type(exc).__name__,
        )
        log.debug("traceback of the internal error", exc_info=exc)
        return _error(request, 500, "http.internal", "internal error")

    starlette = Starlette(
        routes=[Route("/{path:path}", receive_report, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])],
        exception_handlers={Exception: on_error},
    )
    return _AccessLog(starlette)


class _AccessLog:
    """ASGI middleware: one access line per request (:func:`access_line`), after its response.

    The status and bytes are those the app sent, unless the connection guard answered instead
    (a body that stalled: ``_ANSWER_KEY``). An exception that escapes after its 500 was sent is
    not passed on: the app's error handler logged it, and uvicorn would log its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state: dict[str, Any] = scope.setdefault("state", {})
        seen = {"in": 0, "out": 0, "status": 0}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        except Exception:
            if not seen["status"]:
                raise
        finally:
            client = scope.get("client")
            status, sent = state.get(_ANSWER_KEY, (seen["status"] or None, seen["out"]))
            _log_access(
                AccessEntry(
                    client=str(client[0]) if client else "unknown",
                    method=str(scope.get("method", "")),
                    target=scope.get("raw_path", b"").decode("utf-8", "surrogateescape"),
                    status=status,
                    received=seen["in"],
                    sent=sent,
                    seconds=time.monotonic() - started,
                    outcome=str(state.get(_CODE_KEY, "-")),
                    details=tuple(state.get(_DETAILS_KEY, ())),
                )
            )


class _ReportHooks(HttpHooks):
    """What becomes of what the connection guard closes (:mod:`mtasts.net.asgi`): counted in
    the failure tally, and an access line, the request's (the app writes it once it sees the
    close, from what is left in its scope's state) or the connection's own."""

    def __init__(self, tally: FailureTally) -> None:
        self.tally = tally

    def failed(self, code: str, now: float) -> None:
        self.tally.note(code, now)

    def answered(self, state: dict[str, Any], code: str, status: int, sent: int) -> None:
        state[_CODE_KEY], state[_ANSWER_KEY] = code, (status, sent)

    def connection_failed(self, failure: ConnectionFailure) -> None:
        _log_access(
            AccessEntry(
                failure.client,
                None,
                None,
                failure.status,
                failure.received,
                failure.sent,
                failure.seconds,
                failure.code,
                failure.details,
            )
        )


# uvicorn's own messages, at debug level (mtasts.net.asgi.debug_logger)
_UVICORN_LOG: Final = debug_logger("mtasts.report.http", log)


class ReportServer:
    """The endpoint served over TLS (terminated at accept) with the limits of
    :class:`EndpointSettings`. Nothing happens until :meth:`start`.

    ``tls`` is a ready server context (the CLI makes it with :func:`server_tls_context` first,
    to name a bad file before anything starts); else one is made from ``certfile`` and
    ``keyfile`` at start; with neither, plain HTTP is served (behind a TLS-terminating proxy).

    Connections come through :class:`~mtasts.net.server.StreamServer`, like every server of
    mtasts: its accept loop and back-off, TLS at accept, the caps of TLS handshakes in progress
    (at accept: such a connection is closed before a byte is read, ``tls.too_many_handshakes``)
    and of open connections (applied once the handshake is done, so that a refused client reads
    a ``503`` saying why: ``admit_when_open``). Each connection is uvicorn's HTTP/1.1 protocol
    under the guard of head and body timeouts (:class:`~mtasts.net.asgi.GuardedH11Protocol`),
    served by :class:`~mtasts.net.asgi.AsgiServer` as ``mtasts web serve`` is.
    """

    def __init__(
        self,
        store: ReportStoreProtocol,
        *,
        host: str = "127.0.0.1",
        port: int = 8443,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        tls: ssl.SSLContext | None = None,
        settings: EndpointSettings = EndpointSettings(),
    ) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.certfile = certfile
        self.keyfile = keyfile
        self.tls = tls
        self.settings = settings
        self.tally = FailureTally(settings.log_window)
        self._http: AsgiServer | None = None
        self._pool: ParsePool | None = None
        self._budget: BodyBudget | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The first of :attr:`addresses`."""
        return self.addresses[0]

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """Every address listened on, with its port: one for an IP address as ``host``, one per
        address of a host name (``localhost``: ``127.0.0.1`` and ``::1``)."""
        if self._http is None or self._http.server is None or not self._http.server.sockets:
            raise RuntimeError("the server is not started")
        return tuple((str(name[0]), int(name[1])) for name in (sock.getsockname() for sock in self._http.sockets))

    def _limits(self) -> AsgiLimits:
        """The guard's limits and the connection caps (behind a proxy every connection comes
        from the proxy, so only the total)."""
        settings = self.settings
        return AsgiLimits(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            min_body_rate=settings.min_body_rate,
            keep_alive_timeout=settings.keep_alive_timeout,
            max_head=settings.max_head,
            max_connections=settings.max_connections,
            max_connections_per_client=settings.max_connections_per_client,
            handshake_timeout=settings.handshake_timeout,
            close_timeout=_CLOSE_TIMEOUT,
            retry_after=settings.retry_after,
            behind_proxy=settings.trust_proxy_headers,
        )

    async def start(self) -> None:
        """Check the TLS files and the spool folder, open the store, start the parse workers,
        then bind and accept connections. A setting at fault raises :class:`StartupError` (the
        store's own failures :class:`StoreError`), with nothing left open or running."""
        settings = self.settings
        tls = self.tls
        if tls is None and self.certfile is not None:
            tls = server_tls_context(self.certfile, self.keyfile or self.certfile)
        if not 0 <= self.port <= 65535:
            raise StartupError("port", self.port, "not a port number (0 to 65535)")
        spool = _make_spool(settings.spool_dir)
        try:
            await asyncio.to_thread(self.store.open)
        except BaseException:
            shutil.rmtree(spool, ignore_errors=True)
            raise
        pin_malloc_thresholds()
        self._stopped = asyncio.Event()
        self._budget, self._pool = _budget_and_pool(settings, spool)
        try:
            await self._pool.start()
            app = make_app(self.store, settings, pool=self._pool, budget=self._budget, tally=self.tally)
            # accepted sockets inherit a modest receive buffer: a read then hands the TLS layer
            # at most about 128 KiB, so the per-connection buffers stay small under 200 fast
            # uploads; --host :: takes IPv4 clients too
            self._http = AsgiServer(
                app,
                name="report serve",
                limits=self._limits(),
                hooks=_ReportHooks(self.tally),
                logger=_UVICORN_LOG,
                host=self.host,
                port=self.port,
                tls=tls,
                proxy_headers=settings.trust_proxy_headers,
                forwarded_allow_ips=settings.forwarded_allow_ips,
                receive_buffer=64 * KIB,
                on_refused=self._refused,
            )
            await self._http.start()
        except BindError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            await self.stop()
            raise _listen_error(self.host, self.port, cause) from exc
        except BaseException:
            await self.stop()
            raise
        self._ticker = asyncio.create_task(self._tick())

    def _refused(self, client: str, refusal: Refusal) -> None:
        """A connection closed at accept, before any byte is read or written (no TLS, so no
        HTTP answer): its access line says why."""
        code = "tls.too_many_handshakes" if refusal.cap == "handshakes" else "http.too_many_connections"
        self.tally.note(code, time.monotonic())
        _log_access(AccessEntry(client, None, None, None, None, None, 0.0, code, (str(refusal),)))

    async def _tick(self) -> None:
        """Once a second: the failure summaries, and memory handed back to the system once no
        body is held any more (the Date header is the HTTP server's)."""
        while True:
            for code, count in self.tally.due(time.monotonic()):
                what = "requests failed" if code in _REQUEST_FAILURES else "connections closed"
                log.warning("%s: %d %s in the last %g s", code, count, what, self.tally.window)
            budget, pool = self._budget, self._pool
            idle = budget is not None and pool is not None and not (budget.memory or budget.disk or pool.in_flight)
            if idle and budget is not None and budget.touched:
                budget.touched = False
                trim_malloc()
            await asyncio.sleep(1.0)

    async def serve_forever(self) -> None:
        if self._http is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop(grace=5.0)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._pool is not None:
            self._pool.shutdown()
        if self._budget is not None and self._budget.directory is not None:
            shutil.rmtree(self._budget.directory, ignore_errors=True)
        if self._stopped is not None:
            self._stopped.set()
        self._http = self._pool = self._budget = self._ticker = None
        await asyncio.to_thread(self.store.close)

    async def __aenter__(self) -> ReportServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _budget_and_pool(settings: EndpointSettings, spool: Path) -> tuple[BodyBudget, ParsePool]:
    """The bodies' budget (spooling into ``spool``) and the parse workers (not started yet)."""
    budget = BodyBudget(
        settings.memory_budget, settings.spool_budget, settings.spool_threshold, spool, uploads=settings.max_uploads
    )
    pool = ParsePool(
        settings.limits,
        workers=settings.parse_workers,
        queue=settings.parse_queue,
        small_body=settings.parse_small_body,
        per_client=settings.parses_per_client,
        kind=settings.parse_pool,
        on_worker_lost=lambda lane: log.warning("a parse worker (%s reports) died; started a new one", lane),
    )
    return budget, pool


class ReportEndpoint:
    """The endpoint without a listener of its own, for a server that accepts connections and
    speaks HTTP itself (the policy host of ``mtasts publish serve``): the store, the parse
    workers, the body budget and its spool folder, with the same limits as
    :class:`ReportServer` (which adds the listener, TLS and uvicorn's HTTP/1.1 with the guard of
    head and body timeouts; a host that serves :meth:`app` bounds those itself).

    :meth:`app` may be called again (after a reload, say, with another allow-list of policy
    domains): every app shares the workers, the budget and the failure tally.
    """

    def __init__(self, store: ReportStoreProtocol, settings: EndpointSettings = EndpointSettings()) -> None:
        self.store = store
        self.settings = settings
        self.tally = FailureTally(settings.log_window)
        self._budget: BodyBudget | None = None
        self._pool: ParsePool | None = None

    async def start(self) -> None:
        """Make the spool folder, open the store and start the parse workers; a setting at fault
        raises :class:`StartupError` (the store's own failures :class:`StoreError`), with nothing
        left open or running."""
        spool = _make_spool(self.settings.spool_dir)
        try:
            await asyncio.to_thread(self.store.open)
        except BaseException:
            shutil.rmtree(spool, ignore_errors=True)
            raise
        self._budget, self._pool = _budget_and_pool(self.settings, spool)
        try:
            await self._pool.start()
        except BaseException:
            await self.stop()
            raise

    def app(self, allowed_domains: frozenset[str] | None = None) -> ASGIApp:
        """The endpoint's ASGI app; ``allowed_domains`` replaces the settings' allow-list."""
        if self._budget is None or self._pool is None:
            raise RuntimeError("the endpoint is not started")
        settings = self.settings
        if allowed_domains is not None:
            settings = dataclasses.replace(settings, allowed_domains=allowed_domains)
        return make_app(self.store, settings, pool=self._pool, budget=self._budget, tally=self.tally)

    async def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        if self._budget is not None and self._budget.directory is not None:
            shutil.rmtree(self._budget.directory, ignore_errors=True)
        started = self._budget is not None
        self._budget = self._pool = None
        if started:
            await asyncio.to_thread(self.store.close)


def _make_spool(folder: Path | None) -> Path:
    """A private folder for the bodies spooled to disk, in ``folder`` (default: the temp dir)."""
    try:
        return Path(tempfile.mkdtemp(prefix="mtasts-serve-", dir=folder))
    except OSError as exc:
        reasons = {
            errno.ENOENT: "no such folder",
            errno.ENOTDIR: "not a folder",
            errno.EACCES: "permission denied: cannot create files in it",
            errno.EPERM: "permission denied: cannot create files in it",
            errno.EROFS: "a read-only file system",
            errno.ENOSPC: "no space left",
        }
        reason = reasons.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
        raise StartupError("spool_dir", folder or tempfile.gettempdir(), reason) from exc


def _listen_error(host: str, port: int, exc: OSError) -> StartupError:
    if isinstance(exc, socket.gaierror):
        return StartupError("host", host, f"not an address of this machine nor a known host name ({exc.strerror})")
    if exc.errno == errno.EADDRINUSE:
        return StartupError("port", port, f"{host}:{port} is in use by another program (--port 0 picks a free port)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        if 0 < port < 1024:
            return StartupError(
                "port", port, "permission denied: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability"
            )
        return StartupError("port", port, f"permission denied to listen on {host}:{port}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError("host", host, "not an address of this machine")
    return StartupError("host", host, f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}")


def parse_domains(values: Iterable[str] | None) -> frozenset[str] | None:
    """``--allow-domain`` values (repeatable, comma-separated) as a set, ``None`` when not given."""
    if not values:
        return None
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())

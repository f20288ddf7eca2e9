"""The RFC 8460 §5.4 HTTPS endpoint: POST a report, get 201.

A small ASGI app (Starlette) in front of the parser and the store. Every check that can run
before the handler does, cheapest first: method, media type, per-client rate, declared size;
the body cap is enforced again while reading (a chunked body cannot slip past it). A bad
report is a 4xx with a JSON error (its stable code); an unexpected failure is a 500 and a log
line. The server keeps serving either way.

========================================  ======  ==========================================
request                                   status  error code
========================================  ======  ==========================================
not POST                                  405     ``http.method``
Content-Type not tlsrpt+gzip / +json      415     ``http.content_type``
more requests than the client's budget    429     ``http.rate_limited``
body larger than the cap                  413     ``http.too_large``
unreadable report                         400     the parser's code (``report.gzip.too_large``...)
policy domain not on the allow-list       403     ``report.domain.not_accepted``
the store fails                           503     ``store.unavailable``
stored, or already stored                 201     —
========================================  ======  ==========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import uvicorn
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mtasts.core.problems import ParseError
from mtasts.core.tlsrpt_report import DEFAULT_LIMITS, ReportLimits, parse_report
from mtasts.report.ingest import utc_now
from mtasts.store.store import ReportStore

__all__ = ["ACCEPTED_TYPES", "EndpointSettings", "RateLimiter", "ReportServer", "make_app", "parse_domains"]

log = logging.getLogger(__name__)

ACCEPTED_TYPES: Final = frozenset({"application/tlsrpt+gzip", "application/tlsrpt+json"})


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """Limits and policy of the endpoint; all are constructor arguments, none is global."""

    max_body: int = 4 * 1024 * 1024
    rate_per_minute: float = 60.0
    burst: int = 20
    allowed_domains: frozenset[str] | None = None
    limits: ReportLimits = DEFAULT_LIMITS
    trust_proxy_headers: bool = False
    forwarded_allow_ips: tuple[str, ...] = field(default=("127.0.0.1",))

    def __post_init__(self) -> None:
        if self.max_body < 1 or self.burst < 1 or self.rate_per_minute <= 0:
            raise ValueError("max_body, burst and rate_per_minute must be positive")
        if self.allowed_domains is not None:
            object.__setattr__(
                self, "allowed_domains", frozenset(d.strip().rstrip(".").lower() for d in self.allowed_domains)
            )


class RateLimiter:
    """Token buckets per client, sans I/O: the caller passes the time (monotonic seconds)."""

    def __init__(self, rate_per_minute: float, burst: int, *, max_clients: int = 100_000) -> None:
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str, now: float) -> float:
        """0.0 when ``client`` may go on now, else the seconds to wait."""
        tokens, last = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._remember(client, (tokens - 1.0, now))
            return 0.0
        self._remember(client, (tokens, now))
        return (1.0 - tokens) / self._rate

    def _remember(self, client: str, state: tuple[float, float]) -> None:
        if client not in self._buckets and len(self._buckets) >= self._max_clients:
            # forget the stalest half; a full bucket is what a forgotten client gets back
            for stale in sorted(self._buckets, key=lambda c: self._buckets[c][1])[: self._max_clients // 2]:
                del self._buckets[stale]
        self._buckets[client] = state


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def make_app(
    store: ReportStore,
    settings: EndpointSettings = EndpointSettings(),
    *,
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] | None = None,
) -> Starlette:
    """The endpoint as an ASGI app over an open ``store``."""
    limiter = RateLimiter(settings.rate_per_minute, settings.burst)
    ticks = monotonic or time.monotonic

    async def receive_report(request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "http.method", "send reports with POST (RFC 8460 §5.4)", {"Allow": "POST"})
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in ACCEPTED_TYPES:
            return _error(
                415,
                "http.content_type",
                f"Content-Type {media_type or '(none)'!r} is not application/tlsrpt+gzip or application/tlsrpt+json",
            )
        client = request.client.host if request.client else "unknown"
        wait = limiter.allow(client, ticks())
        if wait:
            return _error(
                429, "http.rate_limited", "too many reports from this client", {"Retry-After": str(int(wait) + 1)}
            )
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > settings.max_body):
            return _error(413, "http.too_large", f"the body is larger than {settings.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > settings.max_body:
                    return _error(413, "http.too_large", f"the body is larger than {settings.max_body} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            report = parse_report(b"".join(chunks), settings.limits)
        except ParseError as exc:
            return _error(400, exc.code, exc.message)
        if settings.allowed_domains is not None:
            outside = sorted({p.policy_domain or "(none)" for p in report.policies} - settings.allowed_domains)
            if outside or not report.policies:
                return _error(
                    403,
                    "report.domain.not_accepted",
                    f"this endpoint takes no reports for {', '.join(outside) or 'reports without a policy'}",
                )
        try:
            (result,) = await asyncio.to_thread(store.add_reports, [report], source=f"https:{client}", now=clock())
        except SQLAlchemyError:
            log.exception("cannot store a report from %s", client)
            return _error(503, "store.unavailable", "the report store is unavailable; send the report again later")
        return JSONResponse({"stored": result.stored, "id": result.key}, status_code=201)

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "http.internal", "internal error")

    return Starlette(
        routes=[Route("/{path:path}", receive_report, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])],
        exception_handlers={Exception: on_error},
    )


class ReportServer:
    """The endpoint served by uvicorn over TLS. Nothing happens until :meth:`start`."""

    def __init__(
        self,
        store: ReportStore,
        *,
        host: str = "127.0.0.1",
        port: int = 8443,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        settings: EndpointSettings = EndpointSettings(),
    ) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.certfile = certfile
        self.keyfile = keyfile
        self.settings = settings
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._socket is None:
            raise RuntimeError("the server is not started")
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Open the store, bind, and serve in the background; returns when accepting connections."""
        await asyncio.to_thread(self.store.open)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(
            make_app(self.store, self.settings),
            ssl_certfile=self.certfile,
            ssl_keyfile=self.keyfile,
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
            proxy_headers=self.settings.trust_proxy_headers,
            forwarded_allow_ips=list(self.settings.forwarded_allow_ips),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.01)

    async def serve_forever(self) -> None:
        if self._task is None:
            await self.start()
        assert self._task is not None
        await self._task

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None
        await asyncio.to_thread(self.store.close)

    async def __aenter__(self) -> ReportServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def parse_domains(values: Iterable[str] | None) -> frozenset[str] | None:
    """``--allow-domain`` values (repeatable, comma-separated) as a set, ``None`` when not given."""
    if not values:
        return None
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())

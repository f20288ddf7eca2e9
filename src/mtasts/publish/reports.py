"""The RFC 8460 §5.4 report endpoint inside the policy host (``[report]`` of the configuration).

A small deployment then runs one service: senders fetch the policy from
``https://mta-sts.<domain>/.well-known/mta-sts.txt`` and post their TLS reports to
``https://mta-sts.<domain>/v1/report`` (the ``rua`` of the ``_smtp._tls`` record), on the same
listeners with the same certificates. The endpoint answers on **every served policy host name**
(and only on those: a name the host has no certificate for gets no report endpoint either),
at one path; every other request keeps the policy host's serving rules.

What a report goes through is :mod:`mtasts.report.server`'s endpoint, not a copy of it: its
ASGI app (:meth:`~mtasts.report.server.ReportEndpoint.app`, the same checks, limits, parse
workers, body budget and access line as ``mtasts report serve``) is called here through a
small ASGI bridge over :mod:`mtasts.net.http11`. The policy host bounds what uvicorn and
the endpoint's connection guard bound in ``report serve``: connections (``[server]`` caps),
the request head (``max_header_bytes``, ``header_timeout``) and the body's pace: no byte for
``body_timeout`` seconds, or slower than ``min_body_rate`` bytes a second once
``body_timeout`` has passed, gets ``408`` and the connection closed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message

from mtasts.net.http11 import BodyIncomplete, HttpRequest, HttpResponse
from mtasts.publish.config import ReportAccept, ReportSettings

if TYPE_CHECKING:
    from mtasts.report.server import EndpointSettings

__all__ = ["ReportRoute", "call_asgi", "endpoint_settings"]

# headers the HTTP/1.1 writer sets itself (http11.serve_http); the app's copies are dropped
_OWN_HEADERS = frozenset({"content-length", "connection", "date", "server", "transfer-encoding"})


def endpoint_settings(report: ReportSettings) -> EndpointSettings:
    """The :class:`~mtasts.report.server.EndpointSettings` of ``[report]`` (the rest: defaults)."""
    from mtasts.report.server import EndpointSettings  # noqa: PLC0415 -- Starlette loads only with [report]

    return EndpointSettings(
        path=report.path,
        max_body=report.max_body,
        rate_per_minute=report.rate_per_minute,
        burst=report.burst,
        body_timeout=report.body_timeout,
        min_body_rate=report.min_body_rate,
        parse_workers=report.parse_workers,
    )


class ReportRoute:
    """Where the policy host sends ``[report] path``: ``app_for`` gives the endpoint's app for an
    allow-list of policy domains (``None``: any); :meth:`allow` sets the list when the served
    configuration changes (``accept = "configured"``: the configured domains)."""

    def __init__(self, settings: ReportSettings, app_for: Callable[[frozenset[str] | None], ASGIApp]) -> None:
        self.settings = settings
        self.path = settings.path
        self._app_for = app_for
        self._app = app_for(None) if settings.accept is ReportAccept.ANY else app_for(frozenset())

    def allow(self, domains: frozenset[str]) -> None:
        """The configured domains, after a start or a reload; ``accept = "any"`` ignores them."""
        if self.settings.accept is ReportAccept.CONFIGURED:
            self._app = self._app_for(domains)

    async def answer(self, request: HttpRequest) -> HttpResponse:
        label = (request.server_name or "").removeprefix("mta-sts.")
        return await call_asgi(
            self._app,
            request,
            body_timeout=self.settings.body_timeout,
            min_body_rate=self.settings.min_body_rate,
            label=label,
        )


def _error(status: int, code: str, message: str, label: str) -> HttpResponse:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return HttpResponse(status, body, (("Content-Type", "application/json"),), close=True, label=label)


async def call_asgi(
    app: ASGIApp, request: HttpRequest, *, body_timeout: float, min_body_rate: float, label: str = ""
) -> HttpResponse:
    """Answer ``request`` with an ASGI ``app`` (HTTP scope, one request): the body is handed over
    chunk by chunk as the app asks for it, within the pace bounds (a body too slow: ``408``);
    the app's response is collected (the endpoint's answers are small JSON documents)."""
    target = request.target
    path, _, query = target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": query.encode("latin-1", "replace"),
        "root_path": "",
        "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in request.headers],
        "client": (request.client, 0),
        "server": (request.server_name or "", 443),
        "state": {},
    }
    started = time.monotonic()
    received = 0
    ended = request.receive is None
    failure: tuple[int, str, str] | None = None  # the answer instead of the app's: status, code, message

    async def receive() -> Message:
        nonlocal received, ended, failure
        if ended or failure is not None or request.receive is None:
            if not ended and failure is None:
                ended = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.disconnect"}
        try:
            chunk = await request.receive(body_timeout)
        except TimeoutError:
            failure = 408, "http.body_timeout", f"no byte of the body for {body_timeout:g} s"
            return {"type": "http.disconnect"}
        except BodyIncomplete as exc:
            failure = 400, "http.bad_request", str(exc) or "the body ended early"
            return {"type": "http.disconnect"}
        received += len(chunk)
        elapsed = time.monotonic() - started
        if chunk and elapsed > body_timeout and received < min_body_rate * elapsed:
            failure = 408, "http.body_timeout", f"the body arrives slower than {min_body_rate:g} bytes/s"
            return {"type": "http.disconnect"}
        if not chunk:
            ended = True
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    status = 500
    headers: list[tuple[str, str]] = []
    parts: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for name, value in message.get("headers", []):
                text = name.decode("latin-1")
                if text.lower() not in _OWN_HEADERS:
                    headers.append((text, value.decode("latin-1")))
        elif message["type"] == "http.response.body":
            parts.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    if failure is not None:
        return _error(*failure, label)
    # a request with a body closes its connection after the answer (http11.serve_http)
    return HttpResponse(status, b"".join(parts), tuple(headers), close=True, label=label)

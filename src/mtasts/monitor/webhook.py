"""A webhook: one JSON document POSTed to a URL, retried with backoff, bounded in every way.

The retry rule is pure (:class:`RetryPolicy`: the waits between attempts, doubling to a cap);
what counts as worth retrying is a table (connection trouble, a timeout, 408, 429 and 5xx; a
4xx other than those is the receiver refusing the document, and sending it again changes
nothing). Sleeping is injected, so a test runs every retry without waiting.

The request is HTTP/1.1 through h11 over an asyncio stream, TLS verified (system trust or the CA
file given); one attempt is bounded by ``timeout``, the response read is at most 64 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import h11

from mtasts._version import __version__

__all__ = ["DEFAULT_RETRY", "RetryPolicy", "WebhookError", "WebhookResult", "WebhookTarget", "post_json"]

_MAX_RESPONSE: Final = 64 * 1024
_RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_USER_AGENT: Final = f"mtasts/{__version__} (+monitor webhook)"

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` in all; the wait before attempt n+1 is ``first_delay × factor^(n-1)``, at most
    ``max_delay``: 1, 2, 4 s by default, 7 s of waiting in all, within one run."""

    attempts: int = 4
    first_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 20:
            raise ValueError("attempts must be 1 to 20")

    def delays(self) -> tuple[float, ...]:
        """The waits between attempts (one fewer than the attempts)."""
        return tuple(min(self.first_delay * self.factor**n, self.max_delay) for n in range(self.attempts - 1))


DEFAULT_RETRY: Final = RetryPolicy()


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where to POST: an ``http://`` or ``https://`` URL, checked when built."""

    url: str
    ca_file: Path | None = None
    timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()
    host: str = field(init=False)
    port: int = field(init=False)
    tls: bool = field(init=False)
    target: str = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{self.url!r} is not an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("put no credentials in the webhook URL (they would show in logs)")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{self.url!r}: {exc}") from exc
        tls = parts.scheme == "https"
        object.__setattr__(self, "host", parts.hostname)
        object.__setattr__(self, "port", port or (443 if tls else 80))
        object.__setattr__(self, "tls", tls)
        object.__setattr__(self, "target", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What the attempts came to: ``status`` of the last answer (None: no answer), one line per attempt."""

    delivered: bool
    status: int | None
    attempts: tuple[str, ...]


class WebhookError(Exception):
    """Every attempt failed; ``result`` says how each went."""

    def __init__(self, result: WebhookResult) -> None:
        super().__init__("; ".join(result.attempts))
        self.result = result


class _Retryable(Exception):
    pass


async def post_json(
    target: WebhookTarget, body: bytes, *, retry: RetryPolicy = DEFAULT_RETRY, sleep: Sleep = asyncio.sleep
) -> WebhookResult:
    """POST ``body`` (JSON) to ``target`` until a 2xx answer or the attempts run out (then
    :class:`WebhookError`). A 4xx that is not worth repeating stops at once."""
    delays = retry.delays()
    lines: list[str] = []
    status: int | None = None
    context = _context(target.ca_file) if target.tls else None
    for attempt in range(retry.attempts):
        try:
            async with asyncio.timeout(target.timeout):
                status = await _post_once(target, body, context)
        except TimeoutError:
            status, line = None, f"attempt {attempt + 1}: no answer within {target.timeout:g} s"
        except (OSError, ssl.SSLError, h11.ProtocolError, _Retryable) as exc:
            status, line = None, f"attempt {attempt + 1}: {_describe(exc)}"
        else:
            line = f"attempt {attempt + 1}: HTTP {status}"
            if 200 <= status < 300:
                lines.append(line)
                return WebhookResult(True, status, tuple(lines))
            if status not in _RETRY_STATUSES:
                lines.append(line + " (not retried: the receiver refuses the document)")
                break
        lines.append(line)
        if attempt < len(delays):
            await sleep(delays[attempt])
    raise WebhookError(WebhookResult(False, status, tuple(lines)))


def _context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _post_once(target: WebhookTarget, body: bytes, context: ssl.SSLContext | None) -> int:
    reader, writer = await asyncio.open_connection(
        target.host, target.port, ssl=context, server_hostname=target.host if context else None
    )
    try:
        connection = h11.Connection(h11.CLIENT)
        host = f"[{target.host}]" if ":" in target.host else target.host
        default_port = 443 if target.tls else 80
        authority = host if target.port == default_port else f"{host}:{target.port}"
        headers: list[tuple[str, str]] = [
            ("Host", authority),
            ("User-Agent", _USER_AGENT),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *target.headers,
        ]
        writer.write(connection.send(h11.Request(method="POST", target=target.target, headers=headers)) or b"")
        writer.write(connection.send(h11.Data(data=body)) or b"")
        writer.write(connection.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        received = 0
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                chunk = await reader.read(16 * 1024)
                received += len(chunk)
                if received > _MAX_RESPONSE:
                    raise _Retryable("the answer is larger than 64 KiB")
                connection.receive_data(chunk)
                continue
            if isinstance(event, h11.Response):
                return int(event.status_code)
            if isinstance(event, h11.ConnectionClosed):
                raise _Retryable("the server closed the connection without answering")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__

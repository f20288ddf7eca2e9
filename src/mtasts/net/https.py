"""The HTTPS policy fetch (RFC 8461 §3.3): our own resolver for the address, a compliant TLS
handshake, one GET over HTTP/1.1 (h11), no redirects, a 64 KiB cap, one deadline for all."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

import h11

from mtasts._version import __version__
from mtasts.core.fetch import (
    MAX_POLICY_BYTES,
    POLICY_PATH,
    FetchFailureKind,
    check_response_head,
    policy_host,
    policy_url,
)
from mtasts.core.policy import Policy, lint_policy, parse_policy
from mtasts.core.problems import ParseError, Problem
from mtasts.net._streams import Streams, close_quietly, open_stream
from mtasts.net.dns import DnsClient, Lookup, LookupStatus
from mtasts.net.settings import NetworkSettings
from mtasts.net.tls import TlsFailureKind, TlsResult, inspect_tls

__all__ = ["PolicyFetch", "fetch_policy"]

_READ_CHUNK = 16 * 1024
_USER_AGENT = f"mtasts/{__version__} (+MTA-STS policy fetch)"


@dataclass(frozen=True, slots=True)
class PolicyFetch:
    """Everything about one fetch. ``policy`` is set when it succeeded, ``failure`` when not."""

    domain: str
    host: str
    url: str
    addresses: Lookup[str]
    address: str | None = None
    tls: TlsResult | None = None
    status: int | None = None
    content_type: str | None = None
    size: int | None = None
    policy: Policy | None = None
    problems: tuple[Problem, ...] = ()
    failure: FetchFailureKind | None = None
    detail: str = ""
    elapsed: float = 0.0
    body: bytes | None = field(default=None, repr=False)
    internal_error: str = ""  # the fetch ended in an unexpected error of mtasts itself


@dataclass(slots=True)
class _Progress:
    """How far a fetch got, for the report when the deadline cuts it short."""

    address: str | None = None
    tls: TlsResult | None = None


class _Failed(Exception):
    def __init__(self, kind: FetchFailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


async def fetch_policy(domain: str, dns: DnsClient, settings: NetworkSettings, *, now: datetime) -> PolicyFetch:
    """Fetch and parse the policy of ``domain``; never raises for network trouble."""
    start = time.monotonic()
    host = policy_host(domain)
    url = policy_url(domain, settings.https_port)
    addresses = await dns.addresses(host)
    result = PolicyFetch(domain, host, url, addresses)
    if addresses.status is not LookupStatus.FOUND:
        if addresses.refused:  # it resolves, but only to addresses this check must not contact
            kind = FetchFailureKind.CONNECT
        elif addresses.status is LookupStatus.ABSENT:
            kind = FetchFailureKind.UNRESOLVABLE
        else:
            kind = FetchFailureKind.LOOKUP_FAILED
        return replace(result, failure=kind, detail=f"{host}: {addresses.detail}", elapsed=time.monotonic() - start)
    progress = _Progress()
    try:
        async with asyncio.timeout(settings.timeout):
            return await _fetch(result, settings, now, start, progress)
    except TimeoutError:
        detail = f"no complete answer from {host} within {settings.timeout:g} s"
        return replace(
            result,
            address=progress.address,
            tls=progress.tls,
            failure=FetchFailureKind.TIMEOUT,
            detail=detail,
            elapsed=time.monotonic() - start,
        )


async def _fetch(
    result: PolicyFetch, settings: NetworkSettings, now: datetime, start: float, progress: _Progress
) -> PolicyFetch:
    host = result.host
    errors: list[str] = []
    for address in result.addresses.values:
        progress.address = address

        async def connect(address: str = address) -> Streams:
            return await open_stream(
                address, settings.https_port, refuse_non_public=not settings.allow_private, limit=_READ_CHUNK * 2
            )

        try:
            tls, opened = await inspect_tls(connect, host, settings.ca_file, settings.timeout, now)
        except OSError as exc:
            errors.append(f"{address}: {exc.strerror or exc}")
            continue
        progress.tls = tls
        if opened is None:
            if tls.failure is TlsFailureKind.TIMEOUT:
                kind = FetchFailureKind.TIMEOUT
            elif tls.failure in (TlsFailureKind.HANDSHAKE, TlsFailureKind.VERSION_TOO_OLD):
                kind = FetchFailureKind.TLS
            else:
                kind = FetchFailureKind.TLS_CERTIFICATE
            return replace(
                result, address=address, tls=tls, failure=kind, detail=tls.detail, elapsed=time.monotonic() - start
            )
        try:
            status, content_type, body = await _get(opened, host, settings.https_port)
        except _Failed as failed:
            await close_quietly(opened[1], abort=True)
            return replace(
                result,
                address=address,
                tls=tls,
                failure=failed.kind,
                detail=failed.detail,
                elapsed=time.monotonic() - start,
            )
        except BaseException:
            await close_quietly(opened[1], abort=True)
            raise
        await close_quietly(opened[1])
        policy, problems = lint_policy(body)  # the owner's reading: every problem
        if policy is None:
            policy = _sender_reading(body)
        fetched = replace(
            result,
            address=address,
            tls=tls,
            status=status,
            content_type=content_type,
            size=len(body),
            policy=policy,
            problems=problems,
            body=body,
            elapsed=time.monotonic() - start,
        )
        if policy is None:
            return replace(fetched, failure=FetchFailureKind.SYNTAX, detail="the policy file is not valid")
        return fetched
    detail = "cannot connect: " + "; ".join(errors)
    return replace(result, failure=FetchFailureKind.CONNECT, detail=detail, elapsed=time.monotonic() - start)


def _sender_reading(body: bytes) -> Policy | None:
    """The policy as a compliant sender reads it, when the owner's lint rejected the file: lint
    is stricter (a malformed repeat of a field is an error for the owner, ignored by senders)."""
    try:
        return parse_policy(body)
    except ParseError:
        return None


async def _get(streams: Streams, host: str, port: int) -> tuple[int, str | None, bytes]:
    reader, writer = streams
    connection = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_READ_CHUNK)
    authority = host if port == 443 else f"{host}:{port}"
    request = h11.Request(
        method="GET",
        target=POLICY_PATH,
        headers=[
            ("Host", authority),
            ("User-Agent", _USER_AGENT),
            ("Accept", "text/plain"),
            ("Connection", "close"),
        ],
    )
    writer.write(connection.send(request) + connection.send(h11.EndOfMessage()))
    await writer.drain()
    status = 0
    content_type: str | None = None
    body = bytearray()
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise _Failed(FetchFailureKind.PROTOCOL, f"invalid HTTP response: {exc}") from exc
        if event is h11.NEED_DATA:
            try:
                chunk = await reader.read(_READ_CHUNK)
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise _Failed(FetchFailureKind.PROTOCOL, f"the connection failed while reading: {exc}") from exc
            connection.receive_data(chunk)
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers}
            content_type = headers.get("content-type")
            verdict = check_response_head(status, headers)
            if verdict is not None:
                raise _Failed(*verdict)
        elif isinstance(event, h11.InformationalResponse):
            continue
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_POLICY_BYTES:
                raise _Failed(FetchFailureKind.TOO_LARGE, f"the body is larger than {MAX_POLICY_BYTES} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return status, content_type, bytes(body)
        else:  # ConnectionClosed before the end of the message
            raise _Failed(FetchFailureKind.PROTOCOL, "the server closed the connection before the end of the response")

"""Issue #8: the lab's TLS must not lose a single handshake on uvloop.

The lab upgraded each accepted HTTPS connection with ``StreamWriter.start_tls``; a ClientHello
that arrived before the upgrade was read as plain bytes and the handshake died on its timeout
(under uvloop, with client and server on one loop, every time). These tests make many real
handshakes (stdlib ``ssl`` through asyncio streams, certificate and host name verified) on the
suite's loop, uvloop, and allow no failure. They count failures; they time nothing.
"""

from __future__ import annotations

import asyncio
import ssl
from concurrent.futures import ThreadPoolExecutor

import pytest

from mtasts.lab import Lab
from mtasts.lab.testing import LabController
from tests.lab.helpers import https_request

pytestmark = pytest.mark.lab

SEQUENTIAL = 1000
CONCURRENT = 200
STARTTLS_SEQUENTIAL = 300
_PATIENCE = 30.0  # per connection: far beyond any healthy handshake, so only a stall trips it
_SCENARIOS = ["enforce-ok", "testing-ok", "none-ok", "wildcard-ok"]


def _context(lab: Lab) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(lab.ca_file))


def _policy_hosts(lab: Lab) -> list[str]:
    return [f"mta-sts.{lab.domain(name)}" for name in _SCENARIOS] + [lab.plan.sink_host]


async def _handshake(lab: Lab, host: str, context: ssl.SSLContext) -> str | None:
    """One verified handshake with ``host``; ``None`` when it worked, else what went wrong."""
    try:
        async with asyncio.timeout(_PATIENCE):
            _, writer = await asyncio.open_connection(
                lab.address(host), lab.https_port, ssl=context, server_hostname=host
            )
    except (OSError, TimeoutError) as exc:
        return f"{host}: {exc!r}"
    writer.transport.abort()
    return None


async def _fetch(lab: Lab, host: str, context: ssl.SSLContext) -> str | None:
    """One verified handshake and one GET of the policy; ``None`` when a 200 came back."""
    try:
        async with asyncio.timeout(_PATIENCE):
            reader, writer = await asyncio.open_connection(
                lab.address(host), lab.https_port, ssl=context, server_hostname=host
            )
            try:
                writer.write(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                status = await reader.readline()
            finally:
                writer.transport.abort()
    except (OSError, TimeoutError) as exc:
        return f"{host}: {exc!r}"
    return None if status.startswith(b"HTTP/1.1 200 ") else f"{host}: {status!r}"


async def test_sequential_https_handshakes_all_succeed() -> None:
    async with Lab(_SCENARIOS) as lab:
        hosts, context = _policy_hosts(lab), _context(lab)
        for i in range(SEQUENTIAL):
            failure = await _handshake(lab, hosts[i % len(hosts)], context)
            assert failure is None, f"handshake {i + 1} of {SEQUENTIAL} failed: {failure}"


async def test_concurrent_https_handshakes_all_succeed() -> None:
    async with Lab(_SCENARIOS) as lab:
        hosts, context = _policy_hosts(lab), _context(lab)
        hosts = [h for h in hosts if h != lab.plan.sink_host]  # the sink has no policy to GET
        failures = await asyncio.gather(*(_fetch(lab, hosts[i % len(hosts)], context) for i in range(CONCURRENT)))
        assert [f for f in failures if f is not None] == []


async def _starttls(lab: Lab, host: str, context: ssl.SSLContext) -> str | None:
    """EHLO, STARTTLS, a verified handshake, then NOOP over TLS; ``None`` when all worked."""
    try:
        async with asyncio.timeout(_PATIENCE):
            reader, writer = await asyncio.open_connection(lab.address(host), lab.smtp_port)
            try:
                await reader.readline()
                writer.write(b"EHLO client.test\r\n")
                while not (await reader.readline()).startswith(b"250 "):
                    pass
                writer.write(b"STARTTLS\r\n")
                ready = await reader.readline()
                if not ready.startswith(b"220 "):
                    return f"{host}: {ready!r}"
                await writer.start_tls(context, server_hostname=host)
                writer.write(b"NOOP\r\n")
                reply = await reader.readline()
            finally:
                writer.transport.abort()
    except (OSError, TimeoutError) as exc:
        return f"{host}: {exc!r}"
    return None if reply.startswith(b"250 ") else f"{host}: {reply!r}"


async def test_sequential_starttls_handshakes_all_succeed() -> None:
    async with Lab(["enforce-ok", "testing-ok"]) as lab:
        hosts = [f"mx1.{lab.domain('enforce-ok')}", f"mx1.{lab.domain('testing-ok')}"]
        context = _context(lab)
        for i in range(STARTTLS_SEQUENTIAL):
            failure = await _starttls(lab, hosts[i % 2], context)
            assert failure is None, f"STARTTLS {i + 1} of {STARTTLS_SEQUENTIAL} failed: {failure}"


def test_concurrent_blocking_clients_against_the_lab_thread(lab: LabController) -> None:
    """As ``curl`` against ``mtasts lab up``: stdlib ``ssl`` + ``http.client`` in threads, the lab
    on its own uvloop in the controller's thread."""
    hosts = [f"mta-sts.{lab.domain(name)}" for name in _SCENARIOS]

    def fetch(i: int) -> str | None:
        host = hosts[i % len(hosts)]
        try:
            status, _, _ = https_request(lab, host, timeout=_PATIENCE)
        except OSError as exc:
            return f"{host}: {exc!r}"
        return None if status == 200 else f"{host}: status {status}"

    with ThreadPoolExecutor(max_workers=25) as pool:
        failures = [f for f in pool.map(fetch, range(CONCURRENT)) if f is not None]
    assert failures == []

"""The STARTTLS prober against a small scripted MX: what the lab's MX servers do not do."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mtasts.net.settings import NetworkSettings
from mtasts.net.smtp import SmtpFailureKind, probe_mx
from tests.net.pki import TestCA

HOST = "mx.probe.test"


async def _refuses_ehlo_inside_tls(
    context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Banner, EHLO with STARTTLS, a good TLS handshake, then 421 to the EHLO inside TLS."""
    try:
        writer.write(b"220 mx.probe.test ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-mx.probe.test\r\n250 STARTTLS\r\n")
        await reader.readline()
        writer.write(b"220 go ahead\r\n")
        await writer.drain()
        await writer.start_tls(context)
        await reader.readline()
        writer.write(b"421 4.3.2 shutting down\r\n")
        await writer.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


@pytest.fixture
async def mx(tmp_path: Path) -> AsyncIterator[NetworkSettings]:
    ca = TestCA(tmp_path)
    context = ca.server_context([HOST])
    server = await asyncio.start_server(lambda r, w: _refuses_ehlo_inside_tls(context, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield NetworkSettings(ca_file=ca.ca_file, timeout=2.0, smtp_port=port)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_server_that_fails_ehlo_inside_tls_takes_no_mail(mx: NetworkSettings) -> None:
    probe = await probe_mx(HOST, "127.0.0.1", mx, now=datetime.now(UTC))
    assert probe.tls is not None
    assert probe.tls.ok  # the certificate and the handshake were fine...
    assert probe.failure is SmtpFailureKind.PROTOCOL  # ...but no mail goes through
    assert not probe.ok
    assert probe.detail.startswith("after STARTTLS: EHLO was refused: 421")

"""The HTTPS fetch vectors of ../shared/vectors against the real fetcher: real DNS (the lab's
nameserver with a zone made for the vectors), real TLS (certificates from a test CA), a real
HTTP server that answers exactly what each vector describes."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from mtasts.core.fetch import MAX_POLICY_BYTES, FetchFailureKind
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record
from mtasts.net.dns import DnsClient
from mtasts.net.https import fetch_policy
from mtasts.net.settings import NetworkSettings
from tests.conftest import vector_params
from tests.net.pki import TestCA

ZONE = "fetch.test"
EXTRA = ("chunked", "garbage", "early-close")
GOOD_POLICY = b"version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"


def _domain(vid: str) -> str:
    return f"{vid}.{ZONE}"


@dataclass
class FetchWorld:
    settings: NetworkSettings
    dns: DnsClient
    answers: dict[str, dict[str, Any]]


class ScriptedHttps:
    """Answers each request as its vector says (chosen by the Host header); picks the
    certificate by SNI."""

    def __init__(self, ca: TestCA, vectors: list[dict[str, Any]]) -> None:
        self.vectors = {f"mta-sts.{_domain(v['id'])}": v for v in vectors}
        self.extra: dict[str, bytes] = {}
        self.default = ca.server_context(
            [f"*.{_domain(v['id'])}" for v in vectors] + [f"*.{name}.extra.{ZONE}" for name in EXTRA]
        )
        self.contexts: dict[str, ssl.SSLContext] = {}
        for host, vector in self.vectors.items():
            tls = vector["response"].get("tls")
            domain = host.removeprefix("mta-sts.")
            if tls == "expired":
                self.contexts[host] = ca.server_context([host], days=(-60, -1))
            elif tls == "cn-only":
                self.contexts[host] = ca.server_context([], common_name=host)
            elif tls in ("name-mismatch", "ok"):
                names = [n.replace("example.com", domain) for n in vector["response"]["cert_names"]]
                self.contexts[host] = ca.server_context(names)
        self.default.sni_callback = self._sni
        self.server: asyncio.Server | None = None
        self.port = 0

    def _sni(self, connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        if name in self.contexts:
            connection.context = self.contexts[name]

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.default)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            host = next(
                (
                    line.split(":", 1)[1].strip().split(":")[0]
                    for line in head.decode().split("\r\n")
                    if line.lower().startswith("host:")
                ),
                "",
            )
            if host in self.extra:
                writer.write(self.extra[host])
            else:
                await self._answer(writer, self.vectors[host]["response"])
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, KeyError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
        if "delay_seconds" in response:
            await asyncio.sleep(response["delay_seconds"])
        if "body" in response:
            body = response["body"].encode()
        else:  # the vectors' convention: no body given means a valid policy ("GOOD")
            body = b"x" * response["body_size"] if "body_size" in response else GOOD_POLICY
        status = response.get("status", 200)
        lines = [f"HTTP/1.1 {status} Status", "Connection: close"]
        if response.get("content_type", "text/plain") is not None:
            lines.append(f"Content-Type: {response.get('content_type', 'text/plain')}")
        if "location" in response:
            lines.append(f"Location: {response['location']}")
        lines.append(f"Content-Length: {response.get('content_length', len(body))}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FetchWorld]:
    vectors = [p.values[0] for p in vector_params("sts-fetch-vectors.json") if p.values[0] is not None]
    ca = TestCA(tmp_path_factory.mktemp("fetch-ca"))
    server = ScriptedHttps(ca, vectors)
    await server.start()
    records = [Record(f"mta-sts.{_domain(v['id'])}", "A", "127.0.0.1") for v in vectors if "dns" not in v["response"]]
    records += [Record(f"mta-sts.{name}.extra.{ZONE}", "A", "127.0.0.1") for name in EXTRA]
    dns_server = DnsServer(Zone(ZONE, records), "127.0.0.1")
    await dns_server.start()
    settings = NetworkSettings(
        nameserver=("127.0.0.1", dns_server.port), ca_file=ca.ca_file, timeout=1.0, https_port=server.port
    )
    fetch_world = FetchWorld(settings, DnsClient(settings), {})
    fetch_world.answers = server.extra  # type: ignore[assignment]
    try:
        yield fetch_world
    finally:
        await dns_server.stop()
        await server.stop()


def _expected_kind(response: dict[str, Any]) -> FetchFailureKind:
    """The failure a vector's response must cause, read from the response itself."""
    if "dns" in response:
        return FetchFailureKind.UNRESOLVABLE
    if "tls" in response:
        return FetchFailureKind.TLS_CERTIFICATE
    if "delay_seconds" in response:
        return FetchFailureKind.TIMEOUT
    status = response.get("status", 200)
    if 300 <= status < 400:
        return FetchFailureKind.REDIRECT
    if status != 200:
        return FetchFailureKind.HTTP_STATUS
    content_type = response.get("content_type")
    if content_type is None or content_type.split(";")[0].strip().lower() != "text/plain":
        return FetchFailureKind.CONTENT_TYPE
    if response.get("body_size", 0) > MAX_POLICY_BYTES:
        return FetchFailureKind.TOO_LARGE
    return FetchFailureKind.SYNTAX


@pytest.mark.parametrize("vector", vector_params("sts-fetch-vectors.json"))
async def test_fetch_vector(world: FetchWorld, vector: dict[str, Any]) -> None:
    result = await fetch_policy(_domain(vector["id"]), world.dns, world.settings, now=datetime.now(UTC))
    if vector["expect"] == "policy":
        assert result.failure is None, result.detail
        assert result.policy is not None
        assert result.policy.mx == ("mail.example.com",)
    else:
        assert result.policy is None
        assert result.failure is _expected_kind(vector["response"]), result.detail


async def test_chunked_body_over_the_cap_is_refused_while_reading(world: FetchWorld) -> None:
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(9)) + b"0\r\n\r\n"
    world.answers[f"mta-sts.chunked.extra.{ZONE}"] = (  # type: ignore[index]
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    result = await fetch_policy(f"chunked.extra.{ZONE}", world.dns, world.settings, now=datetime.now(UTC))
    assert result.failure is FetchFailureKind.TOO_LARGE


async def test_garbage_and_early_close_are_protocol_failures(world: FetchWorld) -> None:
    world.answers[f"mta-sts.garbage.extra.{ZONE}"] = b"SMTP 220 hello\r\n\r\n"  # type: ignore[index]
    world.answers[f"mta-sts.early-close.extra.{ZONE}"] = (  # type: ignore[index]
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\nversion: STSv1\n"
    )
    for name in ("garbage", "early-close"):
        result = await fetch_policy(f"{name}.extra.{ZONE}", world.dns, world.settings, now=datetime.now(UTC))
        assert result.failure is FetchFailureKind.PROTOCOL, result.detail

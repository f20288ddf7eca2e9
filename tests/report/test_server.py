"""The HTTPS endpoint over real TLS on loopback: good reports in, bad input out, server stays up."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from mtasts.report.server import EndpointSettings, RateLimiter, ReportServer
from mtasts.store.store import ReportStore
from tests.core.test_tlsrpt_report import gzip_bomb
from tests.report.test_mail import BODY, REPORT

GZIP = {"Content-Type": "application/tlsrpt+gzip"}
JSON = {"Content-Type": "application/tlsrpt+json"}


@pytest.fixture
async def start_server(tmp_path: Path, report_cert: trustme.LeafCert) -> AsyncIterator[Callable[..., Any]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    report_cert.cert_chain_pems[0].write_to_path(str(cert))
    for extra in report_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    report_cert.private_key_pem.write_to_path(str(key))
    servers: list[ReportServer] = []

    async def start(**settings: Any) -> tuple[ReportServer, str]:
        store = ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        server = ReportServer(
            store, host="127.0.0.1", port=0, certfile=cert, keyfile=key, settings=EndpointSettings(**settings)
        )
        await server.start()
        servers.append(server)
        _host, port = server.address
        return server, f"https://localhost:{port}/tlsrpt"

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def client(client_ssl: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=client_ssl, timeout=30) as http:
        yield http


def stored(tmp_path: Path) -> int:
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        return store.count()


async def test_post_gzip_and_json_reports_returns_201_once_stored(
    start_server: Callable[..., Any], client: httpx.AsyncClient, tmp_path: Path
) -> None:
    _, url = await start_server()
    first = await client.post(url, content=gzip.compress(BODY), headers=GZIP)
    assert first.status_code == 201
    assert first.json()["stored"] is True
    again = await client.post(url, content=BODY, headers={"Content-Type": "application/tlsrpt+json; charset=utf-8"})
    assert again.status_code == 201
    assert again.json() == {"stored": False, "id": first.json()["id"]}
    assert stored(tmp_path) == 1


async def raw_request(url: str, head: bytes, body_chunks: list[bytes], context: ssl.SSLContext) -> bytes:
    """Speak HTTP/1.1 by hand (to declare sizes or stream chunks as an attacker would)."""
    port = int(url.split(":")[2].split("/", maxsplit=1)[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    try:
        writer.write(head)
        await writer.drain()
        for chunk in body_chunks:
            writer.write(chunk)
            await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_bad_input_gives_clear_errors_stores_nothing_and_the_server_stays_up(
    start_server: Callable[..., Any], client: httpx.AsyncClient, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    _, url = await start_server(max_body=1024 * 1024, burst=100)
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (gzip_bomb(1 << 30), GZIP, 400, "report.gzip.too_large"),
        (b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON, 400, "report.json.depth"),
        (BODY.replace(b"Example Sender", b"Example \xff"), JSON, 400, "report.json.utf8"),
        (gzip.compress(BODY)[:-20], GZIP, 400, "report.gzip.truncated"),
        (BODY, {"Content-Type": "application/json"}, 415, "http.content_type"),
        (BODY, {"Content-Type": "text/plain"}, 415, "http.content_type"),
        (b"", JSON, 400, "report.empty"),
    ]
    for body, headers, status, code in cases:
        response = await client.post(url, content=body, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), code
        assert response.json()["error"]["message"]
    wrong_method = await client.get(url)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"

    # 100 MB declared: refused from the headers, before a byte of body is read
    head = (
        b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/tlsrpt+json\r\n"
        b"Content-Length: 104857600\r\n\r\n"
    )
    answer = await raw_request(url, head, [], client_ssl)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b"http.too_large" in answer

    # chunked, no size declared: cut off once the cap is passed while reading
    head = (
        b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/tlsrpt+json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * (64 * 1024))
    answer = await raw_request(url, head, [chunk] * 20, client_ssl)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]

    assert stored(tmp_path) == 0
    good = await client.post(url, content=gzip.compress(BODY), headers=GZIP)
    assert good.status_code == 201
    assert stored(tmp_path) == 1


async def test_per_client_rate_limit(start_server: Callable[..., Any], client: httpx.AsyncClient) -> None:
    _, url = await start_server(burst=3, rate_per_minute=1)
    statuses = []
    for number in range(5):
        body = json.dumps({**REPORT, "report-id": f"r-{number}"}).encode()
        statuses.append((await client.post(url, content=body, headers=JSON)).status_code)
    assert statuses == [201, 201, 201, 429, 429]
    limited = await client.post(url, content=BODY, headers=JSON)
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["error"]["code"] == "http.rate_limited"


async def test_allow_list_of_policy_domains(
    start_server: Callable[..., Any], client: httpx.AsyncClient, tmp_path: Path
) -> None:
    _, url = await start_server(allowed_domains=frozenset({"Example.COM."}))
    assert (await client.post(url, content=BODY, headers=JSON)).status_code == 201
    other = json.loads(BODY)
    other["report-id"] = "r-9"
    other["policies"][0]["policy"]["policy-domain"] = "not-ours.example"
    refused = await client.post(url, content=json.dumps(other).encode(), headers=JSON)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "report.domain.not_accepted"
    assert "not-ours.example" in refused.json()["error"]["message"]
    assert stored(tmp_path) == 1


async def test_plain_http_is_not_served_on_the_tls_port(start_server: Callable[..., Any]) -> None:
    _, url = await start_server()
    async with httpx.AsyncClient() as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.post(url.replace("https://", "http://"), content=BODY, headers=JSON)


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=2)
    assert [limiter.allow("a", 0.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert limiter.allow("b", 0.0) == 0.0  # per client
    assert limiter.allow("a", 1.0) == 0.0  # one token per second came back
    small = RateLimiter(60, 1, max_clients=4)
    for number in range(10):
        small.allow(str(number), float(number))
    assert small.allow("9", 9.0) > 0  # recent clients are remembered

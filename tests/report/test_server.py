"""The HTTPS endpoint over real TLS on loopback: good reports in, bad input out, server stays up."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from mtasts.report.server import BodyBudget, EndpointSettings, FailureTally, ReportServer, _Body, sanitise
from mtasts.store.store import ReportStore
from tests.conftest import has_ipv6_loopback
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


# --- hostile clients (issue #8): slow heads and bodies, many connections, large bodies -------


async def open_tls(
    port: int, context: ssl.SSLContext, source: str = "127.0.0.2"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection from ``source`` (any 127/8 address is a distinct client on loopback)."""
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost", local_addr=(source, 0)
    )


async def answer_of(reader: asyncio.StreamReader, within: float = 15) -> bytes:
    """Everything the server sends until it closes the connection (b"" on a reset)."""
    try:
        return await asyncio.wait_for(reader.read(), within)
    except (ConnectionError, ssl.SSLError):
        return b""


def port_of(url: str) -> int:
    return int(url.split(":")[2].split("/", maxsplit=1)[0])


async def trickle(writer: asyncio.StreamWriter, data: bytes, pause: float) -> None:
    """Send ``data`` one byte at a time, as a slowloris does, until the server hangs up."""
    with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause)


HEAD = b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/tlsrpt+json\r\n"


async def test_slowloris_heads_are_closed_by_the_header_timeout_while_reports_flow(
    start_server: Callable[..., Any], client: httpx.AsyncClient, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    _, url = await start_server(header_timeout=1.0, burst=100, max_connections_per_client=100)
    slow = [await open_tls(port_of(url), client_ssl) for _ in range(50)]
    senders = [asyncio.create_task(trickle(writer, HEAD * 20, 0.2)) for _, writer in slow]
    for number in range(5):  # the attack does not stop good reports
        body = json.dumps({**REPORT, "report-id": f"during-{number}"}).encode()
        assert (await client.post(url, content=body, headers=JSON)).status_code == 201
    answers = await asyncio.gather(*(answer_of(reader) for reader, _ in slow))
    for task in senders:
        task.cancel()
    for _, writer in slow:
        writer.close()
    # closed (well before the 20 s the trickle would take) with a clear answer
    assert all(a.startswith(b"HTTP/1.1 408") and b"http.header_timeout" in a for a in answers), answers[:2]
    assert stored(tmp_path) == 5


async def test_a_body_that_stalls_or_trickles_is_closed(
    start_server: Callable[..., Any], client: httpx.AsyncClient, client_ssl: ssl.SSLContext
) -> None:
    _, url = await start_server(body_timeout=1.0, min_body_rate=1000, header_timeout=30)
    head = HEAD + b"Content-Length: 1000\r\n\r\n"
    stalled_reader, stalled = await open_tls(port_of(url), client_ssl)
    stalled.write(head + b"{")  # then nothing
    trickling_reader, trickling = await open_tls(port_of(url), client_ssl, "127.0.0.3")
    trickling.write(head)
    sender = asyncio.create_task(trickle(trickling, b" " * 999, 0.1))  # 10 bytes/s
    stalled_answer, trickled_answer = await asyncio.gather(answer_of(stalled_reader), answer_of(trickling_reader))
    sender.cancel()
    for writer in (stalled, trickling):
        writer.close()
    assert stalled_answer.startswith(b"HTTP/1.1 408")
    assert b"no byte of the body" in stalled_answer
    assert trickled_answer.startswith(b"HTTP/1.1 408")
    assert b"slower than 1000 bytes/s" in trickled_answer
    assert (await client.post(url, content=BODY, headers=JSON)).status_code == 201


async def test_sockets_that_never_start_a_handshake_are_capped_at_accept(
    start_server: Callable[..., Any], client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # a client that opens TCP connections and never sends a ClientHello holds a socket per
    # connection until the handshake deadline: capped, per client and in total, at accept
    caplog.set_level(logging.INFO, "mtasts.report.access")
    _, url = await start_server(max_connections=6, max_connections_per_client=3, handshake_timeout=30)
    port = port_of(url)
    silent = [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)) for _ in range(3)]
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
    assert await answer_of(reader, within=5) == b""  # closed at once, long before the 30 s deadline
    writer.close()
    assert "tls.too_many_handshakes" in caplog.text
    assert "this client has 3 TLS handshakes" in caplog.text

    silent += [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0)) for _ in range(3)]
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.4", 0))
    assert await answer_of(reader, within=5) == b""  # the total: 6 handshakes in progress
    writer.close()
    assert "the server has 6 TLS handshakes in progress" in caplog.text

    for _, silent_writer in silent:
        silent_writer.close()
    await asyncio.sleep(0.3)  # the silent sockets' handshakes end with their close
    assert (await client.post(url, content=BODY, headers=JSON)).status_code == 201


async def test_connections_are_capped_in_total_and_per_client(
    start_server: Callable[..., Any], client_ssl: ssl.SSLContext, report_ca: trustme.CA
) -> None:
    _, url = await start_server(max_connections=4, max_connections_per_client=2, header_timeout=30)
    port = port_of(url)
    first = [await open_tls(port, client_ssl, "127.0.0.2") for _ in range(2)]
    await asyncio.sleep(0.3)  # admitted once the server has finished the handshakes
    reader, writer = await open_tls(port, client_ssl, "127.0.0.2")
    refused = await answer_of(reader)
    writer.close()
    assert refused.startswith(b"HTTP/1.1 503")
    assert b"http.too_many_connections" in refused
    assert b"retry-after: " in refused.lower()

    # another client still gets in, up to the total
    others = [await open_tls(port, client_ssl, "127.0.0.3") for _ in range(2)]
    await asyncio.sleep(0.3)
    reader, writer = others[0]
    writer.write(HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY))
    assert (await answer_of(reader)).startswith(b"HTTP/1.1 201")
    writer.close()
    await asyncio.sleep(0.3)
    held = [*first, others[1], await open_tls(port, client_ssl, "127.0.0.4")]
    await asyncio.sleep(0.3)
    reader, writer = await open_tls(port, client_ssl, "127.0.0.5")
    assert (await answer_of(reader)).startswith(b"HTTP/1.1 503")  # 4 held: the total
    writer.close()

    for _, held_writer in held:
        held_writer.close()
    await asyncio.sleep(0.3)
    reader, writer = await open_tls(port, client_ssl, "127.0.0.4")
    writer.write(HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY))
    assert (await answer_of(reader)).startswith(b"HTTP/1.1 201")  # already stored, still 201
    writer.close()


def test_failure_tally_summarises_repeats_per_window() -> None:
    tally = FailureTally(window=60)
    assert [tally.note("store.unavailable", float(t)) for t in range(3)] == [1, 2, 3]
    tally.note("http.busy", 3.0)
    assert tally.due(59.0) == []  # the window is not over
    assert tally.due(60.0) == [("store.unavailable", 3)]  # a single failure needs no summary
    assert tally.note("store.unavailable", 61.0) == 1  # a new window


def test_sanitise_escapes_what_a_client_could_smuggle_into_a_log_line() -> None:
    assert sanitise(b'/tlsrpt\r\n2026-01-01 INFO forged "line"\\') == (
        "/tlsrpt\\x0d\\x0a2026-01-01 INFO forged \\x22line\\x22\\x5c"
    )
    assert sanitise("é") == "\\xc3\\xa9"
    assert sanitise("x" * 500, limit=10) == "x" * 10 + "..."


def test_body_budget_spools_to_disk_beyond_the_threshold_or_the_memory_budget(tmp_path: Path) -> None:
    budget = BodyBudget(memory=100, disk=1000, threshold=60, directory=tmp_path)
    small = _Body(budget, expected=None)
    assert small.add(b"a" * 50)
    assert budget.memory == 50
    other = _Body(budget, expected=None)
    assert other.add(b"b" * 55)  # would pass the memory budget (105 > 100): to disk
    assert budget.memory == 50
    assert budget.disk == 55
    assert other.path is not None
    assert small.add(b"a" * 20)  # past the threshold (70 > 60): the body moves to disk
    assert budget.memory == 0
    assert budget.disk == 125
    assert isinstance(source := small.source(), Path)
    assert source.read_bytes() == b"a" * 70
    assert not _Body(budget, expected=None).add(b"c" * 900)  # the disk budget is full
    small.release()
    other.release()
    assert (budget.memory, budget.disk) == (0, 0)
    assert list(tmp_path.iterdir()) == []


# --- through the CLI, in its own process: memory and logs are the process' own ---------------


class ServeProcess:
    """``mtasts report serve`` in a subprocess; its stderr lines are collected as they come."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"https://localhost:{port}/tlsrpt"
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def rss_mib(self) -> float:
        """The server's resident memory now (``VmRSS`` of /proc/PID/status)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return "\n".join(self.lines)


@pytest.fixture
def serve_cli(tmp_path: Path, report_cert: trustme.LeafCert) -> Iterator[Callable[..., ServeProcess]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    report_cert.cert_chain_pems[0].write_to_path(str(cert))
    for extra in report_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    report_cert.private_key_pem.write_to_path(str(key))
    started: list[ServeProcess] = []

    def start(*options: str, db: str | None = None) -> ServeProcess:
        command = [str(Path(sys.executable).parent / "mtasts"), "report", "serve", "--cert", str(cert)]
        command += ["--key", str(key), "--port", "0", "--db", db or f"sqlite:///{tmp_path / 'db.sqlite3'}", *options]
        env = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1"}
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        assert process.stderr is not None
        first = process.stderr.readline()
        found = re.search(r"https://127\.0\.0\.1:(\d+)/", first)
        if found is None:
            process.kill()
            raise AssertionError(f"the server did not start: {first}{process.stderr.read()}")
        server = ServeProcess(process, int(found.group(1)))
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


async def send_large_body(port: int, context: ssl.SSLContext, source: str) -> bytes:
    """A 4 MiB body sent in 64 KiB pieces with pauses between them."""
    size, piece = 4 * 1024 * 1024, 64 * 1024
    try:
        reader, writer = await open_tls(port, context, source)
    except (ConnectionError, ssl.SSLError, TimeoutError):
        return b""
    try:
        writer.write(
            b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/tlsrpt+gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        )
        for _ in range(size // piece):
            writer.write(b"\x1f\x8b" + bytes(piece - 2))
            await writer.drain()
            await asyncio.sleep(0.02)
        return await answer_of(reader, 60)
    except (ConnectionError, ssl.SSLError):
        return b""  # refused while sending (503 and closed): what a busy server may do
    finally:
        writer.close()


async def test_200_slow_large_bodies_keep_memory_low_and_it_is_given_back(
    serve_cli: Callable[..., ServeProcess], client: httpx.AsyncClient, client_ssl: ssl.SSLContext
) -> None:
    # the attack: 10 clients x the default burst of 20, each a 4 MiB body
    server = serve_cli()
    baseline = server.rss_mib()
    peak = baseline
    attack = asyncio.gather(*(send_large_body(server.port, client_ssl, f"127.0.0.{2 + n % 10}") for n in range(200)))
    good: list[int] = []
    while not attack.done():
        peak = max(peak, server.rss_mib())
        if len(good) < 5:
            body = json.dumps({**REPORT, "report-id": f"attack-{len(good)}"}).encode()
            good.append((await client.post(server.url, content=body, headers=JSON)).status_code)
        await asyncio.sleep(0.05)
    answers = await attack
    assert good == [201] * 5  # valid reports kept flowing
    assert all(a == b"" or a.startswith((b"HTTP/1.1 400", b"HTTP/1.1 503")) for a in answers)
    assert peak < 250, f"RSS went from {baseline:.0f} MiB to {peak:.0f} MiB"
    for _ in range(100):  # handed back once the bodies are gone
        if server.rss_mib() < baseline + 40:
            break
        await asyncio.sleep(0.1)
    assert server.rss_mib() < baseline + 40, f"RSS stayed at {server.rss_mib():.0f} MiB (from {baseline:.0f})"
    assert "Traceback" not in server.stop()


class TcpProxy:
    """A TCP relay to PostgreSQL that the test can cut and restore: a real database outage
    without stopping the database other tests share."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream = await asyncio.open_connection(*self.target)
        self._writers |= {writer, upstream}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pump(reader, upstream), pump(upstream_reader, writer))
        self._writers -= {writer, upstream}


async def test_a_store_outage_is_one_log_line_per_503_and_a_summary_not_tracebacks(
    serve_cli: Callable[..., ServeProcess], client: httpx.AsyncClient
) -> None:
    from tests.store.conftest import PG_HOST, PG_PORT, postgres_reachable

    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    import psycopg

    schema = f"mtasts_test_{uuid.uuid4().hex[:12]}"
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    proxy = TcpProxy((PG_HOST, PG_PORT))
    await proxy.start()
    try:
        db = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test?options=-csearch_path%3D{schema}"
        server = await asyncio.to_thread(serve_cli, "--log-window", "1", "--burst", "100", db=db)
        assert (await client.post(server.url, content=BODY, headers=JSON)).status_code == 201
        await proxy.cut()
        failed = []
        for number in range(20):
            body = json.dumps({**REPORT, "report-id": f"outage-{number}"}).encode()
            failed.append(await client.post(server.url, content=body, headers=JSON))
        assert [r.status_code for r in failed] == [503] * 20
        assert {r.json()["error"]["code"] for r in failed} == {"store.unavailable"}
        assert all(int(r.headers["retry-after"]) > 0 for r in failed)
        await asyncio.sleep(2.5)  # a window closes: the summary
        await proxy.start()  # the database is back: so is the endpoint, by itself
        body = json.dumps({**REPORT, "report-id": "after"}).encode()
        assert (await client.post(server.url, content=body, headers=JSON)).status_code == 201
        log = server.stop()
    finally:
        with contextlib.suppress(Exception):
            await proxy.cut()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    lines = log.splitlines()
    assert "Traceback" not in log
    access = [line for line in lines if '"POST /tlsrpt" 503' in line and line.endswith("store.unavailable")]
    assert len(access) == 20  # one line per failed request
    reasons = [line for line in lines if "store unavailable: database postgresql" in line]
    assert 1 <= len(reasons) <= 3  # the reason once per window (the 20 may span a window or two)
    summaries = [line for line in lines if re.search(r"store\.unavailable: \d+ requests failed in the last 1 s", line)]
    assert summaries
    assert len(lines) <= 2 + 20 + len(reasons) + len(summaries) + 2  # nothing else worth a line


def test_access_line_escapes_what_a_client_sends_and_marks_what_is_unknown() -> None:
    from mtasts.report.server import AccessEntry, access_line

    stored = AccessEntry("192.0.2.7", "POST", "/tlsrpt", 201, 455, 87, 0.0071, "stored", ('Org "A"\n', "r-1"))
    assert access_line(stored) == '192.0.2.7 "POST /tlsrpt" 201 in=455 out=87 7.1ms stored "Org \\x22A\\x22\\x0a" "r-1"'
    failed = AccessEntry("192.0.2.7", None, None, None, None, None, 0.0008, "tls.handshake", ("HTTP_REQUEST",))
    assert access_line(failed) == '192.0.2.7 "- -" - in=- out=- 0.8ms tls.handshake "HTTP_REQUEST"'
    odd = AccessEntry("192.0.2.7", "GE T", '/a"b\x00', 404, 0, 79, 0.0004, "http.not_found")
    assert access_line(odd) == '192.0.2.7 "GE T /a\\x22b\\x00" 404 in=0 out=79 0.4ms http.not_found'


def test_a_host_name_is_served_on_every_address_it_resolves_to(
    tmp_path: Path, report_cert: trustme.LeafCert, client_ssl: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``host="localhost"`` where the hosts file lists it as 127.0.0.1 and ::1 (as most do):
    the endpoint listens on both, on one port, and a report sent over either is stored; not
    only on the first address the resolver gives. This machine's resolver may know localhost
    as 127.0.0.1 alone (tests/cli/test_serve_log.py asks the real one), so here the lookup
    answers as such a hosts file would; everything else (sockets, TLS, HTTP) is real. It runs
    on asyncio's own loop, whose lookups go through :func:`socket.getaddrinfo`."""
    if not has_ipv6_loopback():
        pytest.skip("this machine has no ::1 on lo (ip -6 addr show lo)")
    lookup = socket.getaddrinfo

    def both_loopbacks(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            return lookup(host, *args, **kwargs)
        return [info for address in ("127.0.0.1", "::1") for info in lookup(address, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", both_loopbacks)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    report_cert.cert_chain_pems[0].write_to_path(str(cert))
    report_cert.private_key_pem.write_to_path(str(key))
    request = (
        b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/tlsrpt+json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)
    )

    async def send_over_each() -> tuple[tuple[tuple[str, int], ...], int, list[bytes]]:
        store = ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        server = ReportServer(store, host="localhost", port=0, certfile=cert, keyfile=key)
        await server.start()
        try:
            port = server.address[1]
            answers = []
            for address in ("::1", "127.0.0.1"):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=client_ssl, server_hostname="localhost"
                )
                writer.write(request)
                answers.append(await answer_of(reader))
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()
            return server.addresses, port, answers
        finally:
            await server.stop()

    addresses, port, answers = asyncio.run(send_over_each())
    assert addresses == (("127.0.0.1", port), ("::1", port))
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"HTTP/1.1 201 Created"] * 2
    assert stored(tmp_path) == 1  # the same report twice: stored once, the second a duplicate

"""The resolver's admin listener: Prometheus text that a strict parser accepts, values that move
after real socketmap queries, /healthz, 404, its bounds, and ``serve --admin`` as a real process.

The in-process tests use test_service.py's scripted sources (answers from dicts): moving a
domain's policy mid-test (drift) and breaking the store need a world the test controls; the
socketmap and HTTP sides are real sockets on loopback. The ``serve`` test uses the lab.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.resolver.cache import TxtResult, TxtStatus
from mtasts.resolver.metrics import AdminServer, Gauges, render_metrics
from mtasts.resolver.overrides import parse_overrides
from mtasts.resolver.server import ListenSpec, SocketmapServer
from mtasts.resolver.service import PolicyResolver
from tests.commands import MTASTS
from tests.resolver.helpers import SocketmapClient
from tests.resolver.test_overrides import overrides_text
from tests.resolver.test_service import BrokenStore, Clock, D, ScriptedSources, make, settle

# --- a strict parser of the text format 0.0.4 -------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
_LABELS = rf"\{{(?:[a-zA-Z_][a-zA-Z0-9_]*={_LABEL_VALUE}(?:,[a-zA-Z_][a-zA-Z0-9_]*={_LABEL_VALUE})*)?\}}"
_SAMPLE = re.compile(rf"({_NAME})({_LABELS})? (\S+)")
_PAIR = re.compile(rf"([a-zA-Z_][a-zA-Z0-9_]*)=({_LABEL_VALUE})")
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> tuple[Series, dict[str, str]]:
    """Every sample and every family's type; AssertionError on anything the format forbids."""
    assert text.endswith("\n"), "the text must end with a newline"
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: Series = {}
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name), where
            assert name not in helps, f"HELP twice: {where}"
            assert name not in types, f"HELP after TYPE or samples: {where}"
            helps.add(name)
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4, where
            assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), where
            assert parts[2] not in types, f"TYPE twice: {where}"
            types[parts[2]] = parts[3]
        else:
            found = _SAMPLE.fullmatch(line)
            assert found, where
            name, labels, value = found.groups()
            assert name in types, f"a sample before its TYPE: {where}"
            assert name == list(types)[-1], f"a sample outside its family's block: {where}"
            if types[name] == "counter":
                assert name.endswith("_total"), f"a counter not named *_total: {where}"
            pairs = [
                (key, re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m[0]], raw[1:-1]))
                for key, raw in _PAIR.findall(labels or "")
            ]
            assert len({key for key, _ in pairs}) == len(pairs), f"a label twice: {where}"
            series = (name, frozenset(pairs))
            assert series not in samples, f"a series twice: {where}"
            samples[series] = float(value)
    assert helps == set(types), "every family has HELP and TYPE"
    return samples, types


def value(samples: Series, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# --- a real daemon in-process -----------------------------------------------------------------


@dataclass
class Running:
    resolver: PolicyResolver
    sources: ScriptedSources
    clock: Clock
    socketmap: SocketmapServer
    admin: AdminServer

    async def client(self) -> SocketmapClient:
        return await SocketmapClient.connect("127.0.0.1", int(self.socketmap.addresses[0].rsplit(":", 1)[1]))

    async def get(self, target: str, *, method: str = "GET", extra: str = "") -> tuple[int, dict[str, str], bytes]:
        return await http_request(self.admin.port, target, method=method, extra=extra)


async def http_request(
    port: int, target: str, *, method: str = "GET", extra: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request; status, headers (lower case), body (read by its Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode().removesuffix("\r\n\r\n").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split(" ")[1]), headers, body


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    resolver, sources, clock = make(store=BrokenStore())
    await resolver.start(refresh=False)
    socketmap = SocketmapServer(resolver, (ListenSpec(host="127.0.0.1", port=0),))
    admin = AdminServer(resolver, "127.0.0.1", 0)
    await socketmap.start()
    await admin.start()
    yield Running(resolver, sources, clock, socketmap, admin)
    await admin.stop()
    await socketmap.stop()
    await resolver.stop()


async def scrape(running: Running) -> Series:
    status, headers, body = await running.get("/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_exposition(body.decode())[0]


async def test_metrics_parse_and_move_after_socketmap_queries(running: Running) -> None:
    before = await scrape(running)
    assert value(before, "mtasts_resolver_queries_total", result="ok", profile="postfix") == 0
    assert value(before, "mtasts_resolver_cached_policies") == 0

    client = await running.client()
    assert (await client.query("postfix", D)).startswith("OK secure")  # a miss, one fetch
    assert (await client.query("postfix", D)).startswith("OK secure")  # a hit
    assert (await client.query("postfix-tlsrpt", D)).startswith("OK secure")  # a hit, another profile
    assert await client.query("postfix", ".example.com") == "NOTFOUND "  # a parent probe
    assert await client.query("postfix", "nosts.example") == "NOTFOUND "  # no record: negative
    assert await client.query("sendmail", D) == "NOTFOUND "  # a map name nobody serves
    await client.send(b"x:junk,")  # not a netstring: answered PERM, then the connection is closed
    assert (await client.read_reply()).startswith("PERM ")
    await client.close()

    after = await scrape(running)
    assert value(after, "mtasts_resolver_queries_total", result="ok", profile="postfix") == 2
    assert value(after, "mtasts_resolver_queries_total", result="ok", profile="postfix-tlsrpt") == 1
    assert value(after, "mtasts_resolver_queries_total", result="notfound", profile="postfix") == 2
    assert value(after, "mtasts_resolver_queries_total", result="notfound", profile="unknown") == 1
    assert value(after, "mtasts_resolver_answers_total", source="fetched") == 1
    assert value(after, "mtasts_resolver_answers_total", source="negative") == 1
    assert value(after, "mtasts_resolver_answers_total", source="cache") == 2
    assert value(after, "mtasts_resolver_not_a_domain_total") == 1
    assert value(after, "mtasts_resolver_cache_hits_total") == 2
    assert value(after, "mtasts_resolver_cache_misses_total") == 2
    assert value(after, "mtasts_resolver_fetches_total", outcome="ok") == 1
    assert value(after, "mtasts_resolver_fetches_total", outcome="failed") == 0
    assert value(after, "mtasts_resolver_store_errors_total") == 3  # load at start + two writes
    assert value(after, "mtasts_resolver_malformed_requests_total") == 1
    assert value(after, "mtasts_resolver_cached_policies") == 1
    assert value(after, "mtasts_resolver_cached_domains") == 2
    assert value(after, "mtasts_resolver_refresh_backlog") == 0


async def test_drift_overrides_failures_and_backlog_are_counted(running: Running) -> None:
    client = await running.client()
    await client.query("postfix", D)
    running.sources.txts[D] = TxtResult(TxtStatus.FOUND, "id2", 300.0)  # a new id, the same body
    running.clock.now += 301
    await client.query("postfix", D)
    await settle(running.resolver)
    running.sources.bodies["down.example"] = None
    running.sources.txts["down.example"] = TxtResult(TxtStatus.FOUND, "idx", 300.0)
    assert await client.query("postfix", "down.example") == "NOTFOUND "  # fail open
    running.resolver.overrides = parse_overrides(overrides_text("force-none"))
    assert await client.query("postfix", D) == "NOTFOUND "
    running.resolver.overrides = {}
    running.clock.now += 86400 - 600  # inside the refresh window, no sweep running
    await client.close()

    samples = await scrape(running)
    assert value(samples, "mtasts_resolver_drift_events_total", kind="same-body") == 1
    assert value(samples, "mtasts_resolver_drift_events_total", kind="same-id") == 0
    assert value(samples, "mtasts_resolver_overrides_applied_total", kind="force-none") == 1
    assert value(samples, "mtasts_resolver_fetches_total", outcome="ok") == 2
    assert value(samples, "mtasts_resolver_fetches_total", outcome="failed") == 1
    assert value(samples, "mtasts_resolver_answers_total", source="fail-open") == 1
    assert value(samples, "mtasts_resolver_refresh_backlog") == 1
    assert await running.resolver.refresh_due() == 1
    assert value(await scrape(running), "mtasts_resolver_refresh_backlog") == 0


async def test_healthz_404_405_and_a_bounded_head(running: Running) -> None:
    status, _, body = await running.get("/healthz")
    assert (status, body) == (200, b"ok\n")
    status, _, body = await running.get("/")
    assert (status, body) == (404, b"not found: GET /metrics, GET /healthz, POST /cache/flush\n")
    assert (await running.get("/metrics/extra"))[0] == 404
    status, headers, _ = await running.get("/metrics", method="POST")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    status, _, _ = await running.get("/metrics", extra=f"X-Big: {'a' * 40_000}\r\n")
    assert status == 431


async def test_a_client_that_says_close_gets_the_connection_closed(running: Running) -> None:
    """``Connection: close`` from the client ends the connection after the answer (was: held open
    until the idle timeout, so a client reading to the end hung for 30 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", running.admin.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)  # to the end: the server must close
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"ok\n")


def test_label_values_are_escaped() -> None:
    results = Counter({('we"ird\\\nresult', "postfix"): 3})
    gauges = Gauges(
        cached_domains=0, cached_policies=0, refresh_backlog=0, discoveries_in_progress=0, overrides_configured=0
    )
    text = render_metrics({}, results, gauges)
    assert 'result="we\\"ird\\\\\\nresult"' in text
    samples, types = parse_exposition(text)
    assert value(samples, "mtasts_resolver_queries_total", result='we"ird\\\nresult', profile="postfix") == 3
    assert types["mtasts_resolver_refresh_backlog"] == "gauge"
    assert all(kind == "gauge" or name.endswith("_total") for name, kind in types.items())


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("admin", ["nowhere", "127.0.0.1:99999", "example.com:80"])
def test_admin_usage_errors_are_one_line(admin: str) -> None:
    result = CliRunner().invoke(app, ["resolver", "serve", "--memory-only", "--admin", admin])
    assert result.exit_code == 2
    assert result.output.startswith("mtasts: error: --admin: ")
    assert result.output.count("\n") == 1


@pytest.mark.lab
async def test_serve_admin_serves_metrics_of_real_queries(
    lab: Any, resolver_options: list[str], tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "resolver",
        "serve",
        "--listen",
        "inet:127.0.0.1:0",
        "--memory-only",
        "--admin",
        "127.0.0.1:0",
        *resolver_options,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
    )
    assert process.stderr is not None
    try:
        first = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        listening = re.search(r"listening on inet:127\.0\.0\.1:(\d+)", first)
        assert listening, first
        second = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        admin = re.fullmatch(r"mtasts: resolver metrics on http://127\.0\.0\.1:(\d+)/metrics\n", second)
        assert admin, second
        port = int(admin[1])
        status, _, body = await http_request(port, "/healthz")
        assert (status, body) == (200, b"ok\n")
        client = await SocketmapClient.connect("127.0.0.1", int(listening[1]))
        domain = lab.domain("enforce-ok")
        assert (await client.query("postfix", domain)).startswith("OK secure")
        assert (await client.query("postfix", domain)).startswith("OK secure")
        await client.close()
        status, _, body = await http_request(port, "/metrics")
        assert status == 200
        samples, _ = parse_exposition(body.decode())
        assert value(samples, "mtasts_resolver_queries_total", result="ok", profile="postfix") == 2
        assert value(samples, "mtasts_resolver_fetches_total", outcome="ok") == 1
        assert value(samples, "mtasts_resolver_cache_hits_total") == 1
        assert value(samples, "mtasts_resolver_cached_policies") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0

"""The RFC 8460 report endpoint inside the policy host (``[report]``): reports posted to
``https://mta-sts.<domain>/v1/report`` land in the store, with the endpoint's own checks, while
the policy is served exactly as before. The client is independent (``ssl`` + ``http.client``);
the host is :class:`~mtasts.publish.host.PolicyHost` in-process with the real endpoint (parse
worker processes, SQLite store), and once the real ``mtasts publish serve`` in its own process."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mtasts.publish.host import PolicyHost
from mtasts.publish.reports import ReportRoute, endpoint_settings
from mtasts.publish.snapshot import load_snapshot
from mtasts.report.server import ReportEndpoint
from mtasts.store.store import ReportStore
from tests.commands import MTASTS
from tests.publish.hosting import Domains, canonical_body, config_text, fetch, make_domains, raw_exchange, tls_connect

GZIP = {"Content-Type": "application/tlsrpt+gzip"}


def report(domain: str, report_id: str = "r-1") -> bytes:
    """A TLS report (RFC 8460 §4) about ``domain``'s sts policy, gzipped as reporters send it."""
    document = {
        "organization-name": "Reporter One",
        "date-range": {"start-datetime": "2026-12-01T00:00:00Z", "end-datetime": "2026-12-01T23:59:59Z"},
        "contact-info": "tlsrpt@reporter.example",
        "report-id": report_id,
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": domain, "mx-host": [f"mx1.{domain}"]},
                "summary": {"total-successful-session-count": 12, "total-failure-session-count": 0},
            }
        ],
    }
    return gzip.compress(json.dumps(document).encode())


def stored_ids(db: Path) -> list[str]:
    with ReportStore(f"sqlite:///{db}") as store:
        return sorted(r.report.report_id for r in store.reports())


REPORT_SECTION = '[report]\nstore = "{db}"\nbody_timeout = 0.5\nmin_body_rate = 0\nmax_body = 65536\n'


@pytest.fixture
async def hosted(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Two served domains with ``[report]``, and a third configured later (by a reload)."""
    domains = make_domains(tmp_path / "certs", 3)
    db = tmp_path / "mtasts.sqlite3"
    config = tmp_path / "publish.toml"
    section = REPORT_SECTION.format(db=db)
    config.write_text(config_text(domains, domains.names[:2], listen=("127.0.0.1:0",), admin="off", extra=section))
    snapshot = load_snapshot(config)
    assert snapshot.config.report is not None
    endpoint = ReportEndpoint(ReportStore(f"sqlite:///{db}"), endpoint_settings(snapshot.config.report))
    await endpoint.start()
    host = PolicyHost(
        snapshot,
        loader=lambda generation: load_snapshot(config, generation=generation),
        reports=ReportRoute(snapshot.config.report, endpoint.app),
    )
    await host.start()
    try:
        yield {"host": host, "domains": domains, "db": db, "config": config, "port": host.bound[0].port}
    finally:
        await host.stop()
        await endpoint.stop()


def post_raw(port: int, sni: str, domains: Domains, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One POST of ``body`` to /v1/report on a new TLS connection for ``sni``."""
    sock = tls_connect(port, sni, domains.client_context())
    connection = http.client.HTTPConnection(sni, port, timeout=10)
    connection.sock = sock
    try:
        connection.request("POST", "/v1/report", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post(port: int, name: str, domains: Domains, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, data = post_raw(port, f"mta-sts.{name}", domains, body, {**GZIP, **(headers or {})})
    return status, json.loads(data)


async def test_a_posted_report_is_stored_and_the_policy_is_served_as_before(hosted: dict[str, Any]) -> None:
    port, domains, db = hosted["port"], hosted["domains"], hosted["db"]
    first, second, third = domains.names

    status, answer = await asyncio.to_thread(post, port, first, domains, report(first))
    assert status == 201
    assert answer["stored"] is True
    assert stored_ids(db) == ["r-1"]
    status, answer = await asyncio.to_thread(post, port, first, domains, report(first))
    assert (status, answer["stored"]) == (201, False)  # sent twice, stored once

    # the policy, on the same name: unchanged rules
    status, headers, body = await asyncio.to_thread(fetch, port, f"mta-sts.{first}", domains.client_context())
    assert (status, body) == (200, canonical_body(first))
    assert headers.get_all("Content-Type") == ["text/plain"]
    status, _, _ = await asyncio.to_thread(fetch, port, f"mta-sts.{first}", domains.client_context(), method="POST")
    assert status == 405  # POST to the policy path is still refused

    # the endpoint's own rules: GET is not a report, another media type is refused
    status, _, data = await asyncio.to_thread(fetch, port, f"mta-sts.{first}", domains.client_context(), "/v1/report")
    assert status == 405
    assert json.loads(data)["error"]["code"] == "http.method"
    status, answer = await asyncio.to_thread(
        post, port, first, domains, report(first, "r-2"), {"Content-Type": "application/json"}
    )
    assert (status, answer["error"]["code"]) == (415, "http.content_type")
    status, answer = await asyncio.to_thread(post, port, first, domains, b"\x1f\x8b not gzip at all")
    assert status == 400
    assert answer["error"]["code"].startswith("report.")
    assert stored_ids(db) == ["r-1"]

    # a report for a domain that is not configured is refused, until a reload configures it
    status, answer = await asyncio.to_thread(post, port, first, domains, report(third, "r-3"))
    assert (status, answer["error"]["code"]) == (403, "report.domain.not_accepted")
    hosted["config"].write_text(
        config_text(domains, listen=("127.0.0.1:0",), admin="off", extra=REPORT_SECTION.format(db=db))
    )
    assert (await hosted["host"].reload()).ok
    status, answer = await asyncio.to_thread(post, port, second, domains, report(third, "r-3"))
    assert (status, answer["stored"]) == (201, True)
    assert stored_ids(db) == ["r-1", "r-3"]


async def test_the_endpoint_answers_only_on_served_names_and_bounds_the_body(hosted: dict[str, Any]) -> None:
    port, domains, db = hosted["port"], hosted["domains"], hosted["db"]
    first = domains.names[0]
    # Host naming another served name than the connection's: 421, as for the policy
    status, _ = await asyncio.to_thread(
        post_raw, port, f"mta-sts.{first}", domains, report(first), {**GZIP, "Host": f"mta-sts.{domains.names[1]}"}
    )
    assert status == 421
    # too large for [report] max_body (64 KiB): 413 before the body is read
    status, answer = await asyncio.to_thread(post, port, first, domains, b"x" * 70_000)
    assert (status, answer["error"]["code"]) == (413, "http.too_large")

    # a body that stops arriving: 408 after body_timeout (0.5 s), nothing stored
    def stall() -> bytes:
        sock = tls_connect(port, f"mta-sts.{first}", domains.client_context())
        try:
            head = (
                f"POST /v1/report HTTP/1.1\r\nHost: mta-sts.{first}\r\nContent-Type: application/tlsrpt+gzip\r\n"
                "Content-Length: 1000\r\n\r\n"
            ).encode()
            return raw_exchange(sock, head + b"only a few bytes")
        finally:
            sock.close()

    answer_bytes = await asyncio.to_thread(stall)
    assert answer_bytes.startswith(b"HTTP/1.1 408 ")
    assert b"http.body_timeout" in answer_bytes
    assert stored_ids(db) == []
    # and the host still serves
    status, _, body = await asyncio.to_thread(fetch, port, f"mta-sts.{first}", domains.client_context())
    assert (status, body) == (200, canonical_body(first))


@pytest.mark.lab
async def test_publish_serve_with_a_report_section_stores_posted_reports(tmp_path: Path) -> None:
    domains = make_domains(tmp_path / "certs", 1)
    db = tmp_path / "mtasts.sqlite3"
    config = tmp_path / "publish.toml"
    config.write_text(config_text(domains, listen=("127.0.0.1:0",), admin="off", extra=f'[report]\nstore = "{db}"\n'))
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "publish",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("mtasts: serving "):
                break
        port = int(line.split("https://127.0.0.1:", 1)[1].split(";", 1)[0])
        name = domains.names[0]
        assert (
            "mtasts: TLS reports: POST https://mta-sts.<domain>/v1/report on every served name, "
            f"for the configured domains, into sqlite:///{db}\n"
        ) in lines
        status, answer = await asyncio.to_thread(post, port, name, domains, report(name))
        assert (status, answer["stored"]) == (201, True)
        status, _, body = await asyncio.to_thread(fetch, port, f"mta-sts.{name}", domains.client_context())
        assert (status, body) == (200, canonical_body(name))
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 30)
    log = "".join(lines) + rest.decode()
    assert process.returncode == 0, log
    assert stored_ids(db) == ["r-1"]
    assert '"POST /v1/report" 201' in log  # the endpoint's access line ...
    assert 'stored "Reporter One" "r-1"' in log
    assert f'mta-sts.{name} mta-sts.{name}:{port} "POST /v1/report" 201' in log  # ... and the host's

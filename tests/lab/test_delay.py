"""The lab's latency option (``Lab(delay=...)``, ``mtasts lab up --delay-ms``, ``mtasts demo --delay-ms``).

Each test measures a lower bound with ``time.monotonic()``: a deliberate delay of 200 ms must
show as at least 200 ms, however fast or slow the machine. The upper bounds (concurrent clients
are delayed side by side, not one after the other) are generous: 10 clients in series would take
2 s, side by side they take 0.2 s, and the bound sits at 1.5 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.query
import pytest
from typer.testing import CliRunner

from mtasts.cli.lab import MAX_DELAY_MS
from mtasts.cli.main import app
from mtasts.lab._net import MAX_DELAY
from mtasts.lab.testing import LabController, running_lab
from mtasts.lab.world import Lab
from tests.cli.test_lab import RUN_CLI, wait_for_file
from tests.lab.helpers import LabSMTP, https_request

pytestmark = pytest.mark.lab

DELAY = 0.2
CONCURRENT = 10
PARALLEL_BOUND = 1.5  # seconds for CONCURRENT clients; in series they would take CONCURRENT * DELAY = 2 s


@pytest.fixture(scope="module")
def slow_lab() -> Iterator[LabController]:
    with running_lab(["enforce-ok", "split-txt-ok", "sts-lookup-timeout"], delay=DELAY) as controller:
        yield controller


def _query(lab: LabController, name: str, rdtype: str = "TXT") -> tuple[dns.message.Message, str, int]:
    address, port = lab.nameserver
    return dns.message.make_query(name, rdtype), address, port


def test_a_udp_answer_waits_for_the_delay(slow_lab: LabController) -> None:
    query, address, port = _query(slow_lab, f"_mta-sts.{slow_lab.domain('enforce-ok')}")
    start = time.monotonic()
    response = dns.query.udp(query, address, port=port, timeout=2)
    assert time.monotonic() - start >= DELAY
    assert response.answer


def test_each_tcp_answer_waits_for_the_delay(slow_lab: LabController) -> None:
    """Over TCP too, and on one connection every query waits its own round trip."""
    address, port = slow_lab.nameserver
    name = f"_mta-sts.{slow_lab.domain('split-txt-ok')}"  # the answer that needs TCP
    start = time.monotonic()
    with dns.query.make_socket(2, 1) as sock:  # AF_INET, SOCK_STREAM
        sock.settimeout(2)
        sock.connect((address, port))
        for _ in range(2):
            dns.query.send_tcp(sock, dns.message.make_query(name, "TXT"))
            response, _ = dns.query.receive_tcp(sock)
            assert response.answer
    assert time.monotonic() - start >= 2 * DELAY


def test_a_silent_name_stays_silent(slow_lab: LabController) -> None:
    """The delay holds answers back; it does not invent one for a name that must time out."""
    query, address, port = _query(slow_lab, f"_mta-sts.{slow_lab.domain('sts-lookup-timeout')}")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, address, port=port, timeout=DELAY * 3)


def test_an_https_policy_fetch_waits_for_the_delay(slow_lab: LabController) -> None:
    start = time.monotonic()
    status, _headers, body = https_request(slow_lab, f"mta-sts.{slow_lab.domain('enforce-ok')}")
    assert time.monotonic() - start >= DELAY
    assert status == 200
    assert body.startswith(b"version: STSv1")


def test_every_smtp_reply_waits_for_the_delay(slow_lab: LabController) -> None:
    """Greeting, EHLO, STARTTLS, EHLO over TLS, QUIT: five replies, five round trips."""
    host = f"mx1.{slow_lab.domain('enforce-ok')}"
    start = time.monotonic()
    smtp = LabSMTP(slow_lab, host)  # reads the greeting
    greeted = time.monotonic()
    assert greeted - start >= DELAY
    assert smtp.ehlo("sender.test")[0] == 250
    assert time.monotonic() - greeted >= DELAY
    smtp.starttls(context=slow_lab.client_context())
    assert smtp.ehlo("sender.test")[0] == 250
    smtp.quit()
    assert time.monotonic() - start >= 5 * DELAY


async def test_concurrent_dns_clients_are_delayed_side_by_side(slow_lab: LabController) -> None:
    name = f"_mta-sts.{slow_lab.domain('enforce-ok')}"
    address, port = slow_lab.nameserver

    async def over(transport: Any) -> None:
        start = time.monotonic()
        answers = await asyncio.gather(
            *(transport(dns.message.make_query(name, "TXT"), address, port=port, timeout=3) for _ in range(CONCURRENT))
        )
        elapsed = time.monotonic() - start
        assert all(answer.answer for answer in answers)
        assert DELAY <= elapsed < PARALLEL_BOUND, transport.__name__

    await over(dns.asyncquery.udp)
    await over(dns.asyncquery.tcp)


async def test_concurrent_https_and_smtp_clients_are_delayed_side_by_side(slow_lab: LabController) -> None:
    domain = slow_lab.domain("enforce-ok")
    policy_host, mx_host = f"mta-sts.{domain}", f"mx1.{domain}"
    context = slow_lab.client_context()

    async def fetch() -> bytes:
        reader, writer = await asyncio.open_connection(
            slow_lab.address(policy_host), slow_lab.https_port, ssl=context, server_hostname=policy_host
        )
        writer.write(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {policy_host}\r\n\r\n".encode())
        response = await reader.read()
        writer.close()
        return response

    async def greeting() -> bytes:
        reader, writer = await asyncio.open_connection(slow_lab.address(mx_host), slow_lab.smtp_port)
        line = await reader.readline()
        writer.close()
        return line

    for client, expected in ((fetch, b"HTTP/1.1 200 OK"), (greeting, b"220 ")):
        start = time.monotonic()
        replies = await asyncio.gather(*(client() for _ in range(CONCURRENT)))
        elapsed = time.monotonic() - start
        assert all(reply.startswith(expected) for reply in replies)
        assert DELAY <= elapsed < PARALLEL_BOUND, client.__name__


def test_no_delay_means_no_sleep_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 0 (the default) the lab's servers must not even ask the loop for a zero-length wait,
    which no clock can see: so ``asyncio.sleep`` is wrapped to record who calls it, while blocking
    clients (in this thread; the lab runs on its own loop) go through every delayed path. A UDP
    answer at 0 is sent from ``datagram_received`` itself, which no wrapper sees; the other
    tests of the lab cover it."""
    callers: list[str] = []
    real_sleep = asyncio.sleep

    def recording_sleep(delay: float, result: Any = None) -> Any:
        callers.append(sys._getframe(1).f_globals["__name__"])
        return real_sleep(delay, result)

    with running_lab(["enforce-ok"]) as lab:
        monkeypatch.setattr(asyncio, "sleep", recording_sleep)
        domain = lab.domain("enforce-ok")
        address, port = lab.nameserver
        query = dns.message.make_query(f"_mta-sts.{domain}", "TXT")
        assert dns.query.udp(query, address, port=port, timeout=2).answer
        assert dns.query.tcp(query, address, port=port, timeout=2).answer
        assert https_request(lab, f"mta-sts.{domain}")[0] == 200
        with LabSMTP(lab, f"mx1.{domain}") as smtp:
            smtp.ehlo("sender.test")
            smtp.starttls(context=lab.client_context())
            smtp.ehlo("sender.test")
        monkeypatch.undo()
        assert lab.info()["delay_ms"] == 0
    assert [caller for caller in callers if caller.startswith("mtasts.lab")] == []


@pytest.mark.parametrize("delay", [-0.001, 10.001, float("nan"), float("inf")])
def test_the_lab_refuses_an_unusable_delay(delay: float) -> None:
    with pytest.raises(ValueError, match="delay"):
        Lab(["enforce-ok"], delay=delay)


def test_lab_up_rejects_a_delay_out_of_range() -> None:
    """The command's bound is the lab's own, found before anything starts."""
    assert MAX_DELAY_MS == MAX_DELAY * 1000
    result = CliRunner().invoke(app, ["lab", "up", "--delay-ms", str(MAX_DELAY_MS + 1)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "--delay-ms" in result.output


def test_lab_up_delay_ms_delays_answers_and_says_so(tmp_path: Path) -> None:
    info_file = tmp_path / "lab.json"
    args = [sys.executable, "-c", RUN_CLI, "lab", "up", "-s", "enforce-ok", "--delay-ms", "200"]
    args += ["--info", str(info_file)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        info = wait_for_file(info_file, process)
        assert info["delay_ms"] == 200
        address, port = str(info["nameserver"]).rsplit(":", 1)
        domains = info["domains"]
        assert isinstance(domains, list)
        query = dns.message.make_query(f"_mta-sts.{domains[0]['name']}", "TXT")
        start = time.monotonic()
        assert dns.query.udp(query, address, port=int(port), timeout=2).answer
        assert time.monotonic() - start >= DELAY
        process.send_signal(signal.SIGTERM)
        out, _err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "delay       200 ms before every DNS answer, HTTP response and SMTP reply" in out.decode()
    assert json.loads(info_file.read_text("utf-8"))["delay_ms"] == 200


def test_demo_with_a_delay_still_finds_what_each_scenario_expects() -> None:
    """A slow lab gives slow checks, not timeouts: the demo's verdicts are unchanged."""
    start = time.monotonic()
    result = CliRunner().invoke(
        app, ["demo", "-s", "enforce-ok", "-s", "mx-no-starttls", "--delay-ms", "100"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "2 domains checked, 2 as their scenarios expect" in result.output
    assert time.monotonic() - start >= 0.1 * 5  # DNS, policy fetch and SMTP probe: several round trips

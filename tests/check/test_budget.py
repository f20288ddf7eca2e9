"""Each domain has a time budget and caps, whatever it publishes: a domain whose 30 MX hosts
have 8 addresses each, every one a tarpit (the connection is accepted, no byte ever comes),
is done within its budget, and what was not probed is reported as such.

The tarpits are listening sockets that are never accepted from: the kernel completes the TCP
handshake (or, once the backlog is full, drops the SYN), so a client waits exactly as it
would on a real tarpit. No timing is asserted beyond the budget itself, with ample slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtasts.check.inspect import CheckLimits, Inspector, mx_states
from mtasts.core.findings import Finding
from mtasts.core.problems import Severity
from mtasts.lab.scenarios import Delivery, Expectation, MxFault, Scenario
from mtasts.lab.world import Lab
from mtasts.net.settings import NetworkSettings

TARPIT = Scenario(
    "tarpit",
    "30 MX hosts with 8 addresses each, all accepting connections and never answering.",
    Expectation(Delivery.DEFER),
    mx_count=(30, 8),
    mx_fault=MxFault.UNREACHABLE,  # the lab runs no SMTP server there: the test's tarpits listen
)


@contextlib.contextmanager
def tarpits(addresses: list[str]) -> Iterator[int]:
    """A never-accepting listener on every address, all on one port number."""
    for _ in range(20):
        sockets: list[socket.socket] = []
        try:
            port = 0
            for address in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((address, port))
                sock.listen(1)
                port = sock.getsockname()[1]
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        try:
            yield port
        finally:
            for sock in sockets:
                sock.close()
        return
    raise OSError("no port free on every tarpit address")


async def test_a_domain_of_tarpits_finishes_within_its_budget() -> None:
    async with Lab([TARPIT]) as lab:
        domain = lab.domain("tarpit")
        mx_addresses = [r.data for r in lab.plan.records if r.rdtype == "A" and r.name.startswith("mx")]
        assert len(mx_addresses) == 240
        with tarpits(mx_addresses) as port:
            settings = NetworkSettings(
                nameserver=lab.nameserver,
                ca_file=Path(lab.ca_file),
                timeout=1.0,
                https_port=lab.https_port,
                smtp_port=port,
            )
            budget = 3.0
            # few probe slots, so that the 40 probes the caps allow cannot all finish in time
            inspector = Inspector(settings, limits=CheckLimits(domain_timeout=budget), probe_concurrency=4)
            async with asyncio.timeout(60):  # the old inspector took ~60 s here (240 probes / 4 slots)
                report = await inspector.check(domain)
    assert report.elapsed < budget + 3.0, report.elapsed  # the budget, plus generous slack
    assert report.observations is not None
    probed = report.observations.probes
    assert 0 < len(probed) < 40
    assert all(p.failure is not None for p in probed)
    not_probed = [f for f in report.findings if f.code == "mx-not-probed"]
    by_cap = [f for f in not_probed if f.severity is Severity.INFO]
    by_budget = [f for f in not_probed if f.severity is Severity.WARNING]
    [hosts_left_out] = [f for f in by_cap if "--max-mx" in f.message]
    assert hosts_left_out.message.startswith(f"20 MX hosts of {domain} were not probed")
    assert hosts_left_out.details == tuple(f"not probed: mx{i}.{domain}" for i in range(11, 31))
    assert any("--max-addresses" in f.message for f in by_cap)
    assert by_budget
    assert all("time budget of 3 s" in f.message for f in by_budget)
    assert all("--domain-timeout" in f.fix for f in by_budget)
    states = {entry["host"]: entry for entry in mx_states(report.observations)}
    assert len(states) == 30
    assert states[f"mx30.{domain}"]["state"] == "not-probed"
    assert {e["state"] for e in states[f"mx1.{domain}"]["addresses"]} <= {"probed", "not-probed"}  # type: ignore[union-attr]


def _codes(findings: tuple[Finding, ...]) -> set[str]:
    return {f.code for f in findings}


@pytest.mark.lab
async def test_caps_are_settings(lab: object, lab_settings: NetworkSettings) -> None:
    """mx-many has 12 MX hosts x 6 addresses, all correct: the defaults probe 10 x 4; larger
    caps probe everything, and then nothing is reported as not probed."""
    from typing import Any

    the_lab: Any = lab
    domain = the_lab.domain("mx-many")
    default = await Inspector(lab_settings).check(domain)
    assert default.observations is not None
    assert len(default.observations.probes) == 40
    assert "mx-not-probed" in _codes(default.findings)
    assert default.verdict.mail_flows
    everything = await Inspector(lab_settings, limits=CheckLimits(max_mx_hosts=12, max_addresses=6)).check(domain)
    assert everything.observations is not None
    assert len(everything.observations.probes) == 72
    assert "mx-not-probed" not in _codes(everything.findings)
    assert everything.worst is None

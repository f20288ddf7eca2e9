"""The metrics page: exact text from a status, then served by the admin listener over a real
socket after real checks of lab domains."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from mtasts.lab.testing import LabController
from mtasts.monitor.metrics import AdminServer, render_metrics
from mtasts.monitor.service import DomainStatus
from tests.monitor.conftest import MonitorFactory

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_the_page_per_domain() -> None:
    status = DomainStatus(
        'we"ird.example',
        "warning",
        NOW - timedelta(minutes=5),
        (("policy", 'mta-sts.we"ird.example', NOW + timedelta(days=12, hours=12)),),
        0.975,
        {"error": 0, "warning": 2, "info": 1},
        0.25,
    )
    text = render_metrics({status.domain: status}, now=NOW, failed_runs=1)
    labels = 'domain="we\\"ird.example"'  # the quote escaped, as the text format requires
    host = 'host="mta-sts.we\\"ird.example"'
    checked = (NOW - timedelta(minutes=5)).timestamp()
    assert f"mtasts_monitor_domain_status{{{labels}}} 1\n" in text
    assert f'mtasts_monitor_certificate_days_left{{{labels},role="policy",{host}}} 12.5\n' in text
    assert f"mtasts_monitor_tlsrpt_success_rate{{{labels}}} 0.975\n" in text
    assert f'mtasts_monitor_open_events{{{labels},severity="warning"}} 2\n' in text
    assert f'mtasts_monitor_open_events{{{labels},severity="error"}} 0\n' in text
    assert f"mtasts_monitor_last_check_timestamp_seconds{{{labels}}} {checked:.0f}\n" in text
    assert "mtasts_monitor_failed_runs_total 1\n" in text
    for line in text.splitlines():  # every sample line has a HELP and TYPE above it
        if not line.startswith("#"):
            assert f"# TYPE {line.split('{')[0].split(' ')[0]} " in text


async def get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


async def test_the_admin_listener_serves_the_checked_domains(
    world: LabController, make_monitor: MonitorFactory
) -> None:
    monitor = make_monitor()
    domains = [world.domain("two-mx"), world.domain("enforce-ok")]
    await monitor.run(domains)
    server = AdminServer(lambda: render_metrics(monitor.statuses, now=monitor.clock()), "127.0.0.1", 0)
    await server.start()
    try:
        status_line, body = await get(server.port, "/metrics")
        missing, _ = await get(server.port, "/other")
        health, ok = await get(server.port, "/healthz")
    finally:
        await server.stop()
    assert status_line == "HTTP/1.1 200 OK"
    assert (missing.split(" ")[1], health.split(" ")[1], ok) == ("404", "200", "ok\n")
    for domain in domains:
        assert f'mtasts_monitor_domain_status{{domain="{domain}"}} 0' in body
        days_left = next(
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith(f'mtasts_monitor_certificate_days_left{{domain="{domain}",role="policy"')
        )
        assert 364 < days_left < 365  # the lab's certificates: a year from its start
    assert "mtasts_monitor_domains 2" in body

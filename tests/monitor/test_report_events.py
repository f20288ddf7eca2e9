"""Report-based events: the TLS reports stored in the monitor's database, read with the rules of
``mtasts report digest``; each fires once when its condition appears and clears when it goes.
The lab domain publishes a TLSRPT record (the report events are for such domains only)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from mtasts.core.tlsrpt_report import parse_report
from mtasts.lab.testing import LabController
from mtasts.store.store import ReportStore
from tests.monitor.conftest import Clock, MonitorFactory, cleared, open_codes, opened


def tls_report(org: str, on: date, domain: str, ok: int = 1000, failed: int = 0) -> dict[str, Any]:
    """A TLSRPT report (RFC 8460 §4) of one organisation for one policy domain and day."""
    policy: dict[str, Any] = {
        "policy": {"policy-type": "sts", "policy-domain": domain},
        "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed},
    }
    if failed:
        policy["failure-details"] = [
            {"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.9", "failed-session-count": failed}
        ]
    return {
        "organization-name": org,
        "date-range": {"start-datetime": f"{on}T00:00:00Z", "end-datetime": f"{on}T23:59:59Z"},
        "contact-info": "tlsrpt@sender.example",
        "report-id": f"{org}-{domain}-{on}",
        "policies": [policy],
    }


def ingest(store: ReportStore, clock: Clock, reports: Iterable[dict[str, Any]]) -> None:
    parsed = [parse_report(json.dumps(item).encode()) for item in reports]
    store.add_reports(parsed, source="test", now=clock.now)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def test_a_failure_spike_and_a_newly_failing_sender(
    world: LabController, make_monitor: MonitorFactory, store: ReportStore, clock: Clock
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    today = clock.now.date()
    ingest(
        store,
        clock,
        (tls_report("Mail Co", d, domain) for d in days(today - timedelta(days=9), today - timedelta(days=2))),
    )
    ingest(
        store, clock, (tls_report("Mail Co", d, domain, ok=900, failed=100) for d in (today - timedelta(days=1), today))
    )
    first = await monitor.check(domain)
    assert set(opened(first)) == {("failure-spike", ""), ("new-failing-sender", "Mail Co")}
    spike = next(t for t in first.transitions if t.code == "failure-spike")
    assert "200 failed sessions, 10.0% of all (before: 0.0%)" in spike.message
    assert first.success_rate == 0.9
    assert (await monitor.check(domain)).transitions == ()
    clock.advance(days=2)
    ingest(
        store, clock, (tls_report("Mail Co", d, domain) for d in (today + timedelta(days=1), today + timedelta(days=2)))
    )
    calm = await monitor.check(domain)
    assert set(cleared(calm)) == {("failure-spike", ""), ("new-failing-sender", "Mail Co")}
    assert calm.open_events == ()
    assert calm.success_rate == 1.0


async def test_a_reporter_silent_for_seven_days(
    world: LabController, make_monitor: MonitorFactory, store: ReportStore, clock: Clock
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    today = clock.now.date()
    start = today - timedelta(days=20)
    ingest(store, clock, (tls_report("Daily Co", d, domain) for d in days(start, today - timedelta(days=8))))
    ingest(store, clock, (tls_report("Other Co", d, domain) for d in days(start, today)))
    silent = await monitor.check(domain)
    assert opened(silent) == [("silent-reporter", "Daily Co")]
    assert "no report for 8 days" in silent.transitions[0].message
    assert (await monitor.check(domain)).transitions == ()
    ingest(store, clock, [tls_report("Daily Co", today, domain)])
    back = await monitor.check(domain)
    assert cleared(back) == [("silent-reporter", "Daily Co")]


async def test_no_reports_at_all_once_monitored_for_the_silence_period(
    world: LabController, make_monitor: MonitorFactory, store: ReportStore, clock: Clock
) -> None:
    monitor, domain = make_monitor(report_events=True), world.domain("two-mx")
    assert (await monitor.check(domain)).transitions == ()  # just set up: no report is expected yet
    clock.advance(days=6)
    assert (await monitor.check(domain)).transitions == ()
    clock.advance(days=1)
    week = await monitor.check(domain)
    assert opened(week) == [("no-reports", "")]
    assert "no TLS report stored" in week.transitions[0].message
    assert (await monitor.check(domain)).transitions == ()
    ingest(store, clock, [tls_report("Mail Co", clock.now.date() - timedelta(days=1), domain)])
    arrived = await monitor.check(domain)
    assert cleared(arrived) == [("no-reports", "")]
    # and when reports stop again, the digest's rule says so (the newest covers a day 8 days ago)
    clock.advance(days=7)
    stopped = await monitor.check(domain)
    assert opened(stopped) == [("no-reports", "")]
    assert "no report at all for 8 days" in stopped.transitions[0].message


async def test_a_domain_without_a_tlsrpt_record_gets_no_report_events(
    world: LabController, make_monitor: MonitorFactory, clock: Clock
) -> None:
    monitor, domain = make_monitor(), world.domain("two-mx")
    world.call(lambda: world.lab.set_records(f"_smtp._tls.{domain}", "TXT", []))
    await monitor.check(domain)
    clock.advance(days=30)
    later = await monitor.check(domain)
    assert "no-reports" not in open_codes(later)
    assert open_codes(later) == {"finding"}  # tlsrpt-missing: the check says it, the reports cannot

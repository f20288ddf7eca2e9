"""The domain page (``/domains/{domain}``) and its JSON: the roll-out state from the published
history, the TLS-report trend joined with the policy live each day, and the monitor's checks and
events; over the shared samples in a fresh SQLite store, with a history written the way
``mtasts publish apply`` writes it and monitor runs stored the way ``mtasts monitor`` stores them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from mtasts.core.policy import Mode
from mtasts.core.problems import Severity
from mtasts.monitor.events import Condition
from mtasts.monitor.history import SqlMonitorHistory
from mtasts.monitor.snapshot import CheckSnapshot, FindingSeen, RecordState
from mtasts.publish.history import Served, SqlPublishHistory
from mtasts.report.analysis import DayPoint
from mtasts.store.store import ReportStore
from mtasts.web.domains import live_policy, trend_rows
from tests.web.reports_fixtures import app_client, sample_store

DOMAIN = "krvtz.net"  # samples on 2023-01-25 (Mail.ru), 2024-09-13 (Microsoft), 2024-09-15 and -18 (Google)
FIRST = Served(
    DOMAIN,
    "20240910T000000",
    b"version: STSv1\r\nmode: testing\r\nmx: mail.krvtz.net\r\nmax_age: 86400\r\n",
    Mode.TESTING,
    86400,
    datetime(2024, 9, 10, tzinfo=UTC),
)
SECOND = Served(
    DOMAIN,
    "20240916T101500",
    b"version: STSv1\r\nmode: testing\r\nmx: mx2.krvtz.net\r\nmax_age: 86400\r\n",
    Mode.TESTING,
    86400,
    datetime(2024, 9, 16, 10, 15, tzinfo=UTC),
)


UNLISTED = FindingSeen(
    "mx-not-in-policy",
    Severity.WARNING,
    "mx3.krvtz.net",
    None,
    "the MX mx3.krvtz.net matches no mx line of the policy",
    "Add mx3.krvtz.net to the mx lines of the policy.",
)
MONITORED = (datetime(2024, 9, 17, 8, 0, tzinfo=UTC), datetime(2024, 9, 17, 9, 0, tzinfo=UTC))


def snapshot(at: datetime, *, findings: tuple[FindingSeen, ...] = (), conclusive: bool = True) -> CheckSnapshot:
    return CheckSnapshot(
        DOMAIN,
        at,
        "warning" if findings else "ok",
        conclusive,
        RecordState.FOUND if conclusive else RecordState.FAILED,
        record_id=SECOND.policy_id if conclusive else None,
        policy_mode="testing" if conclusive else None,
        mx=("mx2.krvtz.net", "mx3.krvtz.net") if conclusive else None,
        findings=findings,
        inconclusive_reason="" if conclusive else "the nameserver 127.0.0.1 answers nothing",
    )


def monitor_runs(url: str) -> None:
    """Three runs as the monitor stores them: a finding opens, a run that could not look, the
    finding cleared (what the monitor compares is its own business; the page shows what it kept)."""
    condition = Condition(DOMAIN, "finding", UNLISTED.subject, UNLISTED.severity, UNLISTED.message, UNLISTED.fix)
    with SqlMonitorHistory(ReportStore(url)) as monitor:
        monitor.record_run(
            snapshot(MONITORED[0], findings=(UNLISTED,)), 1.25, opened=[condition], kept=[], cleared=[], notify=[]
        )
        monitor.record_run(
            snapshot(MONITORED[0].replace(minute=30), conclusive=False), 0.5, opened=[], kept=[], cleared=[], notify=[]
        )
        (event,) = monitor.open_events(DOMAIN)
        monitor.record_run(snapshot(MONITORED[1]), 2.0, opened=[], kept=[], cleared=[event], notify=[])


@pytest.fixture(scope="module")
def published_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sample_store(tmp_path_factory.mktemp("domains"))
    with SqlPublishHistory(ReportStore(url)) as history:
        history.record(FIRST)
        history.record(SECOND)
    monitor_runs(url)
    return url


@pytest.fixture
async def client(published_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(published_url, publish_config=tmp_path / "absent.toml") as client:
        yield client


def test_the_policy_live_each_day() -> None:
    first, second = FIRST, Served(**{**_fields(SECOND), "until": None})
    ended = Served(**{**_fields(FIRST), "until": SECOND.since})
    history = [ended, second]
    assert live_policy(history, date(2024, 9, 9)) is None
    assert live_policy(history, date(2024, 9, 15)) == ended
    assert live_policy(history, date(2024, 9, 16)) == second  # the newer one, from 10:15
    assert live_policy(history, date(2030, 1, 1)) == second
    rows = trend_rows([DayPoint(date(2024, 9, 15), 1, 0), DayPoint(date(2024, 9, 16), 5, 5)], history)
    assert [(r.policy.policy_id if r.policy else None, r.changed, r.mx) for r in rows] == [
        (first.policy_id, False, ("mail.krvtz.net",)),
        (second.policy_id, True, ("mx2.krvtz.net",)),
    ]


def _fields(entry: Served) -> dict[str, object]:
    return {
        "domain": entry.domain,
        "policy_id": entry.policy_id,
        "body": entry.body,
        "mode": entry.mode,
        "max_age": entry.max_age,
        "since": entry.since,
        "until": entry.until,
    }


async def test_the_trend_lines_up_with_the_policy_history(client: httpx.AsyncClient) -> None:
    data = (await client.get(f"/api/domains/{DOMAIN}")).json()
    trend = {row["day"]: row for row in data["trend"]}
    assert trend["2023-01-25"]["policy_id"] is None  # before mtasts served anything
    assert trend["2024-09-13"]["policy_id"] == FIRST.policy_id
    assert trend["2024-09-13"]["mx"] == ["mail.krvtz.net"]
    assert trend["2024-09-18"]["policy_id"] == SECOND.policy_id
    assert trend["2024-09-18"]["mx"] == ["mx2.krvtz.net"]
    assert [e["policy_id"] for e in data["history"]] == [FIRST.policy_id, SECOND.policy_id]
    assert sum(r["successful"] + r["failed"] for r in data["trend"]) == (
        data["reports"]["totals"]["successful"] + data["reports"]["totals"]["failed"]
    )


async def test_the_rollout_state_with_its_guards(client: httpx.AsyncClient) -> None:
    data = (await client.get(f"/api/domains/{DOMAIN}")).json()
    rollout = data["rollout"]
    assert rollout["stage"] == "testing"
    assert rollout["current"]["policy_id"] == SECOND.policy_id
    guards = {g["guard"]: g for g in rollout["guards"]}
    assert guards["testing-days"]["passed"] is True
    assert guards["reporters"]["passed"] is False  # no report in the last 14 days
    assert guards["reporters"]["required"] == 2
    assert "not configured" in rollout["next"]
    assert any("absent.toml" in note for note in data["notes"])


async def test_the_page(client: httpx.AsyncClient) -> None:
    page = await client.get(f"/domains/{DOMAIN}")
    assert page.status_code == 200
    html = page.text
    assert 'action="/check"' in html
    assert f'value="{DOMAIN}"' in html
    assert f'id="current-id">{SECOND.policy_id}<' in html
    assert 'id="guards"' in html
    assert "reporters" in html
    trend = html[html.index('id="trend-table"') :]
    assert FIRST.policy_id in trend
    assert SECOND.policy_id in trend
    assert f"{SECOND.policy_id} (testing)" in html  # the chart's marker
    assert 'id="monitor"' in html
    japanese = await client.get(f"/domains/{DOMAIN}?lang=ja")
    assert "導入状況" in japanese.text
    assert "TLS レポートと各日に有効だったポリシー" in japanese.text


async def test_a_domain_never_published(client: httpx.AsyncClient) -> None:
    data = (await client.get("/api/domains/company-y.example")).json()
    assert data["history"] == []
    assert data["rollout"]["stage"] == "draft"
    assert data["reports"]["failing_senders"][0]["organization_name"] == "Company-X"
    page = await client.get("/domains/company-y.example")
    assert 'id="no-history"' in page.text
    assert "Company-X" not in page.text.split('id="trend"')[0]
    bad = await client.get("/api/domains/-bad-")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "domain-invalid"


async def test_the_monitors_checks_and_events(client: httpx.AsyncClient) -> None:
    monitor = (await client.get(f"/api/domains/{DOMAIN}")).json()["monitor"]
    assert monitor["last_checked_at"] == MONITORED[1].isoformat()
    assert monitor["open_events"] == 0
    assert [(r["checked_at"], r["status"], r["conclusive"], r["findings"]) for r in monitor["runs"]] == [
        (MONITORED[1].isoformat(), "ok", True, 0),
        (MONITORED[0].replace(minute=30).isoformat(), "unknown", False, 0),
        (MONITORED[0].isoformat(), "warning", True, 1),
    ]
    assert monitor["runs"][1]["inconclusive_reason"] == "the nameserver 127.0.0.1 answers nothing"
    (event,) = monitor["events"]
    assert (event["code"], event["subject"], event["severity"]) == ("finding", UNLISTED.subject, "warning")
    assert (event["opened_at"], event["cleared_at"]) == (MONITORED[0].isoformat(), MONITORED[1].isoformat())
    assert event["title"].startswith("a new finding")

    html = (await client.get(f"/domains/{DOMAIN}")).text
    section = html[html.index('id="monitor"') :]
    assert "Last checked 2024-09-17 09:00 UTC; open events: 0." in section
    events = section[section.index('id="monitor-events"') : section.index('id="monitor-runs"')]
    assert UNLISTED.subject in events
    assert UNLISTED.message in events
    assert 'class="event cleared"' in events
    runs = section[section.index('id="monitor-runs"') :]
    assert runs.index("2024-09-17 09:00") < runs.index("2024-09-17 08:30") < runs.index("2024-09-17 08:00")
    assert "inconclusive" in runs
    assert "the nameserver 127.0.0.1 answers nothing" in runs
    japanese = (await client.get(f"/domains/{DOMAIN}?lang=ja")).text
    assert "最終チェック 2024-09-17 09:00 UTC" in japanese


async def test_a_domain_the_monitor_never_checked(client: httpx.AsyncClient) -> None:
    data = (await client.get("/api/domains/company-y.example")).json()
    assert data["monitor"] == {"last_checked_at": None, "open_events": 0, "runs": [], "events": []}
    assert 'id="no-monitor"' in (await client.get("/domains/company-y.example")).text

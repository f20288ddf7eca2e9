"""The domain page (``/domains/{domain}``) and its JSON: the roll-out state from the published
history, the TLS-report trend joined with the policy live each day, and the monitor's checks and
events; over the shared samples in a fresh SQLite store, with a history written the way
``mtasts publish apply`` writes it and monitor runs stored the way ``mtasts monitor`` stores them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from html import unescape
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from mtasts.core.policy import Mode
from mtasts.core.problems import Severity
from mtasts.i18n import translator
from mtasts.monitor.events import CHECK_CODES
from mtasts.monitor.history import SqlMonitorHistory
from mtasts.monitor.rules import check_conditions, transitions
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


UNLISTED = FindingSeen(  # as the inspector says it
    "mx-not-in-policy",
    Severity.WARNING,
    "mx3.krvtz.net",
    None,
    "the MX mx3.krvtz.net matches no 'mx' line of the policy; senders refuse to deliver to it",
    "Add 'mx: mx3.krvtz.net' (or a '*.' pattern covering it) to the policy and change the policy id.",
)
MONITORED = (datetime(2024, 9, 17, 8, 0, tzinfo=UTC), datetime(2024, 9, 17, 9, 0, tzinfo=UTC))
BOTH_MX = ("mx2.krvtz.net", "mx3.krvtz.net")


def snapshot(
    at: datetime, *, findings: tuple[FindingSeen, ...] = (), conclusive: bool = True, mx: tuple[str, ...] = BOTH_MX
) -> CheckSnapshot:
    return CheckSnapshot(
        DOMAIN,
        at,
        "warning" if findings else "ok",
        conclusive,
        RecordState.FOUND if conclusive else RecordState.FAILED,
        record_id=SECOND.policy_id if conclusive else None,
        policy_mode="testing" if conclusive else None,
        mx=mx if conclusive else None,
        findings=findings,
        inconclusive_reason="" if conclusive else "the check stopped on an unexpected error",
    )


def monitor_runs(url: str) -> None:
    """Three runs as the monitor stores them, their events decided by the monitor's rules: a
    finding opens, a run that could not look, then the finding cleared and mx3 gone from the MX
    (an ``mx-changed`` notice, open until the next run)."""
    first, unsure = (
        snapshot(MONITORED[0], findings=(UNLISTED,)),
        snapshot(MONITORED[0].replace(minute=30), conclusive=False),
    )
    last = snapshot(MONITORED[1], mx=BOTH_MX[:1])
    with SqlMonitorHistory(ReportStore(url)) as monitor:
        for previous, current, elapsed in ((None, first, 1.25), (first, unsure, 0.5), (first, last, 2.0)):
            events = monitor.open_events(DOMAIN)
            conditions = (
                check_conditions(previous, current, events, now=current.checked_at) if current.conclusive else []
            )
            change = transitions(events, conditions, evaluated=CHECK_CODES if current.conclusive else set())
            monitor.record_run(
                current, elapsed, opened=change.opened, kept=change.kept, cleared=change.cleared, notify=[]
            )


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
    assert monitor["open_events"] == 1
    assert [(r["checked_at"], r["status"], r["conclusive"], r["findings"]) for r in monitor["runs"]] == [
        (MONITORED[1].isoformat(), "ok", True, 0),
        (MONITORED[0].replace(minute=30).isoformat(), "unknown", False, 0),
        (MONITORED[0].isoformat(), "warning", True, 1),
    ]
    assert monitor["runs"][1]["inconclusive_reason"] == "the check stopped on an unexpected error"
    changed, finding = monitor["events"]
    assert (finding["code"], finding["subject"], finding["severity"]) == ("finding", UNLISTED.subject, "warning")
    assert (finding["opened_at"], finding["cleared_at"]) == (MONITORED[0].isoformat(), MONITORED[1].isoformat())
    assert finding["title"] == "the finding is resolved"  # cleared: not "a new finding"
    assert (changed["code"], changed["cleared_at"], changed["title"]) == ("mx-changed", None, "the MX records changed")

    html = (await client.get(f"/domains/{DOMAIN}")).text
    section = html[html.index('id="monitor"') :]
    assert "Last checked 2024-09-17 09:00 UTC; open events: 1." in section
    events = section[section.index('id="monitor-events"') : section.index('id="monitor-runs"')]
    assert UNLISTED.subject in events
    assert f"the finding is resolved: {escape(UNLISTED.message)}" in events
    assert f"the MX records changed: {changed['message']}" in events
    assert 'class="event cleared"' in events
    assert 'class="event open"' in events
    runs = section[section.index('id="monitor-runs"') :]
    assert runs.index("2024-09-17 09:00") < runs.index("2024-09-17 08:30") < runs.index("2024-09-17 08:00")
    assert "inconclusive" in runs
    assert "the check stopped on an unexpected error" in runs
    japanese = (await client.get(f"/domains/{DOMAIN}?lang=ja")).text
    assert "最終チェック 2024-09-17 09:00 UTC" in japanese


async def test_the_domain_page_in_japanese(client: httpx.AsyncClient) -> None:
    """The roll-out's guards and next step and the monitor's events, runs and fixes are in
    Japanese; the names, codes and the JSON stay as they were."""
    data = (await client.get(f"/api/domains/{DOMAIN}")).json()
    page = await client.get(f"/domains/{DOMAIN}", headers={"accept-language": "ja"})
    html = unescape(page.text)
    rollout = html[html.index('id="rollout"') : html.index('id="history"')]
    assert "次の作業" in rollout
    assert "公開設定にありません：廃止してください（mtasts publish retire krvtz.net）" in rollout
    assert "2024-09-10 00:00 UTC から" in rollout  # testing-days
    assert "組織からレポートがあります。2 組織からのレポートが必要です" in rollout  # reporters
    assert "sts・証明書・STARTTLS の失敗は報告されていません" in rollout  # failures
    events = html[html.index('id="monitor-events"') : html.index('id="monitor-runs"')]
    assert (
        "MX レコードが変わりました：krvtz.net の MX ホストが変わりました（mx3.krvtz.net を削除）："
        "比べるためのポリシーは取得できませんでした" in events
    )
    assert "新しい MX ホストがポリシーに載っていなければ、mx 行に追加して新しい id を公開してください。" in events
    assert "指摘が解消しました：MX mx3.krvtz.net はポリシーのどの 'mx' 行にも一致しません。" in events
    assert "<code>mx-changed</code>" in events  # codes and subjects stay as they are
    assert UNLISTED.subject in events
    runs = html[html.index('id="monitor-runs"') :]
    assert "判定不能" in runs
    assert "チェックが予期しないエラーで止まりました" in runs
    english = [
        data["rollout"]["next"],
        *(g["message"] for g in data["rollout"]["guards"]),
        *(e["title"] for e in data["monitor"]["events"]),
        *(e["message"] for e in data["monitor"]["events"]),
        data["monitor"]["events"][0]["fix"],
        *(r["inconclusive_reason"] for r in data["monitor"]["runs"] if r["inconclusive_reason"]),
        "a new finding",
    ]
    assert len(english) == 11
    assert [text for text in english if text in html] == []


async def test_a_domain_the_monitor_never_checked(client: httpx.AsyncClient) -> None:
    data = (await client.get("/api/domains/company-y.example")).json()
    assert data["monitor"] == {"last_checked_at": None, "open_events": 0, "runs": [], "events": []}
    assert 'id="no-monitor"' in (await client.get("/domains/company-y.example")).text


@pytest.mark.parametrize(
    ("kind", "reason", "japanese"),
    [
        ("missing", "No such file or directory", "そのようなファイルやディレクトリはありません"),
        ("directory", "Is a directory", "ディレクトリです"),
    ],
)
async def test_an_unusable_publish_configuration_in_japanese(
    published_url: str, tmp_path: Path, kind: str, reason: str, japanese: str
) -> None:
    """The note on a publish configuration that cannot be read is Japanese down to the operating
    system's reason, which the JSON keeps as the system said it (read_config's own wording:
    a change there the shapes no longer fit fails here)."""
    path = tmp_path / "absent.toml" if kind == "missing" else tmp_path
    async with app_client(published_url, publish_config=path) as client:
        (note,) = (await client.get(f"/api/domains/{DOMAIN}")).json()["notes"]
        html = unescape((await client.get(f"/domains/{DOMAIN}?lang=ja")).text)
    assert note == (
        f"the publish configuration {path} cannot be used: {path}: cannot read the configuration: {reason}; "
        "check the path and its permissions (or give --config FILE)"
    )
    translated = translator("ja").translate(note)
    assert translated.complete, note
    assert translated.text in html
    assert f"公開設定 {path} を使えません：{path}：設定を読めません：{japanese}。" in html
    assert reason not in html


async def test_an_unknown_mx_or_address_in_japanese(published_url: str) -> None:
    """A failure reported without its receiving MX or sending IP is "(unknown)" in the JSON and
    on the English page, "（不明）" on the Japanese one (the table and its chart)."""
    async with app_client(published_url) as client:
        data = (await client.get("/api/reports")).json()
        english = (await client.get("/reports")).text
        japanese = (await client.get("/reports?lang=ja")).text
    assert "(unknown)" in data["by_receiving_mx"]
    for name in ("receiving-mx", "sending-ips"):
        part = japanese[japanese.index(f'<section id="{name}"') :].split("</section>")[0]
        assert "（不明）" in part.split("<table")[1]  # the table
        assert "（不明）" in part.split("<table")[0]  # the chart
        assert "(unknown)" not in part
        assert "(unknown)" in english[english.index(f'<section id="{name}"') :].split("</section>")[0]


@pytest.mark.parametrize(
    ("typed", "english", "japanese"),
    [
        ("foo", "'foo' is not a fully qualified domain name", "'foo' は完全修飾ドメイン名ではありません"),
        (
            "a..example",
            "'a..example' is not a valid domain name: the host name has an empty label "
            "(a leading, trailing or doubled dot)",
            "'a..example' は有効なドメイン名ではありません（ホスト名に空のラベルがあります",
        ),
        ("x" * 301, f"{'x' * 60!r}… is too long to be a domain name", f"{'x' * 60!r}… はドメイン名としては長すぎます"),
    ],
)
async def test_why_a_name_is_not_a_domain_in_japanese(
    client: httpx.AsyncClient, typed: str, english: str, japanese: str
) -> None:
    """The reason given for a name that is not a domain, on the domain page's address, the
    reports' filter and the inspector's form, in the reader's language (the JSON stays English)."""
    api = await client.get(f"/api/domains/{typed}")
    assert (api.status_code, api.json()["error"]["message"]) == (400, english)
    assert translator("ja").translate(english).complete, english
    for url in (f"/domains/{typed}", f"/reports?domain={typed}", f"/check?domain={typed}"):
        page = await client.get(url, headers={"accept-language": "ja"})
        assert page.status_code == 400, url
        assert japanese in unescape(page.text), url
        assert english not in unescape(page.text), url
    assert english in unescape((await client.get(f"/domains/{typed}")).text)

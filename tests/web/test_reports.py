"""The report dashboard (``/reports``, ``/reports/{domain}``) and its JSON and CSV, over the
shared TLSRPT samples ingested into a fresh SQLite store, in-process."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from html import unescape
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.tlsrpt_report import Rollup, TlsRptReport, parse_report
from mtasts.store.memory import MemoryReportStore
from mtasts.store.store import ReportStore
from mtasts.web.reports import (
    Period,
    ReportService,
    parse_period,
    pct,
    report_view,
    view_csv,
)
from tests.web.reports_fixtures import NOW, app_client, expected_totals, fill, sample_reports, sample_store


@pytest.fixture(scope="module")
def samples_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sample_store(tmp_path_factory.mktemp("reports"))


@pytest.fixture
async def client(samples_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(samples_url) as client:
        yield client


# --- the rule: sessions counted once ------------------------------------------------------------


def test_a_report_listing_sessions_under_tlsa_and_sts_counts_them_once() -> None:
    day = date(2025, 5, 23)
    rollup = Rollup(
        days=(("random.net", day, "sts", 2, 0), ("random.net", day, "tlsa", 2, 0), ("other.example", day, "sts", 5, 1)),
        senders=(
            ("random.net", "Microsoft Corporation", 4, 0, None, None),
            ("other.example", "Google", 5, 1, day, day),
        ),
        days_twice=(("random.net", day, 2, 0),),
        senders_twice=(("random.net", "Microsoft Corporation", 2, 0),),
    )
    view = report_view(rollup, [], period=Period(None, day))
    assert (view.totals.successful, view.totals.failed) == (7, 1)
    assert view.double_counted.successful == 2
    assert [(p.successful, p.failed) for p in view.daily] == [(7, 1)]
    assert view.by_organization["Microsoft Corporation"].successful == 2
    assert view.by_policy_type["sts"].successful == 7  # as reported, unchanged
    assert view.by_policy_type["tlsa"].successful == 2


def test_the_period_parameter() -> None:
    today = date(2026, 12, 1)
    assert parse_period(None, today) == Period(None, today)
    assert parse_period("all", today).since is None
    assert parse_period("30", today).since == today - timedelta(days=29)
    for bad in ("0", "-1", "3661", "1e3", "x", "9" * 40):
        with pytest.raises(ValueError, match="whole number"):
            parse_period(bad, today)
    assert pct(0.99951) == "99.95%"
    assert pct(1.0) == "100%"
    assert pct(None) == "—"


# --- over the samples -------------------------------------------------------------------------------


async def test_the_json_totals_are_the_samples_sessions_counted_once(client: httpx.AsyncClient) -> None:
    expected = expected_totals(sample_reports())
    response = await client.get("/api/reports")
    assert response.status_code == 200
    data = response.json()
    assert data["totals"]["successful"] == expected.successful
    assert data["totals"]["failed"] == expected.failed
    assert data["double_counted"]["successful"] + data["double_counted"]["failed"] == expected.double_counted
    assert sum(d["successful"] + d["failed"] for d in data["daily"]) == expected.successful + expected.failed
    domains = {d["policy_domain"]: d for d in data["domains"]}
    assert domains["random.net"]["successful"] == 2  # Microsoft listed 2 sessions under sts and tlsa
    assert domains["ueber.net"]["successful"] == 7
    assert data["by_policy_type"]["tlsa"]["successful"] >= 9


async def test_the_dashboard_shows_totals_and_the_failing_senders(client: httpx.AsyncClient) -> None:
    expected = expected_totals(sample_reports())
    page = await client.get("/reports")
    assert page.status_code == 200
    html = page.text
    assert f'id="total-sessions">{expected.successful + expected.failed:,}<' in html
    assert f"✗</span> {expected.failed:,}<" in html
    senders = html[html.index('id="senders"') : html.index('id="result-types"')]
    assert "Company-X" in senders
    assert "starttls-not-supported" in senders
    assert "Microsoft Corporation" in senders
    assert "sts-policy-fetch-error" in senders
    assert "an MX did not offer STARTTLS: enable TLS on every MX" in senders
    assert "<svg" in html
    assert 'role="img"' in html
    assert 'id="daily-table"' in html  # and their tables
    assert "Counted once:" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing from elsewhere


async def test_one_domain_with_its_mx_ip_and_reporters(client: httpx.AsyncClient) -> None:
    page = await client.get("/reports/company-y.example")
    assert page.status_code == 200
    html = page.text
    assert "mx2.mail.company-y.example" in html
    assert "2001:db8:abcd:0013::1" in html
    reporters = html[html.index('id="reporters-table"') :]
    assert "Company-X" in reporters
    assert "2016-04-01" in reporters
    data = (await client.get("/api/reports/company-y.example")).json()
    assert data["domain"] == "company-y.example"
    assert data["by_receiving_mx"]["mx2.mail.company-y.example"] == 200
    assert data["reporters"][0]["days_silent"] == (NOW.date() - date(2016, 4, 1)).days
    assert data["failing_senders"][0]["failed_sessions"] == 303


async def test_the_filters(client: httpx.AsyncClient) -> None:
    moved = await client.get("/reports", params={"domain": "Company-Y.Example.", "days": "30"})
    assert moved.status_code == 303
    assert moved.headers["location"] == "/reports/company-y.example?days=30"
    recent = (await client.get("/api/reports", params={"days": "30"})).json()
    assert recent["since"] == (NOW.date() - timedelta(days=29)).isoformat()
    assert all(day["day"] >= recent["since"] for day in recent["daily"])
    everything = (await client.get("/api/reports")).json()
    assert recent["totals"]["successful"] < everything["totals"]["successful"]
    bad = await client.get("/api/reports", params={"days": "zero"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "period-invalid"
    bad = await client.get("/api/reports/not_a_domain")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "domain-invalid"
    assert (await client.get("/reports?days=-3")).status_code == 400


async def test_csv_downloads_what_is_shown(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/reports.csv", params={"table": "senders", "domain": "company-y.example"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "tlsrpt-company-y.example-senders.csv" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["policy_domain", "organization_name", "failed_sessions"]
    assert rows[1][:3] == ["company-y.example", "Company-X", "303"]
    page = (await client.get("/reports/company-y.example")).text
    assert "/api/reports.csv?domain=company-y.example&amp;table=senders" in page
    daily = list(csv.reader(io.StringIO((await client.get("/api/reports.csv?table=daily")).text)))
    data = (await client.get("/api/reports")).json()
    assert len(daily) == len(data["daily"]) + 1
    unknown = await client.get("/api/reports.csv", params={"table": "passwords"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "table-invalid"


def test_csv_cells_cannot_become_spreadsheet_formulas() -> None:
    day = date(2026, 1, 1)
    rollup = Rollup(
        days=(("evil.example", day, "sts", 0, 1),),
        senders=(("evil.example", '=HYPERLINK("http://x")', 0, 1, day, day),),
        failures=(("evil.example", '=HYPERLINK("http://x")', "result_type", "+cmd", 1, day, day, 0),),
    )
    text = view_csv(report_view(rollup, [], period=Period(None, day)), "senders")
    assert "'=HYPERLINK" in text
    assert "'+cmd" in text


async def test_japanese(client: httpx.AsyncClient) -> None:
    page = await client.get("/reports", headers={"accept-language": "ja"})
    assert page.headers["content-language"] == "ja"
    assert "対応が必要な送信元" in page.text
    assert "日ごとのセッション" in page.text  # the chart's labels too
    assert "Company-X" in page.text


@pytest.mark.parametrize("path", ["/reports", "/reports/company-y.example", "/reports/blogreen.org"])
async def test_the_readiness_reasons_and_the_advice_in_japanese(client: httpx.AsyncClient, path: str) -> None:
    """What the analysis says (why a domain is or is not ready for enforce, what to do about a
    failing sender) is Japanese on the page and English in the JSON."""
    data = (await client.get(path.replace("/reports", "/api/reports"))).json()
    html = unescape((await client.get(path, params={"lang": "ja"})).text)
    domains = html[html.index('id="domains-table"') : html.index('id="senders"')]
    senders = html[html.index('id="senders"') : html.index('id="result-types"')]
    english = [row["readiness"]["explanation"] for row in data["domains"]]
    english += [sender["advice"] for sender in data["failing_senders"]]
    assert english
    assert [text for text in english if text in html] == []
    if path == "/reports/blogreen.org":
        assert "報告された sts のセッションは 1 件だけです：レポートがもっと集まるまでお待ちください" in domains
        assert "No sender reported a failed TLS session." not in html
        return
    assert "1% を超えるセッションが失敗しています：enforce にするとメールが返送されます" in domains
    assert "MX が STARTTLS を提供しませんでした：すべての MX で TLS を有効にしてください" in senders
    if path == "/reports":
        assert "2024-09-03 までの 30 日間に MTA-STS ポリシーを報告した送信側はありません" in domains
        assert "登録されていない結果の種類 'Testing'：意味を送信側に問い合わせてください" in senders
        assert "（なし）" in domains  # the reports without a policy domain


async def test_no_database_yet_is_an_empty_dashboard_that_says_so(tmp_path: Path) -> None:
    async with app_client(f"sqlite:///{tmp_path / 'none.sqlite3'}") as client:
        page = await client.get("/reports")
        assert page.status_code == 200
        assert "No reports are stored yet" in page.text
        assert "mtasts report ingest" in page.text
        data = (await client.get("/api/reports")).json()
        assert data["totals"]["successful"] == 0
        assert "no report database" in data["missing"]
    assert not (tmp_path / "none.sqlite3").exists()  # read only: nothing created


async def test_without_a_store_the_pages_say_so() -> None:
    async with app_client(None) as client:
        response = await client.get("/api/reports")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store-unavailable"
        assert "--db" in (await client.get("/reports")).text


def test_the_sql_store_and_the_memory_store_give_the_same_dashboard(samples_url: str) -> None:
    """What was counted twice and the reporters are kept by each store at ingest (SQL tables,
    Python dicts): both must give the same dashboard."""
    memory = MemoryReportStore()
    with memory:
        fill(memory)
        for days, domain in ((None, None), (30, None), (None, "random.net"), (3660, "company-y.example")):
            period = Period(days, NOW.date())
            sql_view = ReportService(lambda: ReportStore(samples_url, create=False)).view(period, domain)
            memory_view = ReportService(lambda: memory).view(period, domain)
            assert sql_view.to_dict() | {"store": ""} == memory_view.to_dict() | {"store": ""}


async def test_new_reports_show_without_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'grow.sqlite3'}"
    with ReportStore(url) as store:
        store.add_reports(sample_reports()[:1], source="t", now=NOW)
    async with app_client(url) as client:
        first = (await client.get("/api/reports")).json()
        with ReportStore(url) as store:
            store.add_reports(sample_reports()[1:], source="t", now=NOW)
        second = (await client.get("/api/reports")).json()
    assert len(second["domains"]) > len(first["domains"])


async def test_the_summary_and_the_dashboard_count_the_same_sessions(
    client: httpx.AsyncClient, samples_url: str, runner: CliRunner
) -> None:
    """One rule: ``mtasts report summary --json`` and ``/api/reports`` give each domain the same
    totals, counted once, and the same sessions by policy type, as reported."""
    expected = expected_totals(sample_reports())
    result = runner.invoke(app, ["report", "summary", "--json", "--db", samples_url])
    assert result.exit_code == 0, result.output
    summary = {d["policy_domain"]: d for d in json.loads(result.stdout)["domains"]}
    dashboard = {d["policy_domain"]: d for d in (await client.get("/api/reports")).json()["domains"]}
    assert {k: (d["total_successful"], d["total_failure"]) for k, d in summary.items()} == {
        k: (d["successful"], d["failed"]) for k, d in dashboard.items()
    }
    assert sum(d["total_successful"] for d in summary.values()) == expected.successful
    assert summary["random.net"]["total_successful"] == 2
    assert summary["random.net"]["double_counted"] == {"total_successful": 2, "total_failure": 0}
    assert summary["random.net"]["by_policy_type"]["sts"]["total_successful"] == 2  # as reported
    assert summary["random.net"]["by_policy_type"]["tlsa"]["total_successful"] == 2
    policy_types = (await client.get("/api/reports/random.net")).json()["by_policy_type"]
    assert policy_types["sts"]["successful"] == policy_types["tlsa"]["successful"] == 2


def many_senders(count: int) -> list[TlsRptReport]:
    """One report per sending organisation, ``Sender 000`` failing most; the first one from
    seven sending IPs."""
    reports = []
    for number in range(count):
        details = [
            {
                "result-type": "certificate-expired",
                "failed-session-count": count - number,
                "sending-mta-ip": f"192.0.2.{ip}",
            }
            for ip in range(1, 8 if number == 0 else 2)
        ]
        document = {
            "organization-name": f"Sender {number:03d}",
            "date-range": {"start-datetime": "2026-11-20T00:00:00Z", "end-datetime": "2026-11-20T23:59:59Z"},
            "report-id": f"many-{number}",
            "policies": [
                {
                    "policy": {"policy-type": "sts", "policy-domain": "many.example"},
                    "summary": {
                        "total-successful-session-count": 10,
                        "total-failure-session-count": sum(d["failed-session-count"] for d in details),
                    },
                    "failure-details": details,
                }
            ],
        }
        reports.append(parse_report(json.dumps(document).encode()))
    return reports


async def test_the_page_lists_the_senders_that_fail_most_and_the_downloads_list_all(tmp_path: Path) -> None:
    """A big store's thousands of failing senders would make a page of megabytes: the page lists
    the 100 that fail most (each with its first 5 addresses), says so, and the CSV and JSON all."""
    url = f"sqlite:///{tmp_path / 'many.sqlite3'}"
    with ReportStore(url) as store:
        store.add_reports(many_senders(130), source="t", now=NOW)
    async with app_client(url) as client:
        html = (await client.get("/reports")).text
        data = (await client.get("/api/reports")).json()
        rows = list(csv.reader(io.StringIO((await client.get("/api/reports.csv?table=senders")).text)))
        one_domain = (await client.get("/reports/many.example?days=30")).text  # a period, one domain
    senders = html[html.index('id="senders-table"') : html.index('id="result-types"')]
    assert senders.count('<tr class="sender">') == 100
    assert "Sender 000" in senders
    assert "Sender 099" in senders
    assert "Sender 100" not in senders
    assert "The 100 senders with the most failed sessions of 130 are shown" in senders
    first = senders[senders.index("Sender 000") : senders.index("Sender 001")]
    assert "<code>192.0.2.5</code> +2" in first
    assert "192.0.2.6" not in first
    assert len(data["failing_senders"]) == 130
    assert len(data["failing_senders"][0]["sending_ips"]) == 7
    assert len(rows) == 131  # a header and every sender
    assert one_domain.count('<tr class="sender">') == 100
    assert 'id="senders-shown"' in one_domain

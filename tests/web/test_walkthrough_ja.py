"""What a new user meets on the pages in Japanese (``Accept-Language: ja``), and its English: why a
page cannot be shown (a bad period, an unknown action, a name that is not a domain) in the
reader's language with a title about what was asked for, full-width colons in the Japanese
headings, the reports without a policy domain as 「（なし）」 in every table, the readiness reason
with its window, and a next step that says what to do. The JSON stays English."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import Client, finished
from tests.web.reports_fixtures import app_client, sample_store

JA = {"accept-language": "ja"}
PERIOD = "days は 1 から 3660 までの整数か 'all' にしてください（指定された値は {got} です）"


@pytest.fixture(scope="module")
def samples_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sample_store(tmp_path_factory.mktemp("walkthrough"))


@pytest.fixture
async def client(samples_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(samples_url) as made:
        yield made


def _title(html: str) -> str:
    match = re.search(r"<title>(.*?) · mtasts</title>", html, re.S)
    assert match is not None
    return unescape(match.group(1))


def _unavailable(html: str) -> tuple[str, str]:
    """The "cannot be shown" line as a reader sees it: its lead, and why."""
    match = re.search(r'id="unavailable">.*?</span> (.*?)<span>(.*?)</span></p>', html, re.S)
    assert match is not None
    return unescape(match.group(1)), unescape(match.group(2))


# as read: a full-width colon takes no space after it, an ASCII one does
CANNOT = {"ja": "このページを表示できません：", "en": "This page cannot be shown: "}


@pytest.mark.parametrize(
    ("path", "api", "got", "title_ja", "title_en"),
    [
        ("/reports?days=0", "/api/reports?days=0", "'0'", "TLS レポート", "TLS reports"),
        (
            "/reports/eden.one?days=9999",
            "/api/reports/eden.one?days=9999",
            "'9999'",
            "TLS レポート：eden.one",
            "TLS reports: eden.one",
        ),
        (
            "/domains/eden.one?days=abc",
            "/api/domains/eden.one?days=abc",
            "'abc'",
            "ドメインのページ：eden.one",
            "Domain page: eden.one",
        ),
    ],
)
async def test_a_bad_period_is_said_in_the_pages_language(
    client: httpx.AsyncClient, path: str, api: str, got: str, title_ja: str, title_en: str
) -> None:
    english = f"days must be a whole number from 1 to 3660, or 'all' (got {got})"
    japanese = await client.get(path, headers=JA)
    assert japanese.status_code == 400
    assert _unavailable(japanese.text) == (CANNOT["ja"], PERIOD.format(got=got))
    assert english not in unescape(japanese.text)
    assert _title(japanese.text) == title_ja
    page = await client.get(path)
    assert _unavailable(page.text) == (CANNOT["en"], english)
    assert _title(page.text) == title_en
    data = (await client.get(api, headers=JA)).json()
    assert data == {"error": {"code": "period-invalid", "message": english}}  # the JSON stays English


async def test_an_unknown_action_is_said_in_the_pages_language(client: httpx.AsyncClient) -> None:
    japanese = await client.get("/domains/eden.one/actions/bogus", headers=JA)
    assert japanese.status_code == 404
    assert _unavailable(japanese.text) == (
        CANNOT["ja"],
        "そのような操作はありません。apply, enforce, retire のいずれかを選んでください",
    )
    assert _title(japanese.text) == "公開の操作：eden.one"
    english = await client.get("/domains/eden.one/actions/bogus")
    assert _unavailable(english.text) == (CANNOT["en"], "no such action: choose apply, enforce, retire")
    data = (await client.get("/api/domains/eden.one/actions/bogus", headers=JA)).json()
    assert data == {"error": {"code": "action-unknown", "message": "no such action: choose apply, enforce, retire"}}


async def test_why_a_name_is_not_a_domain_reads_as_one_sentence(client: httpx.AsyncClient) -> None:
    """The inner reason in parentheses, not a second colon after 「表示できません：」."""
    for path in ("/reports/-bad-", "/domains/-bad-", "/reports?domain=-bad-"):
        page = await client.get(path, headers=JA)
        assert page.status_code == 400, path
        assert _unavailable(page.text) == (
            CANNOT["ja"],
            "'-bad-' は有効なドメイン名ではありません（ラベル '-bad-' の先頭か末尾がハイフンです）",
        ), path
    data = (await client.get("/api/reports/-bad-")).json()
    english = "'-bad-' is not a valid domain name: the label '-bad-' starts or ends with a hyphen"
    assert data["error"]["message"] == english  # the JSON stays English


async def test_the_reports_without_a_policy_domain_are_none_in_every_table(client: httpx.AsyncClient) -> None:
    html = unescape((await client.get("/reports", headers=JA)).text)
    reporters = html[html.index('id="reporters-table"') :].split("</table>")[0]
    assert "（なし）" in reporters
    assert "(none)" not in reporters
    domains = html[html.index('id="domains-table"') :].split("</table>")[0]
    assert "（なし）" in domains
    english = unescape((await client.get("/reports")).text)
    assert "(none)" in english[english.index('id="reporters-table"') :].split("</table>")[0]


async def test_the_japanese_headings_use_full_width_colons(client: httpx.AsyncClient) -> None:
    japanese = await client.get("/reports/eden.one", headers=JA)
    assert _title(japanese.text) == "TLS レポート：eden.one"
    assert _title((await client.get("/reports/eden.one")).text) == "TLS reports: eden.one"


async def test_the_readiness_reason_says_its_window(client: httpx.AsyncClient) -> None:
    """「7 件だけです」 beside thousands of sessions: the reason says it counts the readiness window."""
    data = (await client.get("/api/reports/blogreen.org")).json()
    (row,) = data["domains"]
    until = row["readiness"]["until"]
    japanese = unescape((await client.get("/reports/blogreen.org", headers=JA)).text)
    assert (
        "報告された sts のセッションは 1 件だけです：レポートがもっと集まるまでお待ちください"
        f"（enforce への準備状況は {until} までの 30 日間で数えています）"
    ) in japanese
    english = unescape((await client.get("/reports/blogreen.org")).text)
    assert (
        "only 1 sts session reported: wait for more reports "
        f"(counted over the readiness window: the 30 days to {until})"
    ) in english
    assert row["readiness"]["explanation"] == "only 1 sts session reported: wait for more reports"  # JSON as it was


async def test_the_terms_of_readiness_are_one(client: httpx.AsyncClient) -> None:
    html = unescape((await client.get("/reports", headers=JA)).text)
    assert '<h2 id="domains-title">ドメインと enforce への準備状況</h2>' in html
    assert "強制モード" not in html
    one = unescape((await client.get("/reports/eden.one", headers=JA)).text)
    assert '<h2 id="domains-title">enforce への準備状況</h2>' in one


async def test_an_unconfigured_domain_is_told_what_to_do_next(tmp_path: Path, samples_url: str) -> None:
    config = tmp_path / "publish.toml"
    config.write_text('[[domain]]\nname = "other.example"\nmode = "testing"\nmx = ["mx.other.example"]\n')
    async with app_client(samples_url, publish_config=config) as client:
        japanese = unescape((await client.get("/domains/eden.one", headers=JA)).text)
        english = unescape((await client.get("/domains/eden.one")).text)
        data = (await client.get("/api/domains/eden.one")).json()
    assert f'id="next">公開設定（{config}）に eden.one を追加してください' in japanese
    assert "（mtasts publish init eden.one で、いま公開されている内容からエントリを書けます）" in japanese
    assert f'id="next">Add eden.one to the publish configuration ({config}): mtasts publish init eden.one' in english
    assert data["rollout"]["next"] == "not configured"  # the JSON as mtasts publish status --json says it


@pytest.mark.lab
async def test_the_per_mx_probe_state_is_a_word_in_the_pages_language(web: Client, lab: Any) -> None:
    domain = lab.domain("mx-cert-expired")
    async with web() as client:
        started = await client.get("/check", params={"domain": domain})
        english = (await finished(client, started.headers["location"])).text
        japanese = (await client.get(started.headers["location"], headers=JA)).text
        data = (await client.get(f"/api/check?domain={domain}")).json()
    states = {e["result"] for mx in data["mx_hosts"] for e in mx["addresses"] if "result" in e}
    assert states == {"tls"}  # the JSON as it was
    assert re.search(r'<span class="probe probe-tls">TLS failed</span> <code>tls</code>', english)
    assert re.search(r'<span class="probe probe-tls">TLS 失敗</span> <code>tls</code>', japanese)
    assert re.search(r": tls(<br>|</td>)", english) is None

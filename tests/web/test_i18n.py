"""Languages: Accept-Language, the switch and its cookie, the server's default; Japanese page
texts and finding meanings, with codes and JSON keys in English."""

from __future__ import annotations

from typing import Any

import pytest

from mtasts.web.i18n import choose_language, parse_accept_language
from tests.web.conftest import Client, finished, section


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ja,en-US;q=0.9,en;q=0.8", [("ja", 1.0), ("en", 0.9), ("en", 0.8)]),
        ("en;q=0.5, ja-JP", [("ja", 1.0), ("en", 0.5)]),
        ("fr;q=0, ja;q=0.3", [("ja", 0.3)]),
        ("ja;q=abc, en", [("en", 1.0)]),
        ("", []),
        (" , ;q=1", []),
    ],
)
def test_parse_accept_language(header: str, expected: list[tuple[str, float]]) -> None:
    assert parse_accept_language(header) == expected


@pytest.mark.parametrize(
    ("query", "cookie", "header", "default", "expected"),
    [
        (None, None, "ja-JP,ja;q=0.9", "en", "ja"),
        (None, None, "fr-FR, de;q=0.8", "en", "en"),
        (None, None, "fr-FR, de;q=0.8", "ja", "ja"),
        (None, None, "fr, en;q=0.5, ja;q=0.4", "ja", "en"),
        (None, "ja", "en", "en", "ja"),
        ("en", "ja", "ja", "ja", "en"),
        ("xx", "ja", "en", "en", "ja"),
        (None, None, "*", "ja", "ja"),
        (None, None, None, "en", "en"),
    ],
)
def test_choose_language(
    query: str | None, cookie: str | None, header: str | None, default: str, expected: str
) -> None:
    assert choose_language(query, cookie, header, default) == expected


@pytest.mark.lab
async def test_japanese_from_accept_language(web: Client) -> None:
    async with web() as client:
        page = await client.get("/", headers={"accept-language": "ja-JP,ja;q=0.9,en;q=0.5"})
    assert '<html lang="ja">' in page.text
    assert page.headers["content-language"] == "ja"
    assert "ドメインをチェック" in page.text
    assert '<button type="submit" id="submit">チェック</button>' in page.text
    assert '<a href="/?lang=en" lang="en" hreflang="en" id="lang-en">English</a>' in page.text


@pytest.mark.lab
async def test_the_switch_is_remembered_in_a_cookie(web: Client) -> None:
    async with web() as client:
        switched = await client.get("/", params={"lang": "ja"}, headers={"accept-language": "en"})
        later = await client.get("/", headers={"accept-language": "en"})
        back = await client.get("/", params={"lang": "en"})
        after = await client.get("/", headers={"accept-language": "ja"})
    assert "lang=ja" in switched.headers["set-cookie"]
    assert "SameSite=lax" in switched.headers["set-cookie"]
    assert '<html lang="ja">' in switched.text
    assert '<html lang="ja">' in later.text
    assert '<html lang="en">' in back.text
    assert '<html lang="en">' in after.text  # the cookie wins over the header


@pytest.mark.lab
async def test_the_servers_default_language(web: Client) -> None:
    async with web(language="ja") as client:
        default = await client.get("/")
        english = await client.get("/", headers={"accept-language": "en-GB"})
    assert '<html lang="ja">' in default.text
    assert '<html lang="en">' in english.text


@pytest.mark.lab
async def test_result_in_japanese(web: Client, lab: Any) -> None:
    domain = lab.domain("mx-cert-expired")
    async with web(language="ja") as client:
        started = await client.get("/check", params={"domain": domain})
        html = (await finished(client, started.headers["location"])).text
    assert "送信側の動作" in html
    assert "MX ホストごとの判定" in html
    assert "送信側はメールの配送を保留します。使える MX がありません。" in html
    assert "エラー 1 件" in html
    mta_sts = section(html, "mta-sts")
    assert '<code class="code">mx-cert-expired</code>' in mta_sts  # codes stay English
    assert "MX の証明書の有効期限が切れています" in mta_sts  # the catalogue's meaning, translated
    assert "<strong>対処：</strong>" in mta_sts
    assert f"<span>mx1.{domain} の証明書を更新し、MTA に再読み込みさせてください。</span>" in mta_sts  # mtasts.i18n
    assert "TLS レポート（TLS-RPT）" in section(html, "tlsrpt")


@pytest.mark.lab
async def test_progress_events_in_the_pages_language(web: Client, lab: Any) -> None:
    async with web() as client:
        events = await client.get(
            "/check/events", params={"domain": lab.domain("policy-hang")}, headers={"accept-language": "ja"}
        )
    assert f"{lab.domain('policy-hang')} をチェック中" in events.text
    assert '"state": "running"' in events.text  # keys and states stay English

"""What a newcomer meets first, found by trying the web as one (docs/web.md, "Tried as a new
user"): once signed in, every page's header leads to the TLS-report dashboard and a check's
result to the domain's page; an anonymous visitor of a public inspector is not sent towards
pages that would only ask them to sign in; an address no route answers is a page in the
reader's language with the way back (JSON under ``/api/``), not a bare "Not Found".

In-process (httpx over ASGI) with accounts over a fresh SQLite database, checks against the lab.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mtasts.net.settings import NetworkSettings
from mtasts.store.store import ReportStore
from mtasts.web import WebSettings, create_app
from mtasts.web.accounts import Accounts, Role, hash_password
from mtasts.web.auth import Auth, AuthSettings
from tests.web.auth_fixtures import FAST, PASSWORDS, Clock, sign_in

pytestmark = pytest.mark.lab


@asynccontextmanager
async def signed(tmp_path: Path, network: NetworkSettings, *, public: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    """The app with accounts (alice, admin) over a store in ``tmp_path``, and a client."""
    db = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    accounts = Accounts(ReportStore(db))
    accounts.open()
    accounts.add_user("alice", hash_password(PASSWORDS["alice"], cost=FAST), Role.ADMIN, now=datetime.now(UTC))
    app = create_app(
        WebSettings(network=network, db=db, public=public),
        auth=Auth(accounts, AuthSettings(public=public), clock=Clock()),
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web.test") as client:
            yield client
    finally:
        await app.state.checks.close()
        app.state.reports.close()
        accounts.close()


async def test_signed_in_the_header_leads_to_the_dashboard_and_a_result_to_its_domain_page(
    tmp_path: Path, lab_network: NetworkSettings, lab: Any
) -> None:
    domain = lab.domain("mx-cert-expired")
    async with signed(tmp_path, lab_network) as client:
        assert 'id="nav-reports"' not in (await client.get("/login")).text  # nobody signed in yet
        assert (await sign_in(client, "alice")).status_code == 303
        home = (await client.get("/")).text
        assert '<a href="/reports" id="nav-reports">TLS reports</a>' in home
        assert '<a href="/reports" id="nav-reports">TLS レポート</a>' in (await client.get("/?lang=ja")).text
        result = await client.get("/api/check", params={"domain": domain})
        page = (await client.get(result.headers["content-location"], params={"lang": "en"})).text
        assert f'<a href="/domains/{domain}" id="domain-page">Domain page</a>' in page
        domain_page = await client.get(f"/domains/{domain}")
        assert domain_page.status_code == 200
        assert f'<h1 class="domain">{domain}</h1>' in domain_page.text


async def test_an_anonymous_visitor_of_a_public_inspector_is_not_led_to_pages_behind_the_login(
    tmp_path: Path, lab_network: NetworkSettings, lab: Any
) -> None:
    domain = lab.domain("mx-cert-expired")
    async with signed(tmp_path, lab_network, public=True) as client:
        home = await client.get("/")
        assert home.status_code == 200
        assert 'id="nav-reports"' not in home.text
        result = await client.get("/api/check", params={"domain": domain})
        assert result.status_code == 200
        page = (await client.get(result.headers["content-location"])).text
        assert "mx-cert-expired" in page
        assert 'id="domain-page"' not in page


async def test_an_unknown_address_is_a_page_with_the_way_back_and_json_under_the_api(
    tmp_path: Path, lab_network: NetworkSettings
) -> None:
    async with signed(tmp_path, lab_network) as client:
        assert (await sign_in(client, "alice")).status_code == 303
        english = await client.get("/no-such-page")
        assert english.status_code == 404
        assert "<h1>Page not found</h1>" in english.text
        assert '<a href="/">Check a domain</a> · <a href="/reports">TLS reports</a>' in english.text
        japanese = await client.get("/no-such-page", headers={"accept-language": "ja"})
        assert japanese.status_code == 404
        assert "<h1>ページが見つかりません</h1>" in japanese.text
        assert japanese.headers["content-language"] == "ja"
        api = await client.get("/api/no-such-route")
        assert api.status_code == 404
        assert api.json()["error"]["code"] == "not-found"

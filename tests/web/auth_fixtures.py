"""The web app with accounts, in-process: a fresh SQLite database with two users (``alice``,
admin; ``bob``, read-only), a clock the test steps, and helpers that sign in as a browser does
(fetch the form, send its CSRF token back)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mtasts.store.store import ReportStore
from mtasts.web import WebSettings, create_app
from mtasts.web.accounts import Accounts, Role, ScryptCost, hash_password
from mtasts.web.auth import Auth, AuthSettings

FAST = ScryptCost(log_n=10)  # the tests' hashes: cheap, same code path (the cost is in the hash)
PASSWORDS = {"alice": "alice's long password", "bob": "bob's long password"}
START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC).timestamp()


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    """One app with accounts: its :class:`Auth`, its clock, and a client factory."""

    app: Any
    auth: Auth
    clock: Clock
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, address: str = "127.0.0.1", *, base_url: str = "http://web.test") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url=base_url)
        self.clients.append(client)
        return client


MakeSite = Callable[..., AbstractAsyncContextManager[Site]]


@pytest.fixture
def site(tmp_path: Path) -> MakeSite:
    """``async with site(**auth_settings) as s``: the app over a new database with alice and bob."""

    @asynccontextmanager
    async def make(*, public: bool = False, **options: Any) -> AsyncIterator[Site]:
        store = ReportStore(f"sqlite:///{tmp_path / 'web.sqlite3'}")
        accounts = Accounts(store)
        accounts.open()
        now = datetime.fromtimestamp(START, UTC)
        if not accounts.users():
            accounts.add_user("alice", hash_password(PASSWORDS["alice"], cost=FAST), Role.ADMIN, now=now)
            accounts.add_user("bob", hash_password(PASSWORDS["bob"], cost=FAST), Role.READ_ONLY, now=now)
        clock = Clock()
        auth = Auth(accounts, AuthSettings(public=public, **options), clock=clock)
        app = create_app(WebSettings(public=public), auth=auth)
        made = Site(app, auth, clock)
        try:
            yield made
        finally:
            for client in made.clients:
                await client.aclose()
            await app.state.checks.close()
            accounts.close()

    return make


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match is not None, "the page has no CSRF field"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str | None = None, **extra: str) -> httpx.Response:
    """Open the login form and submit it, as a browser would."""
    form = await client.get("/login")
    assert form.status_code == 200, form.text
    data = {
        "csrf_token": form_token(form.text),
        "name": name,
        "password": PASSWORDS[name] if password is None else password,
        **extra,
    }
    return await client.post("/login", data=data)

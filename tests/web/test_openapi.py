"""``/openapi.json`` is true: schemathesis generates requests for every operation it describes,
from the document alone, and checks each answer against it (no 5xx, the status codes, content
types, headers and bodies it documents), against the app over the shared TLSRPT samples in a
fresh store; the inspector's operations check domains against the lab. The operations of an app
with accounts (``/api/session``, ``/api/audit``) run against one, as alice (admin), bob
(read-only) and nobody."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (a test dependency) is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from mtasts.net.settings import NetworkSettings  # noqa: E402
from mtasts.store.store import ReportStore  # noqa: E402
from mtasts.web import WebSettings, create_app  # noqa: E402
from mtasts.web.accounts import Accounts, Role, hash_password  # noqa: E402
from mtasts.web.auth import SESSION_COOKIE, Auth, AuthSettings  # noqa: E402
from mtasts.web.openapi import openapi_document  # noqa: E402
from tests.web.auth_fixtures import FAST, PASSWORDS  # noqa: E402
from tests.web.reports_fixtures import NOW, sample_store  # noqa: E402

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, lab_network: NetworkSettings) -> Any:
    url = sample_store(tmp_path_factory.mktemp("openapi"))
    app = create_app(WebSettings(db=url, network=lab_network))
    app.state.reports.clock = lambda: NOW
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _accounts_app(folder: Path) -> tuple[Any, Accounts, dict[str, dict[str, str]]]:
    """An app with accounts over a new database (alice admin, bob read-only, one audit entry),
    and the session cookies of each and of nobody."""
    accounts = Accounts(ReportStore(f"sqlite:///{folder / 'web.sqlite3'}"))
    accounts.open()
    now = datetime.now(UTC)
    accounts.add_user("alice", hash_password(PASSWORDS["alice"], cost=FAST), Role.ADMIN, now=now)
    accounts.add_user("bob", hash_password(PASSWORDS["bob"], cost=FAST), Role.READ_ONLY, now=now)
    accounts.audit("alice", "login", "from 127.0.0.1", now=now)
    auth = Auth(accounts, AuthSettings())
    cookies: dict[str, dict[str, str]] = {"nobody": {}}
    for name in ("alice", "bob"):
        user = accounts.user(name)
        assert user is not None
        token, _ = accounts.create_session(user, now=now, lifetime=timedelta(hours=1))
        cookies[name] = {SESSION_COOKIE: asyncio.run(auth.sign("session", token))}
    return create_app(WebSettings(), auth=auth), accounts, cookies


@pytest.fixture(scope="module")
def accounts_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    app, accounts, cookies = _accounts_app(tmp_path_factory.mktemp("openapi-accounts"))
    yield schemathesis.openapi.from_asgi("/openapi.json", app, cookies=cookies["alice"]), cookies  # signed in
    accounts.close()


ACCOUNT_OPERATIONS = [("/api/session", "GET"), ("/api/audit", "GET")]


# schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) does not run on
# this pytest; the same thing by hand: one test per operation, Hypothesis drawing its cases.
OPERATIONS = [
    (path, method.upper())
    for path, item in openapi_document()["paths"].items()
    for method in item
    if (path, method.upper()) not in ACCOUNT_OPERATIONS
]


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_every_answer_matches_the_document(api_schema: Any, path: str, method: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate()

    run()


@pytest.mark.parametrize("who", ["alice", "bob", "nobody"])
@pytest.mark.parametrize(("path", "method"), ACCOUNT_OPERATIONS, ids=[f"{m} {p}" for p, m in ACCOUNT_OPERATIONS])
def test_the_accounts_answers_match_the_document(accounts_schema: Any, path: str, method: str, who: str) -> None:
    schema, cookies = accounts_schema
    operation = schema[path][method]
    statuses: set[int] = set()

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    def run(case: Any) -> None:
        statuses.add(case.call_and_validate(cookies=cookies[who]).status_code)

    run()
    expected = {"alice": 200, "bob": 403 if path == "/api/audit" else 200, "nobody": 401}[who]
    assert expected in statuses, statuses


def test_the_document_names_every_json_route(tmp_path: Path) -> None:
    """Every /api route of the app is in the document (a new one cannot be left out), those of
    an app with accounts too."""
    app, accounts, _ = _accounts_app(tmp_path)
    try:
        routes = {route.path for route in app.routes if getattr(route, "path", "").startswith("/api/")}  # type: ignore[attr-defined]
    finally:
        accounts.close()
    assert routes == set(openapi_document()["paths"])

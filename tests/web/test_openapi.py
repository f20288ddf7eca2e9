"""``/openapi.json`` is true: schemathesis generates requests for every operation it describes,
from the document alone, and checks each answer against it (no 5xx, the status codes, content
types, headers and bodies it documents), against the app over the shared TLSRPT samples in a
fresh store; the inspector's operations check domains against the lab."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (a test dependency) is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from mtasts.net.settings import NetworkSettings  # noqa: E402
from mtasts.web import WebSettings, create_app  # noqa: E402
from mtasts.web.openapi import openapi_document  # noqa: E402
from tests.web.reports_fixtures import NOW, sample_store  # noqa: E402

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, lab_network: NetworkSettings) -> Any:
    url = sample_store(tmp_path_factory.mktemp("openapi"))
    app = create_app(WebSettings(db=url, network=lab_network))
    app.state.reports.clock = lambda: NOW
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) does not run on
# this pytest; the same thing by hand: one test per operation, Hypothesis drawing its cases.
OPERATIONS = [(path, method.upper()) for path, item in openapi_document()["paths"].items() for method in item]


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


def test_the_document_names_every_json_route() -> None:
    """Every /api route of the app is in the document (a new one cannot be left out)."""
    app = create_app(WebSettings())
    routes = {route.path for route in app.routes if getattr(route, "path", "").startswith("/api/")}  # type: ignore[attr-defined]
    assert routes == set(openapi_document()["paths"])

"""The JSON API behind the pages: the same object ``mtasts check --json`` prints, errors in
the report endpoint's shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from tests.web.conftest import Client

pytestmark = pytest.mark.lab

_RUN_DEPENDENT = ("checked_at", "elapsed_seconds")


def _stable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in _RUN_DEPENDENT}


@pytest.mark.parametrize("scenario", ["mx-cert-expired", "testing-ok", "tlsrpt-missing"])
async def test_api_check_is_the_json_of_mtasts_check(
    web: Client, lab: Any, lab_options_web: list[str], scenario: str
) -> None:
    domain = lab.domain(scenario)
    # the command runs its own event loop: in a thread, beside this test's
    cli = await asyncio.to_thread(CliRunner().invoke, app, ["check", "--json", domain, *lab_options_web])
    [expected] = json.loads(cli.stdout)
    async with web() as client:
        answer = await client.get("/api/check", params={"domain": domain, "lang": "ja"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-location"].startswith("/result/")
    document = answer.json()
    assert _stable(document) == _stable(expected)  # keys and messages stay English in any language
    assert set(document) == set(expected)


async def test_api_result_while_running_and_after(web: Client, lab: Any) -> None:
    domain = lab.domain("policy-hang")
    async with web() as client:
        started = await client.get("/check", params={"domain": domain})
        job_id = started.headers["location"].rsplit("/", 1)[1]
        running = await client.get(f"/api/result/{job_id}")
        await client.get("/check/events", params={"id": job_id})
        done = await client.get(f"/api/result/{job_id}")
    assert running.status_code == 202
    assert running.json() == {"id": job_id, "domain": domain, "state": "running"}
    assert done.status_code == 200
    assert "policy-timeout" in {f["code"] for f in done.json()["findings"]}


async def test_api_errors(web: Client) -> None:
    async with web() as client:
        invalid = await client.get("/api/check", params={"domain": "not a domain"})
        missing = await client.get("/api/check")
        unknown = await client.get("/api/result/nothing-here")
        events = await client.get("/check/events", params={"id": "nothing-here"})
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "domain-invalid"
    assert "is not a valid domain name" in invalid.json()["error"]["message"]
    assert missing.status_code == 400
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "result-unknown"
    assert events.status_code == 404

"""Public mode: the SSRF guard is always on, checks are rate-limited per client and in total
(429 with Retry-After), recent results are reused, and the number of checks is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mtasts.net.ratelimit import RateLimit
from tests.web.conftest import Client, finished, peer

pytestmark = pytest.mark.lab


async def test_public_mode_never_connects_to_private_addresses(web: Client, lab: Any) -> None:
    """The lab is all loopback: the settings allow it, public mode refuses it anyway."""
    domain = lab.domain("enforce-ok")
    async with web(public=True) as client:
        refused = (await client.get("/api/check", params={"domain": domain})).json()
    async with web(public=False) as client:
        allowed = (await client.get("/api/check", params={"domain": domain})).json()
    assert allowed["status"] == "ok"
    codes = {f["code"] for f in refused["findings"]}
    assert {"policy-fetch-failed", "mx-unreachable"} <= codes
    assert all("refuses to contact" in f["message"] for f in refused["findings"])


async def test_rate_limit_per_client(web: Client, lab: Any) -> None:
    names = [lab.domain(s) for s in ("enforce-ok", "testing-ok", "none-ok")]
    limit = RateLimit(per_minute=6, burst=2)
    async with web(public=True, per_client=limit, reuse_seconds=300) as client:
        first = [await client.get("/check", params={"domain": d}) for d in names[:2]]
        page = await client.get("/check", params={"domain": names[2]})
        api = await client.get("/api/check", params={"domain": names[2]})
        again = await client.get("/check", params={"domain": names[0]})  # a known result costs nothing
        async with peer(client, "192.0.2.7") as other:  # another client has its own budget
            elsewhere = await other.get("/check", params={"domain": names[2]})
    assert [r.status_code for r in first] == [303, 303]
    assert page.status_code == 429
    assert 1 <= int(page.headers["retry-after"]) <= 10
    assert "Too many checks in a short time. Please try again in" in page.text
    assert api.status_code == 429
    assert api.json()["error"]["code"] == "rate-limited"
    assert int(api.headers["retry-after"]) >= 1
    assert again.status_code == 303
    assert elsewhere.status_code == 303


async def test_rate_limit_in_total(web: Client, lab: Any) -> None:
    """Three clients, one shared budget of two checks."""
    names = [lab.domain(s) for s in ("enforce-ok", "testing-ok", "none-ok")]
    async with web(public=True, total=RateLimit(per_minute=1, burst=2)) as client:
        statuses = []
        for number, name in enumerate(names):
            async with peer(client, f"198.51.100.{number}") as other:
                statuses.append((await other.get("/check", params={"domain": name})).status_code)
    assert statuses == [303, 303, 429]


async def test_public_mode_reuses_a_recent_result(web: Client, lab: Any) -> None:
    domain = lab.domain("mx-cert-expired")
    async with web(public=True, reuse_seconds=300) as client:
        first = await client.get("/check", params={"domain": domain})
        await finished(client, first.headers["location"])
        second = await client.get("/check", params={"domain": domain.upper()})
        api = await client.get("/api/check", params={"domain": domain})
        page = await client.get(first.headers["location"])
    assert second.headers["location"] == first.headers["location"]
    assert api.headers["content-location"] == first.headers["location"]
    assert "A domain checked again within 5 minutes shows this same result." in page.text
    assert "keeps no history of checks" in page.text


async def test_private_mode_checks_again(web: Client, lab: Any) -> None:
    domain = lab.domain("enforce-ok")
    async with web() as client:
        first = await client.get("/check", params={"domain": domain})
        await finished(client, first.headers["location"])
        second = await client.get("/check", params={"domain": domain})
    assert second.headers["location"] != first.headers["location"]


async def test_a_running_check_is_joined_not_repeated(web: Client, lab: Any) -> None:
    domain = lab.domain("policy-hang")
    async with web() as client:
        first, second = await asyncio.gather(
            client.get("/check", params={"domain": domain}), client.get("/check", params={"domain": domain})
        )
    assert first.headers["location"] == second.headers["location"]


async def test_checks_are_bounded(web: Client, lab: Any) -> None:
    """One slot, no waiting line: a second domain while the first runs is 503 with Retry-After."""
    async with web(max_checks=1, max_waiting=0) as client:
        running = await client.get("/check", params={"domain": lab.domain("policy-hang")})
        busy = await client.get("/check", params={"domain": lab.domain("enforce-ok")})
        api = await client.get("/api/check", params={"domain": lab.domain("enforce-ok")})
        await finished(client, running.headers["location"])
        after = await client.get("/check", params={"domain": lab.domain("enforce-ok")})
    assert running.status_code == 303
    assert busy.status_code == 503
    assert "The inspector is busy with other checks." in busy.text
    assert int(busy.headers["retry-after"]) == 8
    assert api.status_code == 503
    assert api.json()["error"]["code"] == "busy"
    assert after.status_code == 303


async def test_a_queued_check_says_it_waits(web: Client, lab: Any) -> None:
    async with web(max_checks=1, max_waiting=1) as client:
        await client.get("/check", params={"domain": lab.domain("policy-hang")})
        queued = await client.get("/check", params={"domain": lab.domain("enforce-ok")})
        page = await client.get(queued.headers["location"])
        done = await finished(client, queued.headers["location"])
    assert "Waiting for a free check slot…" in page.text
    assert "No problems found." in done.text

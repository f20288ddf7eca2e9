"""``mtasts web serve --testing-days N --reporters K``: the enforce guard's thresholds, with the
names, defaults and meaning of ``mtasts publish apply``'s, decide whether the domain page's
"advance to enforce" is refused.

The world is :mod:`tests.web.test_actions`'s (the policy host with its admin listener, Debian's
``knotd``, the lab's MX). The domain went into testing three days ago through ``mtasts publish
apply --now`` (its hidden roll-out clock, so nothing sleeps), and no report came in. Then
``mtasts web serve`` runs as a real process, twice over the same files: with the defaults
(14 days, 2 reporting organisations) the plan is refused and the POST changes nothing; with
``--testing-days 3 --reporters 0`` the same plan passes its guards and is carried out, and a
sender then gets the enforce policy (read through the inspector's adapters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner

from mtasts.cli.web import app as web_app
from mtasts.core.policy import Mode, Policy
from mtasts.store.store import ReportStore
from mtasts.web.accounts import Accounts, Role, hash_password
from tests.commands import MTASTS
from tests.web.auth_fixtures import FAST, PASSWORDS, sign_in
from tests.web.conftest import start_server
from tests.web.test_actions import DOMAIN, MX, World, policy_body
from tests.web.test_actions import world as world  # noqa: PLC0414 (the fixture, shared)

pytestmark = pytest.mark.lab

TESTING_SINCE = timedelta(days=3, hours=1)


def network_options(world: World) -> list[str]:
    settings = world.network()
    assert settings.nameserver is not None
    return [
        "--nameserver",
        f"{world.knot.host}:{world.knot.port}",
        "--ca-file",
        str(world.ca_file),
        "--https-port",
        str(settings.https_port),
        "--smtp-port",
        str(settings.smtp_port),
        "--timeout",
        "5",
    ]


async def apply_testing(world: World, now: datetime) -> None:
    """``mtasts publish apply DOMAIN`` in its own process at roll-out time ``now``."""
    assert world.host.admin_bound is not None
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "publish",
        "apply",
        DOMAIN,
        "--config",
        str(world.config),
        "--db",
        world.db,
        "--admin",
        world.host.admin_bound.to_text(),
        *network_options(world),
        "--now",
        now.isoformat(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, stdout.decode() + stderr.decode()


@asynccontextmanager
async def web_serve(world: World, *options: str) -> AsyncIterator[httpx.AsyncClient]:
    """``mtasts web serve`` over the world's files with ``options``, alice signed in. Started and
    stopped in a thread: the policy host it reloads runs on this test's loop."""
    assert world.host.admin_bound is not None
    served = await asyncio.to_thread(
        start_server,
        "--db",
        world.db,
        "--publish-config",
        str(world.config),
        "--publish-admin",
        world.host.admin_bound.to_text(),
        *network_options(world),
        *options,
        login=True,
    )
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=60, trust_env=False) as client:
            assert (await sign_in(client, "alice")).status_code == 303
            yield client
    finally:
        assert await asyncio.to_thread(served.stop) == 0, served.stderr


async def enforce(client: httpx.AsyncClient) -> tuple[dict[str, object], httpx.Response]:
    """The plan of "advance to enforce" (as the page shows it), then its confirmation posted."""
    shown = (await client.get(f"/api/domains/{DOMAIN}/actions/enforce")).json()
    token = (await client.get("/api/session")).json()["csrf_token"]
    posted = await client.post(
        f"/api/domains/{DOMAIN}/actions/enforce",
        json={"fingerprint": shown["fingerprint"]},
        headers={"x-csrf-token": token},
    )
    return shown["plan"], posted


async def test_the_guard_thresholds_of_web_serve_decide_whether_enforce_is_refused(world: World) -> None:
    await apply_testing(world, datetime.now(UTC).replace(microsecond=0) - TESTING_SINCE)
    (testing,) = world.history()
    accounts = Accounts(ReportStore(world.db))
    accounts.open()
    accounts.add_user("alice", hash_password(PASSWORDS["alice"], cost=FAST), Role.ADMIN, now=datetime.now(UTC))
    accounts.close()
    config_before = world.config.read_text()

    async with web_serve(world) as alice:  # apply's defaults: 14 days in testing, 2 organisations
        plan, refused = await enforce(alice)
        page = (await alice.get(f"/domains/{DOMAIN}/actions/enforce")).text
    refusals = plan["refusals"]
    assert isinstance(refusals, list)
    assert any("in testing for 3 days" in r and "needs 14 days" in r for r in refusals), refusals
    assert any("reports from 0 organisations" in r and "needs 2" in r for r in refusals), refusals
    assert "needs 14 days" in page
    assert refused.status_code == 409
    assert refused.json()["outcome"] == "refused"
    assert world.config.read_text() == config_before
    assert world.history() == [testing]

    async with web_serve(world, "--testing-days", "3", "--reporters", "0") as alice:
        plan, done = await enforce(alice)
    assert plan["refusals"] == []
    guards = plan["guards"]
    assert isinstance(guards, list)
    assert {g["guard"]: g["required"] for g in guards}.items() >= {"testing-days": 3, "reporters": 0}.items()
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "done", done.text
    assert world.mode() is Mode.ENFORCE
    ended, enforced = world.history()
    assert (ended.until, enforced.mode, enforced.forced_reason) == (enforced.since, Mode.ENFORCE, None)
    assert await world.sender_sees() == ((f"v=STSv1; id={enforced.policy_id}",), policy_body("enforce"))


async def test_web_serve_retire_max_age_is_the_max_age_retire_serves(world: World) -> None:
    """``mtasts web serve --retire-max-age 3600``: the retire page plans mode none with max_age
    3600 (``mtasts publish retire --max-age``'s role), and a sender then gets that body."""
    await apply_testing(world, datetime.now(UTC).replace(microsecond=0) - TESTING_SINCE)
    accounts = Accounts(ReportStore(world.db))
    accounts.open()
    accounts.add_user("alice", hash_password(PASSWORDS["alice"], cost=FAST), Role.ADMIN, now=datetime.now(UTC))
    accounts.close()

    async with web_serve(world, "--retire-max-age", "3600") as alice:
        shown = (await alice.get(f"/api/domains/{DOMAIN}/actions/retire")).json()
        page = (await alice.get(f"/domains/{DOMAIN}/actions/retire")).text
        token = (await alice.get("/api/session")).json()["csrf_token"]
        done = await alice.post(
            f"/api/domains/{DOMAIN}/actions/retire",
            json={"fingerprint": shown["fingerprint"]},
            headers={"x-csrf-token": token},
        )
    assert shown["max_age"] == 3600
    assert shown["edit"].startswith('mode = "none", max_age = 3600 in the entry of')
    assert 'value="3600"' in page
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "done", done.text
    none = world.history()[-1]
    assert (none.mode, none.max_age) == (Mode.NONE, 3600)
    body = Policy(mode=Mode.NONE, max_age=3600, mx=(MX,)).to_text().encode()
    assert await world.sender_sees() == ((f"v=STSv1; id={none.policy_id}",), body)


def test_a_negative_retire_max_age_is_a_usage_error() -> None:
    result = CliRunner().invoke(web_app, ["serve", "--retire-max-age", "-1"])
    assert result.exit_code == 2
    assert "--retire-max-age" in result.output
    assert "Traceback" not in result.output

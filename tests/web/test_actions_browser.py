"""The publish actions of the domain page in a real browser: Debian's Chromium (Selenium, Debian's
chromedriver, as tests/web/test_browser.py) against ``mtasts web serve`` with accounts, over the
world of tests/web/test_actions.py: Debian's ``knotd`` for the zone (lookups and the signed
updates), the policy host (:class:`~mtasts.publish.host.PolicyHost`, what ``mtasts publish serve``
runs) with its admin listener that the actions reload, and the lab's SMTP MX.

One world for the module, in the order a person would go: alice (admin) applies the testing
policy from the domain page, through the confirmation page; she switches to Japanese, is refused
enforce by the guards and overrides them with a reason; bob (read-only) sees no links to act on
the domain page, and at their addresses the plans but no button; alice retires the domain, and
the policy host serves ``mode: none``. What a sender sees is read through the inspector's
adapters (:meth:`World.sender_sees`), not from the pages.

The policy host and the MX run on the test's event loop, so every browser step runs in a thread
(:func:`asyncio.to_thread`) and the loop keeps serving while the browser waits. No page asks for
anything outside the server (the browser's network log). Screenshots (``actions-*.png``) go where
test_browser.py puts its own: ``<basetemp>/web-screenshots<N>/`` or ``$MTASTS_SCREENSHOTS``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mtasts.core.policy import Mode
from mtasts.store.store import ReportStore
from mtasts.web.accounts import Accounts, Role, hash_password
from tests.web.auth_fixtures import FAST, PASSWORDS
from tests.web.conftest import Served, start_server
from tests.web.test_actions import DOMAIN, World, policy_body, running_world
from tests.web.test_browser import CHROMEDRIVER, CHROMIUM, _requested, _wait, browser, screenshots  # noqa: F401

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason=f"Debian's chromium and chromium-driver are not installed ({CHROMIUM}, {CHROMEDRIVER})",
    ),
]

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402

T = TypeVar("T")


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The world of tests/web/test_actions.py, once for the module."""
    async with running_world(tmp_path_factory.mktemp("actions-browser")) as made:
        yield made


@pytest.fixture(scope="module")
def site(world: World) -> Iterator[Served]:
    """``mtasts web serve`` with accounts (alice admin, bob read-only) over the world's database,
    its publish configuration and the policy host's admin listener."""
    accounts = Accounts(ReportStore(world.db))
    accounts.open()
    now = datetime.now(UTC)
    accounts.add_user("alice", hash_password(PASSWORDS["alice"], cost=FAST), Role.ADMIN, now=now)
    accounts.add_user("bob", hash_password(PASSWORDS["bob"], cost=FAST), Role.READ_ONLY, now=now)
    accounts.close()
    network = world.network()
    assert world.host.admin_bound is not None
    server = start_server(
        *("--db", world.db, "--publish-config", str(world.config)),
        *("--publish-admin", world.host.admin_bound.to_text()),
        *("--nameserver", f"{world.knot.host}:{world.knot.port}", "--ca-file", str(world.ca_file)),
        *("--https-port", str(network.https_port), "--smtp-port", str(network.smtp_port), "--timeout", "5"),
        login=True,
    )
    yield server
    assert server.stop() == 0, server.stderr


async def in_browser(step: Callable[[], T]) -> T:
    """Run the blocking browser ``step`` in a thread: the policy host and the MX, on this loop,
    go on answering the web server meanwhile."""
    return await asyncio.to_thread(step)


def sign_in(driver: WebDriver, site: Served, name: str) -> None:
    """Open the domain page, be sent to the login form, sign in, and be back on the domain page."""
    driver.get(f"{site.url}/domains/{DOMAIN}")
    _wait(driver, lambda d: "/login" in d.current_url)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.ID, "sign-in").click()
    _wait(driver, lambda d: d.current_url.endswith(f"/domains/{DOMAIN}"))
    assert driver.find_element(By.TAG_NAME, "h1").text == DOMAIN


def open_action(driver: WebDriver, action: str) -> None:
    """From the domain page, the action's link: its plan and confirmation page (or why the
    action is not possible now, ``#stop``)."""
    driver.find_element(By.ID, f"action-{action}").click()
    _wait(driver, lambda d: d.current_url.endswith(f"/domains/{DOMAIN}/actions/{action}"))
    _wait(driver, expected_conditions.visibility_of_element_located((By.ID, "action-title")))


def carry_out(driver: WebDriver) -> str:
    """Press the confirmation button; the outcome of the result page (``data-outcome``)."""
    driver.find_element(By.ID, "carry-out").click()
    outcome = _wait(driver, expected_conditions.visibility_of_element_located((By.ID, "outcome")))
    return str(outcome.get_attribute("data-outcome"))


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def present(driver: WebDriver, element_id: str) -> bool:
    return bool(driver.find_elements(By.ID, element_id))


def steps(driver: WebDriver) -> list[str]:
    return [str(e.text) for e in driver.find_elements(By.CSS_SELECTOR, "#steps li.step > code")]


def audit_rows(driver: WebDriver) -> list[str]:
    return [str(row.text) for row in driver.find_elements(By.CSS_SELECTOR, "#audit tr.audit")]


def assert_nothing_outside(driver: WebDriver, site: Served) -> None:
    requested = _requested(driver)
    assert any(url.startswith(site.url + "/") for url in requested)
    elsewhere = [url for url in requested if not url.startswith(site.url + "/")]
    assert not elsewhere, f"requests outside the server: {elsewhere}"


async def test_an_admin_applies_testing_from_the_domain_page(
    browser: WebDriver,  # noqa: F811
    site: Served,
    world: World,
    screenshots: Path,  # noqa: F811
) -> None:
    def before() -> str:
        sign_in(browser, site, "alice")
        assert "draft" in text(browser, "stage")
        assert present(browser, "no-history")
        assert [str(a.text) for a in browser.find_elements(By.CSS_SELECTOR, "ul.actions a")] == [
            "Apply the configuration",
            "Advance to enforce",
            "Retire",
        ]
        assert "Nobody has acted on this domain from here yet." in text(browser, "audit")
        browser.save_screenshot(str(screenshots / "actions-1-domain.png"))

        open_action(browser, "apply")
        assert text(browser, "action-title") == f"Apply the configuration: {DOMAIN}"
        assert steps(browser) == ["serve", "verify", "record", "publish-txt", "confirm-txt"]
        assert text(browser, "plan-stage") == "draft"
        assert text(browser, "plan-target") == "testing"
        assert not present(browser, "refusals")
        assert browser.find_element(By.ID, "carry-out").text == "Carry out these steps now"
        browser.save_screenshot(str(screenshots / "actions-2-apply-plan.png"))
        return str(browser.find_element(By.CSS_SELECTOR, "#plan dl.facts").text)

    facts = await in_browser(before)
    assert world.history() == []  # showing the plan changed nothing
    assert await world.sender_sees() == ((), None)

    def confirm() -> list[str]:
        assert carry_out(browser) == "done"
        assert "Done" in text(browser, "outcome")
        done = [str(e.text) for e in browser.find_elements(By.CSS_SELECTOR, "#done li")]
        browser.save_screenshot(str(screenshots / "actions-3-apply-done.png"))
        return done

    done = await in_browser(confirm)
    (testing,) = world.history()
    assert (testing.mode, testing.body, testing.forced_reason) == (Mode.TESTING, policy_body("testing"), None)
    assert await world.sender_sees() == ((f"v=STSv1; id={testing.policy_id}",), policy_body("testing"))
    # the body confirmed is the body served (its id is minted from the clock again when carried out)
    assert f"\nsha256\n{testing.sha256[:12]}" in facts
    assert "\nPolicy id\n" in facts
    assert "served: reloaded the policy host: generation 2, 2 domains served" in done
    assert f"recorded: id {testing.policy_id} in the history" in done
    assert f"confirmed: _mta-sts.{DOMAIN} answers id={testing.policy_id}" in done

    def after() -> list[dict[str, Any]]:
        browser.find_element(By.ID, "back").click()
        _wait(browser, lambda d: d.current_url.endswith(f"/domains/{DOMAIN}"))
        assert "testing" in text(browser, "stage")
        assert text(browser, "current-id") == testing.policy_id
        days = browser.find_element(By.CSS_SELECTOR, "#guards tr.guard.waiting").text
        assert days.startswith("testing-days ✗ not yet 0 14 in testing for 0 days since ")  # the guard values
        (row,) = audit_rows(browser)
        assert "alice publish-apply done; served: reloaded the policy host" in row
        browser.save_screenshot(str(screenshots / "actions-4-domain-applied.png"))
        browser.get(f"{site.url}/api/audit")
        entries: list[dict[str, Any]] = json.loads(browser.find_element(By.TAG_NAME, "pre").text)["entries"]
        assert_nothing_outside(browser, site)
        return entries

    entries = await in_browser(after)
    applied = [e for e in entries if e["action"] == "publish-apply"]
    assert len(applied) == 1
    assert applied[0]["actor"] == "alice"
    assert applied[0]["detail"].startswith("done; served: reloaded the policy host")


async def test_enforce_refused_then_overridden_in_japanese(
    browser: WebDriver,  # noqa: F811
    site: Served,
    world: World,
    screenshots: Path,  # noqa: F811
) -> None:
    assert [e.mode for e in world.history()] == [Mode.TESTING], "runs after the apply test, on its world"
    config_before = world.config.read_text()

    def refused() -> None:
        sign_in(browser, site, "alice")
        browser.find_element(By.ID, "lang-ja").click()  # the page's own language switch
        _wait(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja")
        assert "導入状況" in text(browser, "rollout-title")
        assert text(browser, "actions-title") == "公開の操作"
        assert "このドメインの監査ログ（新しい順）" in text(browser, "audit")

        open_action(browser, "enforce")
        assert text(browser, "action-title") == f"enforce に進める：{DOMAIN}"
        assert text(browser, "plan-title") == "計画"
        assert text(browser, "confirm-title") == "確認"
        assert "確認項目により拒否されました。管理者が理由を添えて無視しない限り、何も変更しません。" in text(
            browser, "refusals"
        )
        guards = browser.find_element(By.ID, "plan-guards")
        assert "enforce の前の確認項目：現在の値と必要な値" in guards.text
        rows = {
            str(row.find_element(By.TAG_NAME, "th").text): [
                str(cell.text) for cell in row.find_elements(By.TAG_NAME, "td")
            ]
            for row in guards.find_elements(By.CSS_SELECTOR, "tr.guard")
        }
        assert rows["testing-days"][:3] == ["✗ まだ", "0", "14"]  # the value seen, the value required
        assert rows["failures"][:3] == ["✓ 合格", "0", "0"]
        assert "最初に設定する値" in text(browser, "edit")
        assert "確認項目を無視する（--force --reason と同じ）" in text(browser, "override")
        assert browser.find_element(By.ID, "carry-out").text == "この手順を今すぐ実行"
        browser.save_screenshot(str(screenshots / "actions-5-enforce-plan-ja.png"))

        assert carry_out(browser) == "refused"  # confirmed without overriding: the guards refuse
        assert "拒否されました。何も変更していません" in text(browser, "outcome")
        assert present(browser, "message")
        browser.save_screenshot(str(screenshots / "actions-6-enforce-refused-ja.png"))

    await in_browser(refused)
    assert world.config.read_text() == config_before
    assert [e.mode for e in world.history()] == [Mode.TESTING]

    def overridden() -> None:
        browser.find_element(By.ID, "back").click()
        _wait(browser, lambda d: d.current_url.endswith(f"/domains/{DOMAIN}"))
        open_action(browser, "enforce")
        browser.find_element(By.CSS_SELECTOR, "#override input[name='force']").click()
        browser.find_element(By.ID, "reason").send_keys("lab test: the guards are known")
        browser.save_screenshot(str(screenshots / "actions-7-enforce-override-ja.png"))
        assert carry_out(browser) == "done"
        assert "完了" in text(browser, "outcome")
        assert text(browser, "forced") == "確認項目を無視した理由： lab test: the guards are known"
        assert browser.find_element(By.LINK_TEXT, "ドメインのページに戻る").is_displayed()
        browser.save_screenshot(str(screenshots / "actions-8-enforce-done-ja.png"))
        assert_nothing_outside(browser, site)

    await in_browser(overridden)
    assert world.mode() is Mode.ENFORCE
    enforce = world.history()[-1]
    assert (enforce.mode, enforce.forced_reason) == (Mode.ENFORCE, "lab test: the guards are known")
    assert await world.sender_sees() == ((f"v=STSv1; id={enforce.policy_id}",), policy_body("enforce"))


async def test_a_read_only_user_sees_the_plans_but_no_button(
    browser: WebDriver,  # noqa: F811
    site: Served,
    world: World,
    screenshots: Path,  # noqa: F811
) -> None:
    history_before = world.history()

    def look() -> None:
        sign_in(browser, site, "bob")
        assert text(browser, "account").startswith("Signed in as bob (read-only)")
        assert present(browser, "stage")
        assert not present(browser, "audit")  # the audit trail is for admins
        assert not browser.find_elements(By.CSS_SELECTOR, "ul.actions a")  # nor the links to act
        assert text(browser, "actions-admin-only") == (
            "Only an admin can carry out the publish actions (apply the configuration, advance to enforce, retire)."
        )
        for action in ("apply", "enforce", "retire"):  # the plans, at their addresses
            browser.get(f"{site.url}/domains/{DOMAIN}/actions/{action}")
            _wait(browser, expected_conditions.visibility_of_element_located((By.ID, "action-title")))
            if not present(browser, "stop"):  # retire before anything was published (this test alone)
                assert steps(browser) or present(browser, "nothing") or present(browser, "refusals")
                assert text(browser, "read-only") == "Only an admin can carry this out; you can look at the plan."
            assert not present(browser, "action-form")
            assert not present(browser, "carry-out")
            if action == "retire":
                browser.save_screenshot(str(screenshots / "actions-9-read-only-plan.png"))
            browser.find_element(By.ID, "back").click()
            _wait(browser, lambda d: d.current_url.endswith(f"/domains/{DOMAIN}"))
        browser.get(f"{site.url}/api/audit")  # nor the audit trail's JSON
        assert json.loads(browser.find_element(By.TAG_NAME, "pre").text)["error"]["code"] == "forbidden"
        assert_nothing_outside(browser, site)

    await in_browser(look)
    assert world.history() == history_before


async def test_retire_from_the_browser_serves_mode_none(
    browser: WebDriver,  # noqa: F811
    site: Served,
    world: World,
    screenshots: Path,  # noqa: F811
) -> None:
    assert world.history(), "runs after the apply test, on its world"

    def retire() -> None:
        sign_in(browser, site, "alice")
        open_action(browser, "retire")
        assert text(browser, "action-title") == f"Retire: {DOMAIN}"
        assert browser.find_element(By.ID, "max-age").get_attribute("value") == "86400"
        edit = f'First sets mode = "none", max_age = 86400 in the entry of {DOMAIN} in {world.config}'
        assert text(browser, "edit") == edit
        assert steps(browser)[0] == "serve"
        browser.save_screenshot(str(screenshots / "actions-10-retire-plan.png"))
        assert carry_out(browser) == "done"
        assert present(browser, "next")  # keep serving none, then retire again
        browser.save_screenshot(str(screenshots / "actions-11-retire-done.png"))

        browser.find_element(By.ID, "back").click()
        _wait(browser, lambda d: d.current_url.endswith(f"/domains/{DOMAIN}"))
        assert "alice publish-retire done" in audit_rows(browser)[0]
        browser.save_screenshot(str(screenshots / "actions-12-domain-retiring.png"))
        assert_nothing_outside(browser, site)

    await in_browser(retire)
    assert world.mode() is Mode.NONE
    none = world.history()[-1]
    assert none.mode is Mode.NONE
    assert await world.sender_sees() == ((f"v=STSv1; id={none.policy_id}",), policy_body("none"))

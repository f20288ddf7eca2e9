"""Signing in with a real browser: Debian's Chromium (Selenium, Debian's chromedriver) against
``mtasts web serve`` with accounts, over the lab. An administrator adds a user with
``mtasts web user add``; the browser is sent to the login form, signs in, runs the inspector,
signs out, and is sent to the login form again. Screenshots as in tests/web/test_browser.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Served, lab_options, start_server
from tests.web.test_browser import CHROMEDRIVER, CHROMIUM, _browser, _requested, _wait

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason=f"Debian's chromium and chromium-driver are not installed ({CHROMIUM}, {CHROMEDRIVER})",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (a test dependency) is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402

PASSWORD = "a long password for the browser"


@pytest.fixture(scope="module")
def with_accounts(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("login-browser")
    db = f"sqlite:///{folder / 'web.sqlite3'}"
    secret = folder / "password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    added = subprocess.run(
        [sys.executable, "-m", "mtasts", "web", "user", "add", "alice", "--password-file", str(secret), "--db", db],
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    server = start_server("--db", db, *lab_options(lab), login=True)
    yield server
    server.stop()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = _browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    chosen = os.environ.get("MTASTS_SCREENSHOTS")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("login-screenshots")


def _sign_in(browser: WebDriver, password: str) -> None:
    browser.find_element(By.ID, "name").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()


def test_sign_in_check_a_domain_and_sign_out(
    browser: WebDriver, with_accounts: Served, lab: Any, screenshots: Path
) -> None:
    served = with_accounts
    domain = lab.domain("mx-cert-expired")
    browser.get(f"{served.url}/check?domain={domain}")
    _wait(browser, lambda d: "/login" in d.current_url)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"
    browser.save_screenshot(str(screenshots / "1-login.png"))

    _sign_in(browser, "not the password")
    error = _wait(browser, expected_conditions.visibility_of_element_located((By.ID, "login-error")))
    assert error.text == "✗ The user name or the password is wrong."
    browser.save_screenshot(str(screenshots / "2-login-wrong.png"))

    browser.find_element(By.ID, "name").clear()
    _sign_in(browser, PASSWORD)  # back to the check first asked for, which now runs
    finding = _wait(
        browser,
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, "li.finding[id$='-mx-cert-expired']")),
    )
    assert finding.find_element(By.CSS_SELECTOR, "code.code").text == "mx-cert-expired"
    assert browser.find_element(By.ID, "account").text.startswith("Signed in as alice (read-only)")
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["mtasts_session"]["httpOnly"] is True
    assert cookies["mtasts_session"]["sameSite"] == "Lax"
    browser.save_screenshot(str(screenshots / "3-signed-in-result.png"))

    browser.find_element(By.ID, "lang-ja").click()
    _wait(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja")
    assert "alice" in browser.find_element(By.ID, "account").text
    assert "ログアウト" in browser.find_element(By.ID, "logout").text
    browser.save_screenshot(str(screenshots / "4-signed-in-ja.png"))

    browser.find_element(By.ID, "logout").click()
    _wait(browser, lambda d: "/login" in d.current_url)
    assert "mtasts_session" not in {c["name"] for c in browser.get_cookies()}
    browser.get(f"{served.url}/")
    _wait(browser, lambda d: "/login" in d.current_url)  # signed out: the pages are closed again

    elsewhere = [url for url in _requested(browser) if not url.startswith(served.url + "/")]
    assert not elsewhere, f"requests outside the server: {elsewhere}"

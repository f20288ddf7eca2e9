"""The inspector in a real browser: Debian's Chromium, driven by Selenium through Debian's
chromedriver (nothing downloaded), against ``mtasts web serve`` over the lab.

A person opens the form, types a lab domain, submits, sees its findings with their fixes,
switches to Japanese; a slow check shows its progress (with JavaScript: server-sent events;
without: the page refreshes itself). No request leaves the server (the browser's own network
log). Each page is saved as a screenshot under pytest's temporary directory
(``<basetemp>/web-screenshots0/``), or under ``$MTASTS_SCREENSHOTS`` when that is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Served

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason=f"Debian's chromium and chromium-driver are not installed ({CHROMIUM}, {CHROMEDRIVER}): "
        "apt-get install chromium chromium-driver",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (a test dependency) is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

_WAIT = 20.0


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("MTASTS_SCREENSHOTS")
    if chosen:
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("web-screenshots")


def _browser(*, javascript: bool = True) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # running as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,1400",
        "--no-proxy-server",
        "--disable-background-networking",  # no update checks, no safe-browsing lists
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(argument)
    prefs: dict[str, Any] = {"intl.accept_languages": "en-US,en"}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = _browser()
    yield driver
    driver.quit()


@pytest.fixture
def browser_without_javascript() -> Iterator[WebDriver]:
    driver = _browser(javascript=False)
    yield driver
    driver.quit()


def _requested(driver: WebDriver) -> list[str]:
    """Every URL the browser asked for since the last call (its DevTools network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _wait(driver: WebDriver, condition: Callable[[Any], Any]) -> Any:
    return WebDriverWait(driver, _WAIT).until(condition)


def _submit(driver: WebDriver, served: Served, domain: str) -> None:
    driver.get(served.url + "/")
    field = driver.find_element(By.ID, "domain")
    field.send_keys(domain)
    driver.find_element(By.ID, "submit").click()


def _finding(driver: WebDriver, code: str) -> Any:
    return _wait(
        driver, expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, f"li.finding[id$='-{code}']"))
    )


def test_check_a_domain_then_switch_to_japanese(
    browser: WebDriver, served: Served, lab: Any, screenshots: Path
) -> None:
    domain = lab.domain("mx-cert-expired")
    browser.get(served.url + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Check a domain"
    browser.save_screenshot(str(screenshots / "1-form.png"))

    _submit(browser, served, domain)
    finding = _finding(browser, "mx-cert-expired")
    assert finding.find_element(By.CSS_SELECTOR, "code.code").text == "mx-cert-expired"
    assert finding.find_element(By.CSS_SELECTOR, ".meaning").text == "an MX certificate has expired"
    fix = finding.find_element(By.CSS_SELECTOR, ".fix").text
    assert fix == f"Fix: Renew the certificate of mx1.{domain} and reload the MTA."
    assert "/result/" in browser.current_url
    verdict = browser.find_element(By.ID, "verdict").text
    assert "Senders would defer mail" in verdict
    assert f"mx1.{domain}" in verdict
    browser.save_screenshot(str(screenshots / "2-result-en.png"))

    browser.find_element(By.ID, "lang-ja").click()
    _wait(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "送信側の動作" in body
    assert "MX の証明書の有効期限が切れています" in body
    assert "mx-cert-expired" in body
    browser.save_screenshot(str(screenshots / "3-result-ja.png"))

    browser.get(served.url + "/")  # the choice is remembered (cookie)
    assert browser.find_element(By.TAG_NAME, "h1").text == "ドメインをチェック"
    browser.save_screenshot(str(screenshots / "4-form-ja.png"))

    requested = _requested(browser)
    assert any(url.endswith("/static/style.css") for url in requested)
    elsewhere = [url for url in requested if not url.startswith(served.url + "/")]
    assert not elsewhere, f"requests outside the server: {elsewhere}"


def test_progress_follows_a_slow_check(browser: WebDriver, served: Served, lab: Any, screenshots: Path) -> None:
    """The policy host hangs until the 2 s timeout: the progress page is seen, then the script
    (server-sent events) opens the result by itself."""
    _submit(browser, served, lab.domain("policy-hang"))
    progress = _wait(browser, expected_conditions.visibility_of_element_located((By.ID, "progress-text")))
    assert "Checking policy-hang." in progress.text
    browser.save_screenshot(str(screenshots / "5-progress.png"))
    _finding(browser, "policy-timeout")
    elsewhere = [url for url in _requested(browser) if not url.startswith(served.url + "/")]
    assert not elsewhere, f"requests outside the server: {elsewhere}"


def test_without_javascript_the_page_refreshes_to_the_result(
    browser_without_javascript: WebDriver, served: Served, lab: Any, screenshots: Path
) -> None:
    browser = browser_without_javascript
    _submit(browser, served, lab.domain("policy-hang"))
    _finding(browser, "policy-timeout")
    assert "/result/" in browser.current_url
    browser.save_screenshot(str(screenshots / "6-result-without-javascript.png"))

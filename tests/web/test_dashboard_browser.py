"""The report dashboard and a domain page in a real browser (Debian's Chromium through
Selenium, as tests/web/test_browser.py), against ``mtasts web serve --db`` over the shared TLSRPT
samples ingested into a fresh store: the expected totals and failing senders are visible, the
filters work without JavaScript, the pages switch to Japanese, and no page asks for anything
outside the server. Screenshots (``dashboard-*.png``) go where test_browser.py puts its own:
``<basetemp>/web-screenshots0/`` or ``$MTASTS_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.conftest import Served, start_server
from tests.web.reports_fixtures import expected_totals, sample_reports, sample_store
from tests.web.test_browser import CHROMEDRIVER, CHROMIUM, _browser, _requested, screenshots  # noqa: F401

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason=f"Debian's chromium and chromium-driver are not installed ({CHROMIUM}, {CHROMEDRIVER})",
)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    url = sample_store(tmp_path_factory.mktemp("dashboard"))
    server = start_server("--db", url, "--no-login")  # accounts are tested by their own suite
    yield server
    assert server.stop() == 0


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = _browser(javascript=False)  # the pages need none
    yield driver
    driver.quit()


def _outside(driver: WebDriver, served: Served) -> list[str]:
    return [url for url in _requested(driver) if not url.startswith(served.url + "/")]


def test_dashboard_and_domain_page(browser: WebDriver, dashboard: Served, screenshots: Path) -> None:  # noqa: F811
    expected = expected_totals(sample_reports())
    browser.get(dashboard.url + "/reports")
    assert browser.find_element(By.TAG_NAME, "h1").text == "TLS reports"
    assert browser.find_element(By.ID, "total-sessions").text == f"{expected.successful + expected.failed:,}"
    assert browser.find_element(By.ID, "total-failed").text == f"✗ {expected.failed:,}"
    senders = browser.find_element(By.ID, "senders-table").text
    assert "Company-X" in senders
    assert "starttls-not-supported" in senders
    assert "Microsoft Corporation" in senders
    assert "eden.one" in senders
    assert browser.find_element(By.CSS_SELECTOR, "#daily svg").is_displayed()
    browser.save_screenshot(str(screenshots / "dashboard-1-all-en.png"))

    browser.find_element(By.LINK_TEXT, "company-y.example").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/reports/company-y.example"))
    assert "mx2.mail.company-y.example" in browser.find_element(By.ID, "receiving-mx-table").text
    browser.save_screenshot(str(screenshots / "dashboard-2-domain-en.png"))

    browser.find_element(By.ID, "domain-page").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/domains/company-y.example"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "company-y.example"
    assert browser.find_element(By.ID, "check-now").is_displayed()
    assert "2016-04-01" in browser.find_element(By.ID, "trend-table").text
    browser.save_screenshot(str(screenshots / "dashboard-3-domain-page-en.png"))

    browser.find_element(By.ID, "lang-ja").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "導入状況" in body
    assert "TLS レポートと各日に有効だったポリシー" in body
    browser.save_screenshot(str(screenshots / "dashboard-4-domain-page-ja.png"))

    browser.get(dashboard.url + "/reports")  # the choice is remembered
    assert browser.find_element(By.TAG_NAME, "h1").text == "TLS レポート"
    assert "対応が必要な送信元" in browser.find_element(By.ID, "senders").text
    assert "Company-X" in browser.find_element(By.ID, "senders-table").text
    browser.save_screenshot(str(screenshots / "dashboard-5-all-ja.png"))
    outside = _outside(browser, dashboard)
    assert not outside, f"requests outside the server: {outside}"


def test_the_filters_work_without_javascript(browser: WebDriver, dashboard: Served, screenshots: Path) -> None:  # noqa: F811
    browser.get(dashboard.url + "/reports?lang=en")
    browser.find_element(By.CSS_SELECTOR, "#days option[value='7']").click()
    browser.find_element(By.ID, "filter-domain").send_keys("random.net")
    browser.find_element(By.ID, "apply").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/reports/random.net"))
    assert "days=7" in browser.current_url
    assert "The last 7 days" in browser.find_element(By.ID, "days").text
    browser.save_screenshot(str(screenshots / "dashboard-6-filtered.png"))
    browser.get(dashboard.url + "/reports/random.net")
    assert browser.find_element(By.ID, "total-sessions").text == "2"  # counted under sts and tlsa, once
    assert not _outside(browser, dashboard)

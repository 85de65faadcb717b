"""The admin's job report in a real browser: headless Chromium, through the login form.

Needs Debian's ``chromium`` and ``chromium-driver``. Skipped without them, except in CI
(``CI`` set), where their absence is a failure. Screenshots are written to
``TEST_ARTIFACTS_DIR`` (default ``var/test-artifacts/``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User

from analysis.models import AnalysisJob
from tests.conftest import REPO, make_job
from tests.support.live_server import LiveServer
from tests.support.tools import unavailable
from tests.test_api_import import IMPORT, small_import

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WINDOW_WIDTH = 1400
PASSWORD = "correct-horse-battery"
LONG_IMAGE = "registry.example.com:5000/platform/team-a/services/payments-api:2024.11.30-rc.1"
WAIT_SECONDS = 30


def artifacts_dir() -> Path:
    directory = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO / "var" / "test-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        unavailable("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={WINDOW_WIDTH},1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(condition)


def assert_fits(driver, scroller: str) -> None:
    """Nothing wider than the window: neither the page nor the box ``scroller`` (which would
    hide columns behind its own scroll bar) scrolls sideways."""
    page, window, box, box_window = driver.execute_script(
        "const box = document.querySelector(arguments[0]);"
        "const page = document.documentElement;"
        "return [page.scrollWidth, page.clientWidth, box.scrollWidth, box.clientWidth]",
        scroller,
    )
    assert page <= WINDOW_WIDTH
    assert page <= window
    assert box <= box_window, f"{scroller} is {box} px wide, shows {box_window} px"


def screenshot(driver, name: str) -> Path:
    """The whole page: the window is made as tall as the document first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW_WIDTH, min(height + 120, 8000))
    path = artifacts_dir() / name
    assert driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def log_in(driver, server: LiveServer, next_path: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{server.base_url}/admin/login/?next={next_path}")
    driver.find_element(By.ID, "id_username").send_keys("operator")
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form input[type=submit]").click()
    wait_for(driver, lambda d: urlsplit(d.current_url).path == next_path)


@pytest.fixture
def imported(api, organization) -> AnalysisJob:
    """The small nginx fixtures through the import API, and neighbours for the job list."""
    response = api.post(IMPORT, small_import(image_ref=f"{LONG_IMAGE}-imported"), format="json")
    assert response.status_code == 201, response.json()
    make_job(organization, image_ref=LONG_IMAGE, status="failed", error_code="ANALYSIS_TIMEOUT")
    make_job(organization, image_ref=LONG_IMAGE + "/" + "x" * 200)
    return AnalysisJob.objects.get(pk=response.json()["job_id"])


def test_the_job_report_in_chromium(browser, live_gunicorn, imported):
    from selenium.webdriver.common.by import By

    operator = User.objects.create_superuser("operator", "operator@example.com")
    # A hash the server checks: this process hashes with MD5 (conftest), the server does not.
    hasher = PBKDF2PasswordHasher()
    operator.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    operator.save(update_fields=["password"])
    change_path = f"/admin/analysis/analysisjob/{imported.pk}/change/"
    log_in(browser, live_gunicorn, change_path)

    # the admin's own stylesheet is applied: the width measured is the page an operator sees
    header = browser.execute_script(
        "return getComputedStyle(document.getElementById('header')).backgroundColor"
    )
    assert header not in ("", "rgba(0, 0, 0, 0)", "transparent")
    assert browser.title.endswith("| VEXxy Premium Service")

    summary = imported.summary
    table_rows = browser.find_elements(By.CSS_SELECTOR, "#report table.report-table tbody tr")
    expected = [
        r.data["cve_id"]
        for r in imported.results.order_by("position")  # all Negligible: the VEX's order
    ]
    assert [row.find_element(By.CSS_SELECTOR, "td.vuln a").text for row in table_rows] == expected
    assert [row.get_attribute("data-status") for row in table_rows].count("affected") == (
        summary["by_status"]["affected"]
    )

    bars = browser.find_elements(By.CSS_SELECTOR, "#report svg.report-chart rect.bar")
    drawn = {
        (bar.get_attribute("data-severity"), bar.get_attribute("data-status")): int(
            bar.get_attribute("data-count")
        )
        for bar in bars
    }
    assert drawn == {
        (severity, status): n
        for severity, statuses in summary["by_severity"].items()
        for status, n in statuses.items()
        if n
    }
    widths = [
        browser.execute_script("return arguments[0].getBoundingClientRect().width", bar)
        for bar in bars
    ]
    assert all(width > 0 for width in widths)
    # not affected (3) is drawn three times as long as affected (1)
    by_status = {
        bar.get_attribute("data-status"): width for bar, width in zip(bars, widths, strict=True)
    }
    assert by_status["not_affected"] == pytest.approx(3 * by_status["affected"], rel=0.05)

    assert_fits(browser, "#report .report-table-wrap")
    screenshot(browser, "admin-job-report.png")

    # filtering is a link: no script needed
    browser.set_window_size(WINDOW_WIDTH, 1000)
    browser.find_element(By.PARTIAL_LINK_TEXT, "affected (1)").click()
    wait_for(browser, lambda d: "status=affected" in d.current_url)
    shown = browser.find_elements(By.CSS_SELECTOR, "#report table.report-table tbody tr")
    assert [row.get_attribute("data-status") for row in shown] == ["affected"]

    # the job list fits too, long image references and all
    browser.get(f"{live_gunicorn.base_url}/admin/analysis/analysisjob/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"))
    images = browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-image span")
    assert LONG_IMAGE in {image.get_attribute("title") for image in images}
    assert browser.find_element(By.XPATH, "//button[text()='Reconcile sandboxes']")
    assert_fits(browser, "#changelist .results")
    screenshot(browser, "admin-job-list.png")

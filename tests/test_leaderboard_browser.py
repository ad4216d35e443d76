"""leaderboard.html in a real headless Chromium (Debian's `chromium` + `chromium-driver`, via selenium).

The page must load from disk with no console errors, show its plots, and sort a table when a column
header is clicked. Skips only where Chromium or its driver is not installed (`.ci/run` installs both).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rmroute.harness.board.build import build
from tests.test_leaderboard import write_demo

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (path.is_file() and os.access(path, os.X_OK)):
            return f"{path} is absent: install the Debian package {package!r} (apt-get install chromium chromium-driver)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium manager must never reach for the network
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1600,1200"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(tmp_path):
    root = tmp_path / "results"
    write_demo(root)
    result = build(root)
    return result


def column(table, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [tr.find_elements(By.TAG_NAME, "td")[index].text.strip()
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_page_loads_without_console_errors_and_sorts(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.html.resolve().as_uri())
    assert browser.title == "rmroute leaderboard"
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"  # the script ran
    tables = browser.find_elements(By.CSS_SELECTOR, "table.sortable:not(.failed)")
    assert len(tables) == 3
    # every embedded plot loaded from its relative path
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")
    assert broken == [] and len(browser.find_elements(By.TAG_NAME, "img")) == len(page.plots)

    table = tables[0]  # demo · config cccc · iid
    heads = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    router_col, regret_col = heads.index("router"), heads.index("stream regret")
    assert column(table, router_col) == ["oracle †", "bayesian", "domain-best", "mean-ensemble", "laser", "single:rm-a"]

    th = table.find_elements(By.CSS_SELECTOR, "thead th")
    th[router_col].click()
    assert column(table, router_col) == ["bayesian", "domain-best", "laser", "mean-ensemble", "oracle †", "single:rm-a"]
    assert th[router_col].get_attribute("aria-sort") == "ascending"
    th[router_col].click()
    assert column(table, router_col) == ["single:rm-a", "oracle †", "mean-ensemble", "laser", "domain-best", "bayesian"]
    assert th[router_col].get_attribute("aria-sort") == "descending"

    # numbers sort as numbers (0, 9, 12, 20, 30, 100), not as text ("0", "100", "12", ...)
    th[regret_col].click()
    assert column(table, router_col) == ["oracle †", "bayesian", "mean-ensemble", "domain-best", "laser", "single:rm-a"]
    assert [c.split()[0] for c in column(table, regret_col)] == ["0", "9", "12", "20", "30", "100"]
    th[regret_col].click()
    assert [c.split()[0] for c in column(table, regret_col)] == ["100", "30", "20", "12", "9", "0"]
    # sorting one table leaves the others alone
    assert column(tables[1], router_col)[:2] == ["oracle †", "mean-ensemble"]

    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == [], severe

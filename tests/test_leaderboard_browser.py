"""The leaderboard's HTML pages in a real headless Chromium (Debian's `chromium` + `chromium-driver`, via selenium).

A track page must load from disk with no console errors, show its plots and sort a table when a
column header is clicked; the front page must fit a 1280 px window, filter by router family and by
track, sort, and lead to a router card. Skips only where Chromium or its driver is not installed (`.ci/run` installs both).
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


def severe_errors(browser) -> list:
    return [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]


def test_a_track_page_loads_without_console_errors_and_sorts(browser, page):
    from selenium.webdriver.common.by import By

    track = page.path.parent / "board" / "demo-cccccccccccc-iid.html"  # demo · config cccc · iid
    browser.get(track.resolve().as_uri())
    assert browser.title.startswith("demo · config cccccccccccc · scenario iid")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"  # the script ran
    # every embedded plot loaded from its path relative to the page
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")
    images = browser.find_elements(By.TAG_NAME, "img")
    assert broken == [] and len(images) == len([p for p in page.plots if "cccccccccccc-iid" in p.name]) > 0

    table = browser.find_elements(By.CSS_SELECTOR, "table.sortable")[0]
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
    assert severe_errors(browser) == []


def test_the_front_page_fits_filters_sorts_and_links_router_cards(browser, page):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 900)
    browser.get(page.html.resolve().as_uri())
    assert browser.title == "rmroute leaderboard"
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    front = browser.find_element(By.CSS_SELECTOR, "table.front")
    # the summary table fits a 1280 px window: no horizontal scrolling, inside the viewport
    fits = browser.execute_script(
        "var t = arguments[0], w = t.parentNode; return [t.getBoundingClientRect().right, window.innerWidth, "
        "w.scrollWidth, w.clientWidth, document.documentElement.scrollWidth];", front)
    right, inner, scroll_w, client_w, page_w = fits
    assert right <= inner and scroll_w <= client_w and page_w <= inner, fits
    rows = front.find_elements(By.CSS_SELECTOR, "tbody tr")
    labels = [tr.find_elements(By.TAG_NAME, "td")[0].text.strip() for tr in rows]
    assert "best single RM" in labels and not any(x.startswith("single:") for x in labels)

    # filter by router family: only the Bayesian rows stay visible, then all again
    browser.find_element(By.CSS_SELECTOR, 'button[data-family="bayesian"]').click()
    visible = [tr.find_elements(By.TAG_NAME, "td")[0].text.strip() for tr in rows if tr.is_displayed()]
    assert visible and all(v.startswith("bayesian") for v in visible)
    browser.find_element(By.CSS_SELECTOR, 'button[data-family="all"]').click()
    assert all(tr.is_displayed() for tr in rows)
    # hide a track column, then show it again
    box = browser.find_element(By.CSS_SELECTOR, 'input[data-col="1"]')
    box.click()
    assert not front.find_elements(By.CSS_SELECTOR, "thead th")[1].is_displayed()
    box.click()
    assert front.find_elements(By.CSS_SELECTOR, "thead th")[1].is_displayed()

    # sort by the router column
    th = front.find_elements(By.CSS_SELECTOR, "thead th")[0]
    th.click()
    assert column(front, 0) == sorted(labels)

    # follow a router card link
    link = front.find_element(By.LINK_TEXT, "bayesian")
    link.click()
    assert browser.current_url.endswith("/board/routers/bayesian.html")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Router")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    assert severe_errors(browser) == []

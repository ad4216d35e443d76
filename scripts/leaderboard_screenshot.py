"""Screenshot the leaderboard's front page in headless Chromium, at 1280 px, into docs/img/.

    .venv/bin/python scripts/leaderboard_screenshot.py [results] [docs/img/leaderboard-front.png]

Needs Debian's `chromium` and `chromium-driver` (as tests/test_leaderboard_browser.py) and a built
leaderboard (`rmroute leaderboard results`). Prints the summary table's width against the window's,
so the "fits 1280 px" claim is measured on the real board, not only on the test's demo.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def main(root: str = "results", out: str = "docs/img/leaderboard-front.png") -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    os.environ.setdefault("SE_OFFLINE", "true")
    page = Path(root) / "leaderboard.html"
    if not page.is_file():
        print(f"{page} is missing: run `rmroute leaderboard {root}` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                    f"--user-data-dir={profile}", "--window-size=1280,1000"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
        try:
            driver.get(page.resolve().as_uri())
            table = driver.find_element(By.CSS_SELECTOR, "table.front")
            right, inner = driver.execute_script(
                "return [arguments[0].getBoundingClientRect().right, window.innerWidth];", table)
            bottom = driver.execute_script("return arguments[0].getBoundingClientRect().bottom;", table)
            height = int(min(2400, max(1000, bottom + 40)))
            driver.set_window_size(1280, height + (1000 - driver.execute_script("return window.innerHeight;")))
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(out)
            print(f"summary table: right edge {right:.0f} px in a {inner} px window "
                  f"({'fits' if right <= inner else 'DOES NOT FIT'}); screenshot {out} (1280 x {height})")
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

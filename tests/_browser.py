"""Headless Chromium from Debian's packages, for tests that assert on rendered pages.

Selenium drives Debian's ``/usr/bin/chromium`` through Debian's ``/usr/bin/chromedriver``: both paths are given
explicitly, so Selenium Manager never downloads a browser or a driver. ``scripts/install_system.sh`` installs them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_browser() -> None:
    """Fail (not skip) when the browser is missing: the page tests are part of the suite."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        raise AssertionError(f"{', '.join(missing)} missing: run scripts/install_system.sh (Debian chromium, "
                             "chromium-driver)")


@contextmanager
def chromium(width: int = 1400, height: int = 900, offline: bool = False) -> Iterator[object]:
    """A headless Chromium WebDriver; ``offline`` cuts the network (DevTools network emulation), so a page
    that needs a CDN or any request shows it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        if offline:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
                "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
        yield driver
    finally:
        driver.quit()


def file_url(path: Path) -> str:
    return path.resolve().as_uri()

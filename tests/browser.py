"""Headless Debian Chromium for the browser tests, driven by Selenium (never a downloaded browser).

`chromium_driver()` is a context manager yielding a selenium WebDriver; tests call
`require_chromium()` first, which skips when /usr/bin/chromium or /usr/bin/chromedriver is absent
(`.ci/run` installs both from Debian, so CI runs these tests).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile

import pytest

# Without the background-networking flags Chromium keeps trying hosts this closed network refuses.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def require_chromium() -> tuple[str, str]:
    paths = chromium_paths()
    if paths is None:
        pytest.skip("Debian chromium + chromium-driver not installed (.ci/run installs them)")
    return paths


@contextlib.contextmanager
def chromium_driver(width: int = 1280, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS + [f"--window-size={width},{height}"]:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="vcpred-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()

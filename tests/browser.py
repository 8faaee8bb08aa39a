"""Headless Debian Chromium for the browser tests, driven by Selenium (never a downloaded browser).

`chromium_driver()` is a context manager yielding a selenium WebDriver; tests call
`require_chromium()` first, which skips when /usr/bin/chromium or /usr/bin/chromedriver is absent
(`.ci/run` installs both from Debian, so CI runs these tests). The page's console is recorded:
`console_errors(driver)` lists its errors (a module that failed to load, an uncaught exception).
`page_module(driver, "state", "m.state.study")` evaluates an expression with one of the page's ES
modules as `m`: the same module instance the page runs (modules define no globals).
"""

from __future__ import annotations

import contextlib
import json
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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="vcpred-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def console_errors(driver) -> list[str]:
    """The page's console errors since the last call (failed loads, uncaught exceptions, console.error)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def page_module(driver, module: str, expression: str, *args):
    """`expression` evaluated with the page's /static/<module>.js as `m` (the arguments as `args`); an
    expression giving a promise is awaited. Raises when the module or the expression fails. (The
    expression is part of the injected script: the page's CSP allows no eval.)"""
    answer = driver.execute_async_script(
        "const done = arguments[arguments.length - 1], args = [...arguments].slice(0, -1);"
        f"import({json.dumps(f'/static/{module}.js')}).then(async (m) => ({expression}))"
        ".then((value) => done({value}), (error) => done({error: String(error)}));", *args)
    if "error" in answer:
        raise AssertionError(f"{module}.js: {expression}: {answer['error']}")
    return answer.get("value")

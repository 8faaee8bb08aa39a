"""The report as a person sees it: headless Debian Chromium shows every section and every image."""

from __future__ import annotations

import pytest

from browser import chromium_driver, require_chromium
from vcpred import RESEARCH_NOTICE
from vcpred.report.build import SECTIONS


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def test_chromium_shows_every_section_and_image(report_artefacts, tmp_path):
    require_chromium()
    from selenium.webdriver.common.by import By

    report = report_artefacts.report_file()
    with chromium_driver(1280, 1000) as driver:
        driver.get(report.as_uri())
        assert driver.title.startswith("vcpred report")
        notice = driver.find_element(By.ID, "notice")
        assert notice.is_displayed() and RESEARCH_NOTICE in notice.text
        for anchor, title, _ in SECTIONS:
            element = driver.find_element(By.ID, anchor)
            assert element.is_displayed() and element.size["height"] > 50, anchor
            assert element.find_element(By.TAG_NAME, "h2").text == title
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) >= 7
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert all(complete and width > 0 and height > 0 for complete, width, height in widths), widths
        flow = driver.find_element(By.CSS_SELECTOR, "svg.flow")
        assert flow.is_displayed() and flow.size["width"] > 300
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(height, 12000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000

"""`vcpred serve` end to end in headless Debian Chromium: upload the zipped synthetic DICOM study
through the file input, scroll to the ROI slice with the wheel, draw the box with the mouse, fill
the clinical values, predict, see the risk and the heat map; uvicorn's access log names no patient.

The docs screenshot (docs/img/serve.png) comes from the same steps with the exported demo model:
    VCPRED_DOCS_SCREENSHOT=1 .venv/bin/python -m pytest -q tests/test_serve_browser.py -k docs
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from browser import chromium_driver, console_errors, page_module, require_chromium
from test_serve import VIT, zip_folders
from vcpred.cohort.provenance import warning_sentence
from vcpred.predict import load_bundle
from vcpred.serve.app import create_app
from vcpred.serve.settings import ServeSettings
from vcpred.synth import generate_cohort

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "runs" / "demo"
ACCESS_LINE = re.compile(r'"(GET|POST|DELETE) (/|/static/[a-z]+\.[a-z]+|/api/(model|local)|'
                         r'/api/studies(/[0-9a-f]{32}(/[a-z]+(\.[a-z]+)?)?)?) HTTP/1\.1" \d{3}$')


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def settings(tmp_path: Path) -> ServeSettings:
    """A free local port, named in the settings: the server answers only to Host 127.0.0.1:PORT."""
    return ServeSettings(workdir=tmp_path, port=free_port())


@contextlib.contextmanager
def serving(app):
    """uvicorn on the app's port (a free one when it names none) in a background thread; yields
    (url, access log lines)."""
    port = app.state.settings.port or free_port()
    import uvicorn

    access, handler = logging.getLogger("uvicorn.access"), Lines()
    access.addHandler(handler)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/", handler.lines
    finally:
        server.should_exit = True
        thread.join(30)
        access.removeHandler(handler)


def synthetic_patient(cohort: Path, patient_id: str | None = None) -> dict:
    """ROI and clinical values of one patient of a synthetic cohort's manifest (the first external one)."""
    with open(cohort / "manifest.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["set"] == "external"]
    row = next(r for r in rows if patient_id in (None, r["patient_id"]))
    return {"id": row["patient_id"], "folder": cohort / row["image_t2"], "slice": int(row["roi_slice"]), "row": row,
            "box": [int(row[f"roi_{k}"]) for k in ("row_min", "col_min", "row_max", "col_max")]}


def wait_for(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def state_is(name: str):
    return lambda d: d.find_element("tag name", "body").get_attribute("data-state") == name


def scroll_to_slice(driver, canvas, target: int) -> None:
    """The mouse wheel over the canvas, one slice per notch."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    for _ in range(40):
        current = int(canvas.get_attribute("data-slice"))
        if current == target:
            return
        ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(canvas), 0,
                                                100 if target > current else -100).perform()
    raise AssertionError(f"the wheel did not reach slice {target}")


def image_geometry(driver) -> dict:
    """Where the page draws the image on the canvas (canvas.js's viewGeometry of the page's state)."""
    return page_module(driver, "canvas", "import('/static/state.js').then((s) => m.viewGeometry(s.state))")


def draw_box(driver, canvas, box: list[int]) -> None:
    """Drag from the box's top-left to its bottom-right corner (image pixels -> canvas offsets).

    Offsets count from the centre of the element's part in view: the window must show the whole canvas."""
    from selenium.webdriver.common.action_chains import ActionChains

    g = image_geometry(driver)
    width, height = canvas.size["width"], canvas.size["height"]
    r0, c0, r1, c1 = box
    x0, y0 = g["ox"] + c0 * g["sx"] - width / 2, g["oy"] + r0 * g["sy"] - height / 2  # from the centre
    (ActionChains(driver).move_to_element_with_offset(canvas, round(x0), round(y0)).click_and_hold()
     .move_by_offset(round((c1 - c0) * g["sx"]), round((r1 - r0) * g["sy"])).release().perform())


def fill_clinical(driver, values: dict) -> None:
    from selenium.webdriver.support.ui import Select

    for name, value in values.items():
        field = driver.find_element("id", f"clinical-{name}")
        if field.tag_name == "select":
            Select(field).select_by_value(str(value))
        else:
            field.clear()
            field.send_keys(str(value))


def run_viewer(driver, url: str, study_zip: Path, patient: dict, clinical: dict) -> dict:
    """The clinician's steps on the page; returns what the page shows."""
    driver.get(url)
    wait_for(driver, lambda d: d.find_element("id", "model-info").text.startswith("Model"))
    driver.find_element("id", "file").send_keys(str(study_zip))
    wait_for(driver, state_is("ready"))
    canvas = driver.find_element("id", "view")
    scroll_to_slice(driver, canvas, patient["slice"])
    draw_box(driver, canvas, patient["box"])
    drawn = [int(v) for v in driver.find_element("id", "roi-info").get_attribute("data-box").split(",")]
    fill_clinical(driver, clinical)
    driver.find_element("id", "predict").click()
    failed = lambda d: "error" in d.find_element("id", "status").get_attribute("class")  # noqa: E731
    wait_for(driver, lambda d: state_is("result")(d) or failed(d), timeout=300)
    return {"box": drawn, "status": driver.find_element("id", "status").text,
            "risk": driver.find_element("id", "risk").text,
            "probability": driver.find_element("id", "probability").text,
            "frames": len(driver.find_elements("css selector", "#frames .frame")),
            "per_frame_rows": len(driver.find_elements("css selector", "#per-frame tbody tr")),
            "overlay": canvas.get_attribute("data-overlay")}


def screenshot(driver, path: Path) -> Path:
    """The whole page: the window grows to the document's height first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], height + 140)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, dict]:
    cohort = tmp_path_factory.mktemp("browser-synth")
    generate_cohort(cohort, n_development=0, n_external=1, sequences=("t2",))
    patient = synthetic_patient(cohort)
    study_zip = cohort / "study.zip"
    study_zip.write_bytes(zip_folders(patient["folder"]))
    return study_zip, patient


def test_upload_draw_predict_and_see_the_overlay(artefacts, synthetic, tmp_path, weights_home):
    require_chromium()
    study_zip, patient = synthetic
    app = create_app(load_bundle(artefacts.exported("vitlora", **VIT)), settings(tmp_path))
    clinical = {"age": patient["row"]["age"], "sex": patient["row"]["sex"]}
    with serving(app) as (url, access_log), chromium_driver(width=1360, height=1200) as driver:
        shown = run_viewer(driver, url, study_zip, patient, clinical)
        assert shown["status"] == "prediction done", shown
        assert all(abs(a - b) <= 1 for a, b in zip(shown["box"], patient["box"])), shown
        assert shown["risk"] in ("High risk of collapse", "Low risk of collapse",
                                 "Borderline: the split models fall on both sides of the threshold")
        # whole percentages (one decimal only where the two would otherwise read the same)
        assert re.fullmatch(r"Probability of collapse \d+(\.\d)? % \(risk threshold \d+(\.\d)? %\)",
                            shown["probability"])
        assert shown["frames"] == shown["per_frame_rows"] == 5 and shown["overlay"] == "drawn"
        assert "Research use only, not a medical device" in driver.find_element("id", "result-panel").text
        assert not driver.find_element("id", "synthetic-warning").is_displayed()  # real (not synth) data
        assert console_errors(driver) == []  # every module loaded, nothing thrown on the way
        driver.find_element("id", "overlay-toggle").click()
        assert driver.find_element("id", "view").get_attribute("data-overlay") == "hidden"
        href = driver.find_element("id", "download-report").get_attribute("href")
        assert re.search(r"/api/studies/[0-9a-f]{32}/report\.html$", href)
        png = screenshot(driver, tmp_path / "serve.png")
        driver.find_element("id", "close-study").click()
        wait_for(driver, state_is("empty"))
        assert len(app.state.store) == 0
        # Leaving the page closes its study too (a keepalive POST carrying the page's header).
        again = tmp_path / "again.zip"  # another file: choosing the same one again fires no change event
        again.write_bytes(study_zip.read_bytes())
        driver.find_element("id", "file").send_keys(str(again))
        wait_for(driver, state_is("ready"))
        assert len(app.state.store) == 1
        driver.get("about:blank")
        wait_for(driver, lambda d: len(app.state.store) == 0, timeout=20)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not app.state.store.root.exists() or not any(app.state.store.root.iterdir())
    assert access_log and all(ACCESS_LINE.search(line) for line in access_log), access_log
    assert not any(private in line for line in access_log for private in (patient["id"], "SYNTHETIC", "study.zip"))


def test_a_model_trained_on_synthetic_data_shows_the_warning_at_the_top(artefacts, tmp_path, weights_home):
    require_chromium()
    app = create_app(load_bundle(artefacts.exported("vitlora", synthetic=True, **VIT)), settings(tmp_path))
    with serving(app) as (url, _), chromium_driver() as driver:
        driver.get(url)
        wait_for(driver, lambda d: d.find_element("id", "model-info").text.startswith("Model"))
        banner = driver.find_element("id", "synthetic-warning")
        assert banner.is_displayed() and banner.text == warning_sentence()
        assert banner.location["y"] < driver.find_element("id", "model-info").location["y"]


@pytest.mark.skipif(os.environ.get("VCPRED_DOCS_SCREENSHOT") != "1" or not (DEMO / "model").is_dir(),
                    reason="writes docs/img/serve.png from the demo model; set VCPRED_DOCS_SCREENSHOT=1")
def test_docs_screenshot_with_the_demo_model(tmp_path):
    require_chromium()
    model = Path(os.environ.get("VCPRED_SCREENSHOT_MODEL", DEMO / "model"))
    patient = synthetic_patient(DEMO / "cohort", os.environ.get("VCPRED_SCREENSHOT_PATIENT"))
    study_zip = tmp_path / "study.zip"
    study_zip.write_bytes(zip_folders(patient["folder"]))
    bundle = load_bundle(model)
    clinical = {name: patient["row"][name] for name in bundle.clinical_columns}
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1360, height=1200) as driver:
        started = time.perf_counter()
        shown = run_viewer(driver, url, study_zip, patient, clinical)
        print(f"upload to result: {time.perf_counter() - started:.1f} s; {shown}")
        assert shown["status"] == "prediction done" and shown["overlay"] == "drawn", shown
        for _ in range(2):  # the zoom buttons: the vertebra and its heat map larger
            driver.find_element("id", "zoom-in").click()
        screenshot(driver, ROOT / "docs" / "img" / "serve.png")

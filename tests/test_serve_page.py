"""The viewer page in headless Chromium as a clinician uses it (issue 15): a new study resets the
form, the report name and the result and shows whose study it is; a failed prediction is an error,
never a number; split models on both sides of the threshold show "borderline"; the result (bar with
threshold and spread) sits next to the image without scrolling at 1366 x 768 and the page has no
horizontal overflow at 800 px; the ROI can be typed and nudged with the keyboard; slices are named
by the scanner's InstanceNumber; a heat map without signal says so.

Before: patient B's report came out under A's name with A's values, a NaN prediction read "Low
risk, 0.0 %", 51.8 % with models 48.0-54.7 % and threshold 51.5 % read a bold "High risk", the
result was below the 640 px image, and the ROI could only be dragged.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from browser import chromium_driver, page_module, require_chromium
from test_serve import VIT, zip_folders
from test_serve_browser import draw_box, fill_clinical, scroll_to_slice, serving, settings, state_is, synthetic_patient, \
    wait_for
from vcpred.predict import load_bundle, make_record, predict_patient
from vcpred.predict.bundle import Bundle
from vcpred.serve.app import create_app
from vcpred.synth import generate_cohort

pytestmark = pytest.mark.usefixtures("weights_home")


@pytest.fixture(scope="module")
def bundle(artefacts) -> Bundle:
    return load_bundle(artefacts.exported("vitlora", **VIT))


@pytest.fixture(scope="module")
def patients(tmp_path_factory) -> list[dict]:
    """Two synthetic external patients, each with its zipped DICOM study."""
    cohort = tmp_path_factory.mktemp("page-synth")
    generate_cohort(cohort, n_development=0, n_external=2, sequences=("t2",))
    import csv

    ids = [r["patient_id"] for r in csv.DictReader(open(cohort / "manifest.csv")) if r["set"] == "external"]
    found = []
    for pid in ids:
        patient = synthetic_patient(cohort, pid)
        patient["zip"] = cohort / f"{pid}.zip"
        patient["zip"].write_bytes(zip_folders(patient["folder"]))
        patient["clinical"] = {"age": patient["row"]["age"], "sex": patient["row"]["sex"]}
        found.append(patient)
    return found


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: d.find_element("id", "model-info").text.startswith("Model"))


def upload(driver, patient: dict) -> None:
    driver.find_element("id", "file").send_keys(str(patient["zip"]))
    wait_for(driver, lambda d: state_is("ready")(d) and patient["id"] in d.find_element("id", "identity").text)


def draw_and_predict(driver, patient: dict, *, clinical: dict | None = None, label: str = "") -> None:
    canvas = driver.find_element("id", "view")
    scroll_to_slice(driver, canvas, patient["slice"])
    draw_box(driver, canvas, patient["box"])
    fill_clinical(driver, patient["clinical"] if clinical is None else clinical)
    if label:
        driver.find_element("id", "label").send_keys(label)
    predict(driver)


def predict(driver) -> None:
    driver.find_element("id", "predict").click()
    wait_for(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-state") in ("result", "ready")
             and d.find_element("id", "result-panel").get_attribute("data-state") != "none", timeout=300)


def fetch_text(driver, href: str) -> str:
    return driver.execute_async_script("fetch(arguments[0]).then(r => r.text()).then(arguments[1])", href)


def field_values(driver) -> dict:
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#clinical-fields input, #clinical-fields select')]"
        ".map(e => [e.name, e.value]))")


def test_a_new_study_resets_the_form_the_report_name_and_the_result(bundle, patients, tmp_path):
    require_chromium()
    a, b = patients
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        open_page(driver, url)
        upload(driver, a)
        identity = driver.find_element("id", "identity").text
        assert f"SYNTHETIC {a['id']}" in identity and "study 20" in identity and "series" in identity, identity
        draw_and_predict(driver, a, label="Patient A")
        assert driver.find_element("id", "result-panel").is_displayed()
        upload(driver, b)  # another patient: nothing of A may stay
        assert field_values(driver) == {"age": "", "sex": ""}
        assert driver.find_element("id", "label").get_attribute("value") == ""
        assert not driver.find_element("id", "allow-missing").is_selected()
        assert not driver.find_element("id", "result-panel").is_displayed()
        assert driver.find_element("id", "roi-info").get_attribute("data-box") is None
        assert driver.find_element("id", "roi-r0").get_attribute("value") == ""
        identity = driver.find_element("id", "identity").text
        assert b["id"] in identity and a["id"] not in identity
        draw_and_predict(driver, b, label="Patient B")
        report = fetch_text(driver, driver.find_element("id", "download-report").get_attribute("href"))
        assert "Patient B" in report and "Patient A" not in report
        assert f"<td>{float(b['clinical']['age'])}</td>" in report and b["clinical"]["age"] != a["clinical"]["age"]


def test_a_failed_prediction_is_an_error_never_a_number(bundle, patients, tmp_path, monkeypatch):
    require_chromium()
    from vcpred.predict import predict as predict_module

    monkeypatch.setattr(predict_module, "combine_frames", lambda *args, **kwargs: float("nan"))
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        open_page(driver, url)
        upload(driver, patients[0])
        draw_and_predict(driver, patients[0])
        panel = driver.find_element("id", "result-panel")
        assert panel.get_attribute("data-state") == "error" and panel.is_displayed()
        error = driver.find_element("id", "result-error").text
        assert error.startswith("No prediction: the prediction failed") and "NaN" in error, error
        assert not driver.find_element("id", "result-summary").is_displayed()
        assert "%" not in panel.text and "risk" not in panel.text.lower().replace("risk threshold", "")
        assert driver.find_element("id", "download-report").get_attribute("href").endswith("#")
        # The page's own guard: an answer without a finite probability is shown as an error too.
        page_module(driver, "result", "m.showResult({result: {probability: null, sd: 0, interval: {low: 0, high: 0}, "
                    "per_model: [], category: 'low risk of collapse', threshold: 0.5}}).catch(() => {})")
        assert panel.get_attribute("data-state") == "error"
        assert "no valid probability" in driver.find_element("id", "result-error").text


def test_models_on_both_sides_of_the_threshold_show_borderline(bundle, patients, tmp_path):
    require_chromium()
    patient = patients[0]
    record = make_record({"t2": patient["folder"]}, patient["slice"], tuple(patient["box"]), patient["clinical"])
    per_model = [m["probability"] for m in predict_patient(bundle, record, explain=False).result["per_model"]]
    low, high = min(per_model), max(per_model)
    assert low < high
    straddling = dataclasses.replace(bundle, meta=dataclasses.replace(bundle.meta, threshold=(low + high) / 2))
    app = create_app(straddling, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        open_page(driver, url)
        upload(driver, patient)
        draw_and_predict(driver, patient)
        risk = driver.find_element("id", "risk")
        assert risk.text == "Borderline: the split models fall on both sides of the threshold"
        assert "borderline" in risk.get_attribute("class") and risk.value_of_css_property("font-weight") == "400"
        assert driver.find_element("id", "result-panel").get_attribute("data-state") == "borderline"
        assert "not all models agree" in driver.find_element("id", "interval").text
        bar = driver.execute_script(
            "const x = (id) => document.getElementById(id).getBoundingClientRect();"
            "return {spread: [x('prob-spread').left, x('prob-spread').right], threshold: x('prob-threshold').left,"
            " mean: x('prob-mean').left + 2, bar: [x('prob-bar').left, x('prob-bar').right]}")
        assert bar["spread"][0] < bar["threshold"] < bar["spread"][1], bar  # the threshold marker inside the spread
        assert bar["bar"][0] <= bar["spread"][0] and bar["spread"][1] <= bar["bar"][1]


LAYOUT = """
const box = (id) => document.getElementById(id).getBoundingClientRect();
const r = box('result-summary'), c = box('view');
return {inner: [innerWidth, innerHeight], scroll: [scrollX, scrollY],
        scrollWidth: document.documentElement.scrollWidth, scrollHeight: document.documentElement.scrollHeight,
        result: [r.left, r.top, r.right, r.bottom], canvas: [c.left, c.top, c.right, c.bottom]};
"""


ORIENTATION = """
const canvas = document.getElementById('view'), ctx = canvas.getContext('2d'), w = canvas.width, h = canvas.height;
const found = {};
for (const [letter, x, y] of [['S', w / 2, 12], ['I', w / 2, h - 12], ['A', 12, h / 2], ['P', w - 12, h / 2]]) {
  const d = ctx.getImageData(x - 8, y - 8, 16, 16).data;
  found[letter] = false;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 200 && d[i + 2] < 120) found[letter] = true;
}
return found;
"""


@pytest.mark.parametrize("width, height", [(1366, 768), (800, 900)])
def test_the_result_sits_next_to_the_image_without_scrolling(bundle, patients, tmp_path, width, height):
    require_chromium()
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=width, height=height) as driver:
        open_page(driver, url)
        upload(driver, patients[0])
        draw_and_predict(driver, patients[0])
        assert driver.find_element("id", "result-panel").get_attribute("data-state") in ("high", "low", "borderline")
        layout = driver.execute_script(LAYOUT)
        print(f"layout at {width} x {height}: {layout}")
        if os.environ.get("VCPRED_PAGE_SCREENSHOTS"):  # a folder: what the window shows, for a look
            driver.save_screenshot(str(Path(os.environ["VCPRED_PAGE_SCREENSHOTS"]) / f"page-{width}x{height}.png"))
        inner_w, inner_h = layout["inner"]
        left, top, right, bottom = layout["result"]
        assert layout["scrollWidth"] <= inner_w, layout  # no horizontal overflow
        assert 0 <= left and right <= inner_w and 0 <= top and bottom <= inner_h, layout  # result in view
        c_left, c_top, c_right, c_bottom = layout["canvas"]
        assert 0 <= c_left and c_right <= inner_w and 0 <= c_top and c_bottom <= inner_h, layout  # image in view
        assert left >= c_right, layout  # next to the image, not below it
        assert c_right - c_left >= (480 if width >= 1366 else 340), layout  # the image is not shrunk away
        assert driver.find_element("id", "prob-threshold").is_displayed()
        # Orientation letters (yellow) at the four edges and a scale bar of a round length.
        yellow = driver.execute_script(ORIENTATION)
        assert yellow == {"S": True, "I": True, "A": True, "P": True}, yellow
        assert driver.find_element("id", "view").get_attribute("data-scale-mm") in ("5", "10", "20", "50", "100")


def test_the_roi_can_be_typed_and_nudged_with_the_keyboard(bundle, patients, tmp_path):
    require_chromium()
    from selenium.webdriver.common.keys import Keys

    patient = patients[0]
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        open_page(driver, url)
        upload(driver, patient)
        r0, c0, r1, c1 = patient["box"]
        typed = {"roi-slice": patient["slice"], "roi-r0": r0 - 3, "roi-c0": c0 - 2, "roi-r1": r1 - 3, "roi-c1": c1 - 3}
        for element, value in typed.items():
            field = driver.find_element("id", element)
            field.clear()
            field.send_keys(str(value))
        field.send_keys(Keys.ENTER)
        info = driver.find_element("id", "roi-info")
        assert info.get_attribute("data-box") == f"{r0 - 3},{c0 - 2},{r1 - 3},{c1 - 3}"
        assert int(driver.find_element("id", "view").get_attribute("data-slice")) == patient["slice"]
        canvas = driver.find_element("id", "view")
        driver.execute_script("arguments[0].focus()", canvas)
        canvas.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)  # 2 columns right
        canvas.send_keys(Keys.SHIFT + Keys.ARROW_DOWN + Keys.NULL)  # 5 rows down
        canvas.send_keys(Keys.ARROW_UP, Keys.ARROW_UP)  # 2 rows up
        canvas.send_keys(Keys.CONTROL + Keys.ARROW_RIGHT + Keys.NULL)  # 1 column wider
        assert info.get_attribute("data-box") == f"{r0},{c0},{r1},{c1}"
        assert driver.find_element("id", "roi-r0").get_attribute("value") == str(r0)  # the typed fields follow
        canvas.send_keys(Keys.PAGE_DOWN)
        assert int(canvas.get_attribute("data-slice")) == patient["slice"] + 1
        assert info.get_attribute("data-slice") == str(patient["slice"])  # the ROI stays on its slice
        # Slice names: the scanner's InstanceNumber, the canonical index in the tooltip.
        study = page_module(driver, "state", "m.state.study")
        numbers = app.state.store.get(study).volume.provenance["instance_numbers"]
        label = driver.find_element("id", "slice-label")
        assert label.text.startswith(f"image {numbers[patient['slice'] + 1]} ")
        assert f"canonical slice index {patient['slice'] + 1}" in label.get_attribute("title")
        canvas.send_keys(Keys.PAGE_UP)
        fill_clinical(driver, patient["clinical"])
        predict(driver)
        result = page_module(driver, "state", "m.state.result")
        assert result["roi"] == {"slice": patient["slice"], "box": patient["box"]}


def test_a_heat_map_without_signal_says_so_and_draws_nothing(bundle, patients, tmp_path, monkeypatch):
    require_chromium()
    from vcpred.explain import maps

    real = maps.full_slice_map
    monkeypatch.setattr(maps, "full_slice_map", lambda *a, **k: np.where(np.isnan(real(*a, **k)), np.nan, 0.0))
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        open_page(driver, url)
        upload(driver, patients[0])
        draw_and_predict(driver, patients[0])
        assert driver.find_element("id", "view").get_attribute("data-overlay") == "no-signal"
        note = driver.find_element("id", "heatmap-note").text
        assert note.startswith("Heat map: no signal.") and "Nothing is drawn" in note, note
        assert not driver.find_element("id", "colorbar").is_displayed()


# ---------- issue 28: the viewer as a spine reader would want it ----------

def slowed_inference(monkeypatch, seconds: float) -> dict:
    """The server's inference held `seconds` longer, so the page's progress line has seconds to count;
    control["fail"] = True makes the next ones fail (an error, not a result)."""
    from vcpred.predict.predict import PredictionFailed
    from vcpred.serve import inference

    real, control = inference.predict_patient, {"fail": False}

    def slow(*args, **kwargs):
        time.sleep(seconds)
        if control["fail"]:
            raise PredictionFailed("the prediction failed: the test's models gave no number")
        return real(*args, **kwargs)
    monkeypatch.setattr(inference, "predict_patient", slow)
    return control


PROGRESS = """
const line = document.getElementById('predict-progress');
return {phase: document.body.dataset.state, shown: !line.hidden, text: line.textContent};
"""


def predict_watching_progress(driver) -> list[str]:
    """Click Predict; the progress line's texts in the order shown, until the answer (read every 50 ms)."""
    driver.find_element("id", "predict").click()
    seen, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        now = driver.execute_script(PROGRESS)
        if now["phase"] != "predicting":
            assert not now["shown"] and now["text"] == "", now  # gone with the answer
            return seen
        if now["shown"] and (not seen or seen[-1] != now["text"]):
            seen.append(now["text"])
        time.sleep(0.05)
    raise AssertionError(f"no answer; the progress line said {seen}")


def whole_or_tenth(*ps: float) -> list[str]:
    """Percentages as the page words them: whole, or one decimal where two would read the same."""
    whole = [f"{100 * p:.0f}" for p in ps]
    clash = any(p != q and whole[i] == whole[j] for i, p in enumerate(ps) for j, q in enumerate(ps) if i != j)
    return [f"{100 * p:.1f}" for p in ps] if clash else whole


def test_the_level_and_the_uncertainty_in_one_place_with_progress_while_predicting(bundle, patients, tmp_path,
                                                                                  monkeypatch):
    require_chromium()
    control = slowed_inference(monkeypatch, 2.5)
    patient = patients[0]
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        open_page(driver, url)
        upload(driver, patient)
        canvas = driver.find_element("id", "view")
        scroll_to_slice(driver, canvas, patient["slice"])
        draw_box(driver, canvas, patient["box"])
        fill_clinical(driver, patient["clinical"])
        driver.find_element("id", "level").send_keys("L1")
        seen = predict_watching_progress(driver)
        counted = [int(re.fullmatch(r"Predicting\.\.\. (\d+) s elapsed", text)[1]) for text in seen]
        assert counted[:3] == [0, 1, 2] and counted == sorted(set(counted)), seen  # counted up each second
        assert driver.find_element("id", "status").text == "prediction done"
        result = page_module(driver, "state", "m.state.result")
        assert result["level"] == "L1"
        assert driver.find_element("id", "result-level").text == "level L1"
        report = fetch_text(driver, driver.find_element("id", "download-report").get_attribute("href"))
        assert "Vertebral collapse risk: patient, level L1" in report
        # The frame-to-frame spread beside the split models' band, both worded alike, in rounded percentages.
        low, high = result["interval"]["low"], result["interval"]["high"]
        frames = [f["probability"] for f in result["per_frame"]]
        models = "\u2013".join(whole_or_tenth(low, high))
        across = "\u2013".join(whole_or_tenth(min(frames), max(frames)))
        assert driver.find_element("id", "spread").text == f"Uncertainty: split models {models} %, frames {across} %"
        probability, threshold = whole_or_tenth(result["probability"], result["threshold"])
        assert driver.find_element("id", "probability").text == \
            f"Probability of collapse {probability} % (risk threshold {threshold} %)"
        assert "and of the 5 frames read around the ROI slice" in driver.find_element("id", "interval").text
        bar = driver.execute_script(
            "const x = (id) => document.getElementById(id).getBoundingClientRect();"
            "return {frames: [x('prob-frames').left, x('prob-frames').right], bar: [x('prob-bar').left, x('prob-bar').width]}")
        left, width = bar["bar"]
        assert abs(bar["frames"][0] - (left + width * min(frames))) <= 2, bar  # the amber band: lowest frame ...
        assert abs(bar["frames"][1] - (left + width * max(frames))) <= 2, bar  # ... to highest
        # A failed prediction ends the progress line too.
        control["fail"] = True
        seen = predict_watching_progress(driver)
        assert seen and seen[0] == "Predicting... 0 s elapsed", seen
        assert driver.find_element("id", "result-error").text.startswith("No prediction: the prediction failed")


def seven_fields(fields: list[dict]) -> list[dict]:
    """The form description of a model using every clinical column of vcpred's cohorts, made from the
    test model's age and sex fields (the page builds its form from it)."""
    from vcpred.cohort.clinical_policy import UNITS

    age, sex = (next(f for f in fields if f["name"] == name) for name in ("age", "sex"))
    numeric = [{**age, "name": name, "unit": UNITS[name]} for name in ("bmi", "bmd_tscore", "days_to_mri")]
    flags = [{**age, "name": name, "unit": UNITS[name], "values": [0, 1], "min": 0, "max": 1}
             for name in ("steroid", "diabetes")]
    return [age, sex, *numeric, *flags]


FORM_LAYOUT = """
document.getElementById('predict').scrollIntoView({block: 'nearest'});
const box = (id) => { const r = document.getElementById(id).getBoundingClientRect(); return [r.top, r.bottom]; };
return {inner: innerHeight, scrollY, canvas: box('view'), level: box('level'), predict: box('predict'),
        fields: [...document.querySelectorAll('#clinical-fields input, #clinical-fields select')]
          .map((e) => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; })};
"""


def test_the_labelled_form_is_reached_at_1366x768_without_scrolling_the_image_away(bundle, patients, tmp_path):
    require_chromium()
    patient = patients[0]
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=768) as driver:
        open_page(driver, url)
        upload(driver, patient)
        draw_and_predict(driver, patient)  # the result now sits above the form
        assert driver.find_element("id", "result-panel").get_attribute("data-state") in ("high", "low", "borderline")
        fields = seven_fields(page_module(driver, "state", "m.state.model.clinical"))
        page_module(driver, "state", "m.setState({model: {...m.state.model, clinical: args[0]}})", fields)
        names = driver.execute_script(
            "return [...document.querySelectorAll('#form-panel .field .name')].map((e) => e.textContent)")
        assert names == ["Vertebral level", "Age", "Sex", "BMI", "BMD T-score", "Days from fracture to MRI",
                         "Glucocorticoids: yes/no", "Diabetes: yes/no"]
        options = driver.execute_script(
            "return [...document.getElementById('clinical-steroid').options].map((o) => [o.text, o.value])")
        assert options == [["", ""], ["no", "0"], ["yes", "1"]]
        hint = driver.find_element("css selector", "#clinical-days_to_mri + .hint").text
        assert hint.startswith("training range") and "days" not in hint  # the label says it already
        layout = driver.execute_script(FORM_LAYOUT)
        print(f"the form at 1366 x 768: {layout}")
        inner = layout["inner"] + 1  # a fraction of a pixel: the scrolled column's edge is not on whole pixels
        top, bottom = layout["canvas"]
        assert 0 <= top and bottom <= inner, layout  # the whole image still in view ...
        for name in ("level", "predict"):
            assert 0 <= layout[name][0] and layout[name][1] <= inner, (name, layout)  # ... beside the whole form
        assert all(0 <= t and b <= inner for t, b in layout["fields"]), layout


def test_a_wrong_file_shows_its_error_and_leaves_the_open_patient_open(bundle, patients, tmp_path):
    require_chromium()
    a, b = patients
    notes = tmp_path / "notes.txt"
    notes.write_text("clinical notes, not an image\n" * 20)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b["zip"].read_bytes()[:-4000])
    app = create_app(bundle, settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        open_page(driver, url)
        upload(driver, a)
        study = page_module(driver, "state", "m.state.study")
        for wrong, message in ((notes, "not a zipped DICOM series"), (broken, "damaged")):
            driver.find_element("id", "file").send_keys(str(wrong))
            wait_for(driver, lambda d: message in d.find_element("id", "status").text)
            status = driver.find_element("id", "status")
            assert status.text.endswith("(the study already open stays open)") and "error" in status.get_attribute("class")
            assert page_module(driver, "state", "m.state.study") == study and app.state.store.ids() == [study]
            assert state_is("ready")(driver) and a["id"] in driver.find_element("id", "identity").text
            assert page_module(driver, "state", "m.state.volume !== null")
        draw_and_predict(driver, a)  # the patient open is still there to predict
        assert driver.find_element("id", "result-panel").get_attribute("data-state") in ("high", "low", "borderline")
        upload(driver, b)  # a right file opens the next patient and closes the first
        assert app.state.store.ids() == [page_module(driver, "state", "m.state.study")] != [study]

"""`vcpred annotate` in headless Chromium (issue 18's acceptance): three synthetic patients whose
ROI columns were blanked are annotated on the page, one with the mouse, one typed, one with the
keyboard, saved patient by patient (progress 0, 1, 2, 3 of 3; an unsaved box is not left at the first
click), after which `vcpred cohort check`
passes and the manifest holds exactly the boxes the page showed; an unreadable series is marked
on its patient and the session goes on; a patient's series is chosen among its candidates (issue 28); a
patient is excluded with a reason and included again on the page (issue 28); the level shown large, a
DICOM patient other than the row's a warning, and the review pass of every saved box (issue 28).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from urllib.request import Request, urlopen

from browser import chromium_driver, require_chromium
from test_annotate import blank_rois, cohort, synthetic, true_rois  # noqa: F401 (fixtures)
from test_annotate_exclude import manifest as exclusion_manifest  # noqa: F401 (fixture)
from test_annotate_review import annotated, renamed, rewrite  # noqa: F401 (fixture)
from test_annotate_series import initialised  # noqa: F401 (fixture)
from test_serve_browser import draw_box, scroll_to_slice, serving, settings, state_is, wait_for
from vcpred.cli import main
from vcpred.serve.annotate_app import create_annotate_app
from vcpred.serve.annotate_session import AnnotateSession


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def progress(driver) -> str:
    return text(driver, "progress")


def wait_for_patient(driver, index: int) -> None:
    wait_for(driver, lambda d: d.find_element("id", "patient-name").get_attribute("data-index") == str(index)
             and state_is("ready")(d) and d.find_element("id", "next-patient").is_enabled() != (index == 2))


def shown_roi(driver) -> list[int]:
    info = driver.find_element("id", "roi-info")
    return [int(info.get_attribute("data-slice")), *map(int, info.get_attribute("data-box").split(","))]


def saved_rois(manifest: Path) -> list[list[str]]:
    return [line.split(",")[-5:] for line in manifest.read_text().splitlines()[1:]]


def type_roi(driver, roi: list[int]) -> None:
    from selenium.webdriver.common.keys import Keys

    for element, value in zip(("roi-slice", "roi-r0", "roi-c0", "roi-r1", "roi-c1"), roi):
        field = driver.find_element("id", element)
        field.clear()
        field.send_keys(str(value))
    field.send_keys(Keys.ENTER)


def test_three_patients_annotated_on_the_page_pass_cohort_check(synthetic, cohort, tmp_path):
    require_chromium()
    from selenium.webdriver.common.keys import Keys

    truth = true_rois((synthetic / "manifest.csv").read_text())
    assert main(["cohort", "check", str(cohort)]) == 2  # 3 patients without ROI
    app = create_annotate_app(AnnotateSession.open(cohort), settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=768) as driver:
        driver.get(url)
        wait_for_patient(driver, 0)
        assert progress(driver) == "0 of 3 patients annotated"
        assert text(driver, "patient-name").startswith("Patient dev0001 (manifest row 2; 1 of 3)")
        assert "dev0001" in text(driver, "identity")  # the DICOM header's patient, to check against the row
        assert text(driver, "slice-label").startswith("image ")  # PACS numbering (InstanceNumber)
        assert not driver.find_element("id", "save-roi").is_enabled()  # nothing drawn yet

        # An arrow key without a box places none (issue 27: it used to put a 32 x 32 box in the centre
        # that could be saved unseen): the box is drawn or typed on purpose.
        canvas = driver.find_element("id", "view")
        driver.execute_script("arguments[0].focus()", canvas)
        canvas.send_keys(Keys.ARROW_RIGHT)
        assert "draw the ROI box" in text(driver, "status")
        assert not driver.find_element("id", "save-roi").is_enabled()
        assert driver.find_element("id", "roi-info").get_attribute("data-box") in (None, "")

        # Patient 1: the box drawn with the mouse on the true slice, then "Save and next".
        scroll_to_slice(driver, canvas, truth[0][0])
        draw_box(driver, canvas, truth[0][1:])
        first = shown_roi(driver)
        assert first[0] == truth[0][0] and all(abs(a - b) <= 1 for a, b in zip(first[1:], truth[0][1:])), first
        assert text(driver, "saved-note") == "not saved yet"
        driver.find_element("id", "next-patient").click()  # an unsaved box is not left at the first click
        assert driver.find_element("id", "patient-name").get_attribute("data-index") == "0"
        assert "dev0001 is not saved" in text(driver, "status") and shown_roi(driver) == first
        driver.find_element("id", "save-next").click()
        wait_for_patient(driver, 1)
        assert progress(driver) == "1 of 3 patients annotated"
        assert saved_rois(cohort)[0] == [str(v) for v in first] and saved_rois(cohort)[1] == [""] * 5

        # Patient 2: typed (canonical slice index and box), then "Save and next".
        type_roi(driver, truth[1])
        assert shown_roi(driver) == truth[1]
        if os.environ.get("VCPRED_DOCS_SCREENSHOT"):
            driver.save_screenshot(str(Path(__file__).resolve().parents[1] / "docs" / "img" / "annotate.png"))
        driver.find_element("id", "save-next").click()
        wait_for_patient(driver, 2)
        assert progress(driver) == "2 of 3 patients annotated"

        # Patient 3: typed 2 columns too far left, moved right with the keyboard, then "Save ROI".
        slice_index, r0, c0, r1, c1 = truth[2]
        type_roi(driver, [slice_index, r0, c0 - 2, r1, c1 - 2])
        driver.execute_script("arguments[0].focus()", canvas)
        canvas.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        assert shown_roi(driver) == truth[2]
        driver.find_element("id", "save-roi").click()
        wait_for(driver, lambda d: progress(d) == "3 of 3 patients annotated")
        assert text(driver, "saved-note") == ""
        assert not driver.find_element("id", "first-without-roi").is_enabled()

        # Back to patient 1: its saved box is shown again.
        driver.find_element("id", "patient-list").find_elements("tag name", "button")[0].click()
        wait_for_patient(driver, 0)
        assert shown_roi(driver) == first

        # Another tab or client saves patient 1 meanwhile: this page's save is refused, and says so.
        other = Request(f"{url}api/annotate/patients/0/roi", method="POST", headers={
            "X-Vcpred-Request": "1", "Content-Type": "application/json"},
            data=json.dumps({"slice": first[0], "box": first[1:], "version": 1}).encode())
        assert urlopen(other, timeout=30).status == 200
        driver.execute_script("arguments[0].focus()", canvas)
        canvas.send_keys(Keys.ARROW_DOWN)
        driver.find_element("id", "save-roi").click()
        wait_for(driver, lambda d: "another tab or client" in text(d, "status"))
        assert "not saved" in text(driver, "status")
    assert saved_rois(cohort) == [[str(v) for v in roi] for roi in (first, truth[1], truth[2])]
    assert main(["cohort", "check", str(cohort)]) == 0
    assert cohort.with_name("manifest.csv.bak").read_text() == blank_rois((synthetic / "manifest.csv").read_text())


def test_an_unreadable_series_is_marked_and_the_session_goes_on(cohort, tmp_path):
    require_chromium()
    for path in (cohort.parent / "images" / "dev0001" / "t2").iterdir():
        path.write_bytes(b"not DICOM")
    app = create_annotate_app(AnnotateSession.open(cohort), settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=900) as driver:
        driver.get(url)
        item = lambda d: d.find_element("css selector", "#patient-list li")  # noqa: E731
        wait_for(driver, lambda d: "error" in (item(d).get_attribute("class") or ""))
        assert "cannot be read" in item(driver).text
        assert "error" in driver.find_element("id", "status").get_attribute("class")
        assert text(driver, "status")  # the reader's message
        driver.find_element("id", "next-patient").click()
        wait_for_patient(driver, 1)
        assert progress(driver) == "0 of 3 patients annotated"


def series_rows(driver) -> dict[str, list]:
    """The patient's series list, read in one go (the page may be replacing it): reference -> [class, cells]."""
    return {ref: rest for ref, *rest in driver.execute_script(
        "return [...document.querySelectorAll('#series-choice tbody tr')].map((r) => "
        "[r.dataset.reference, r.className, [...r.cells].map((c) => c.textContent)])")}


def series_button(driver, reference: str):
    return driver.find_element("css selector", f'#series-choice tr[data-reference="{reference}"] button')


def chosen_series(driver) -> list[str]:
    return [ref for ref, (kind, _) in series_rows(driver).items() if kind == "chosen"]


def manifest_row(manifest: Path) -> dict[str, str]:
    with open(manifest, newline="") as handle:
        return next(csv.DictReader(handle))


def test_a_patients_series_is_chosen_on_the_page_and_written_into_the_manifest(initialised, tmp_path):
    """Issue 28: two studies whose sagittal T2 both are series 3, told apart by their dates and chosen
    on the page; the choice is written into series_t2 (its short reference), like a ROI."""
    require_chromium()
    app = create_annotate_app(AnnotateSession.open(initialised), settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=768) as driver:
        driver.get(url)
        wait_for(driver, lambda d: len(series_rows(d)) == 3)  # P001 mixes 3 series: none read yet
        assert "mixes 3 series" in text(driver, "status")
        assert not driver.find_element("id", "series-choice").get_attribute("hidden")
        rows = series_rows(driver)
        assert list(rows) == ["20240105#3", "20240105#4", "20240610#3"] and chosen_series(driver) == []
        assert rows["20240610#3"][1][:6] == ["20240610#3", "2024-06-10", "3", "SAG T2 FSE", "sagittal", "9"]
        assert rows["20240105#3"][1][:4] == ["20240105#3", "2024-01-05", "3", "SAG T2"]
        assert not series_button(driver, "20240105#4").is_enabled()  # axial: not readable

        series_button(driver, "20240610#3").click()
        wait_for(driver, lambda d: state_is("ready")(d) and chosen_series(d) == ["20240610#3"])
        assert "study 2024-06-10" in text(driver, "identity")
        assert manifest_row(initialised)["series_t2"] == "20240610#3"
        type_roi(driver, [4, 12, 14, 28, 34])
        if os.environ.get("VCPRED_DOCS_SCREENSHOT"):
            driver.save_screenshot(str(Path(__file__).resolve().parents[1] / "docs" / "img" / "annotate-series.png"))
        driver.find_element("id", "save-roi").click()
        wait_for(driver, lambda d: progress(d) == "1 of 2 patients annotated")
        assert manifest_row(initialised)["roi_slice"] == "4"

        # The baseline instead: its box was placed on the follow-up, so the first click only warns.
        series_button(driver, "20240105#3").click()
        wait_for(driver, lambda d: "clears the saved ROI of P001" in text(d, "status"))
        assert manifest_row(initialised)["series_t2"] == "20240610#3"
        series_button(driver, "20240105#3").click()
        wait_for(driver, lambda d: state_is("ready")(d) and chosen_series(d) == ["20240105#3"])
        assert "study 2024-01-05" in text(driver, "identity") and progress(driver) == "0 of 2 patients annotated"
        row = manifest_row(initialised)
        assert row["series_t2"] == "20240105#3" and row["roi_slice"] == ""

        driver.find_element("id", "next-patient").click()  # P002 holds one series: nothing to choose
        wait_for(driver, lambda d: d.find_element("id", "patient-name").get_attribute("data-index") == "1"
                 and state_is("ready")(d))
        assert driver.find_element("id", "series-choice").get_attribute("hidden")


def test_a_patient_is_excluded_with_a_reason_and_included_again_on_the_page(exclusion_manifest, tmp_path):
    """Issue 28: P003 is excluded in the manifest; P001 is excluded on the page (its reason written into
    its exclude cell), shown as excluded with its reason and counted apart, then included again."""
    require_chromium()
    app = create_annotate_app(AnnotateSession.open(exclusion_manifest), settings(tmp_path))
    items = lambda d: d.find_elements("css selector", "#patient-list li")  # noqa: E731
    mark = lambda d, i: items(d)[i].find_element("class name", "mark").text  # noqa: E731
    with serving(app) as (url, _), chromium_driver(width=1366, height=768) as driver:
        driver.get(url)
        wait_for(driver, lambda d: d.find_element("id", "patient-name").get_attribute("data-index") == "0"
                 and state_is("ready")(d))
        assert progress(driver) == "0 of 2 patients annotated (1 excluded)"
        assert "excluded" in items(driver)[2].get_attribute("class")
        assert mark(driver, 2) == "excluded: series misses slice 12"
        assert not driver.find_element("id", "excluded-note").is_displayed()

        driver.find_element("id", "exclude-patient").click()  # nothing typed: no reason, nothing written
        assert "write why P001 is left out first" in text(driver, "status")
        driver.find_element("id", "exclude-reason").send_keys("no vertebra visible, L1 above the field")
        driver.find_element("id", "exclude-patient").click()
        wait_for(driver, lambda d: progress(d) == "0 of 1 patients annotated (2 excluded)")
        assert text(driver, "excluded-note") == ("Excluded, left out of every step: no vertebra visible, L1 above the "
                                                 "field")
        assert mark(driver, 0) == "excluded: no vertebra visible, L1 above the field"
        assert manifest_row(exclusion_manifest)["exclude"] == "no vertebra visible, L1 above the field"
        if os.environ.get("VCPRED_DOCS_SCREENSHOT"):
            driver.save_screenshot(str(Path(__file__).resolve().parents[1] / "docs" / "img" / "annotate-exclude.png"))

        driver.find_element("id", "include-patient").click()
        wait_for(driver, lambda d: progress(d) == "0 of 2 patients annotated (1 excluded)")
        assert not driver.find_element("id", "excluded-note").is_displayed()
        assert not driver.find_element("id", "include-patient").is_displayed()
        assert manifest_row(exclusion_manifest)["exclude"] == ""
    assert exclusion_manifest.read_bytes() == exclusion_manifest.with_name("manifest.csv.bak").read_bytes()


def patient_shown(driver, index: int):
    return lambda d: d.find_element("id", "patient-name").get_attribute("data-index") == str(index) \
        and state_is("ready")(d)


def font_px(driver, element_id: str) -> float:
    return float(driver.execute_script(f"return getComputedStyle(document.getElementById('{element_id}')).fontSize")
                 .removesuffix("px"))


def test_the_level_shows_large_and_another_dicom_patient_is_a_warning(annotated, tmp_path):
    """Issue 28: the manifest's level beside the patient id ("level not recorded" when empty); a
    DICOM PatientID that is not the row's patient id is a visible warning, for that patient only."""
    require_chromium()
    renamed(annotated, {"dev0001": "P007"})
    rewrite(annotated, lambda row: row.update(level="" if row["patient_id"] == "dev0002" else row["level"]))
    level = manifest_row(annotated)["level"]
    app = create_annotate_app(AnnotateSession.open(annotated), settings(tmp_path))
    with serving(app) as (url, _), chromium_driver(width=1366, height=768) as driver:
        driver.get(url)
        wait_for(driver, patient_shown(driver, 0))
        assert text(driver, "patient-level") == level and level.startswith(("T", "L"))
        assert font_px(driver, "patient-level") >= 1.5 * font_px(driver, "patient-name")
        warning = driver.find_element("id", "identity-warning")
        wait_for(driver, lambda d: warning.is_displayed())
        assert warning.text == ("DICOM PatientID dev0001 differs from the manifest's patient id P007: check this "
                                "is the right patient's series")
        if os.environ.get("VCPRED_DOCS_SCREENSHOT"):
            driver.save_screenshot(str(Path(__file__).resolve().parents[1] / "docs" / "img" / "annotate-identity.png"))

        driver.find_element("id", "next-patient").click()
        wait_for(driver, patient_shown(driver, 1))
        assert text(driver, "patient-level") == "level not recorded"
        assert not warning.is_displayed()  # dev0002's header names dev0002


def review_cards(driver) -> list[dict]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#review-grid > li')].map((card) => {"
        "  const img = card.querySelector('img');"
        "  return {index: card.dataset.index, text: card.innerText,"
        "          id: card.querySelector('.review-id').textContent,"
        "          level: card.querySelector('.review-level').textContent,"
        "          image: img ? {loaded: img.complete && img.naturalWidth > 0, height: img.naturalHeight} : null};})")


def test_the_review_pass_shows_every_saved_box_a_page_at_a_time_and_opens_a_patient(annotated, tmp_path):
    """Issue 28: every patient as a card (its thumbnail, id, level, label, exclusion), 24 to a page, the
    next page's thumbnails not asked for until it is shown; a card opens its patient in the editor."""
    require_chromium()
    from vcpred.serve.annotate_review import THUMB_HEIGHT

    with open(annotated, newline="") as handle:
        rows = list(csv.DictReader(handle))
    # 30 patients over the three images: P001 to P030, P002 without ROI, P003 excluded.
    extra = [{**rows[i % 3], "patient_id": f"P{i + 1:03d}", "exclude": ""} for i in range(30)]
    extra[1].update(roi_slice="", roi_row_min="", roi_col_min="", roi_row_max="", roi_col_max="")
    extra[2]["exclude"] = "series misses slice 12"
    with open(annotated, "w", newline="") as handle:
        writer = csv.DictWriter(handle, [*rows[0], "exclude"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(extra)
    app = create_annotate_app(AnnotateSession.open(annotated), settings(tmp_path))
    with serving(app) as (url, log), chromium_driver(width=1366, height=768) as driver:
        driver.get(url)
        wait_for(driver, patient_shown(driver, 1))  # the first without ROI
        assert not driver.find_element("id", "review-panel").is_displayed()
        driver.find_element("id", "review-open").click()
        wait_for(driver, lambda d: len(review_cards(d)) == 24)
        assert not driver.find_element("id", "viewer-panel").is_displayed()
        driver.find_element("id", "review-close").click()  # back to the patient that was open
        assert driver.find_element("id", "viewer-panel").is_displayed() and review_cards(driver) == []
        assert driver.find_element("id", "patient-name").get_attribute("data-index") == "1"
        driver.find_element("id", "review-open").click()
        wait_for(driver, lambda d: len(review_cards(d)) == 24)
        assert text(driver, "review-page") == "page 1 of 2 (patients 1 to 24 of 30)"
        wait_for(driver, lambda d: all(c["image"]["loaded"] for c in review_cards(d)[:3] if c["image"]))
        first, without, excluded = review_cards(driver)[:3]
        assert first["image"]["height"] == THUMB_HEIGHT
        assert (first["id"], first["level"]) == ("P001", rows[0]["level"])
        assert f"label {rows[0]['label']}" in first["text"] and f"slice index {rows[0]['roi_slice']}" in first["text"]
        assert without["image"] is None and "no ROI saved" in without["text"]
        assert excluded["image"]["loaded"] and "excluded: series misses slice 12" in excluded["text"]
        asked = lambda: {line.split("/patients/")[1].split("/")[0] for line in log if "/thumbnail" in line}  # noqa: E731
        assert asked() <= {str(i) for i in range(24)}  # the second page's are not asked for

        driver.find_element("id", "review-next").click()
        wait_for(driver, lambda d: [c["index"] for c in review_cards(d)] == [str(i) for i in range(24, 30)])
        assert text(driver, "review-page") == "page 2 of 2 (patients 25 to 30 of 30)"
        wait_for(driver, lambda d: all(c["image"]["loaded"] for c in review_cards(d)))
        if os.environ.get("VCPRED_DOCS_SCREENSHOT"):
            driver.find_element("id", "review-previous").click()
            wait_for(driver, lambda d: all(c["image"]["loaded"] for c in review_cards(d)[:10] if c["image"]))
            driver.save_screenshot(str(Path(__file__).resolve().parents[1] / "docs" / "img" / "annotate-review.png"))
            driver.find_element("id", "review-next").click()
            wait_for(driver, lambda d: len(review_cards(d)) == 6)

        driver.find_element("css selector", '#review-grid > li[data-index="26"] a').click()
        wait_for(driver, patient_shown(driver, 26))
        assert not driver.find_element("id", "review-panel").is_displayed()
        assert text(driver, "patient-name").startswith("Patient P027 (manifest row 28; 27 of 30)")
        assert shown_roi(driver) == [int(rows[2][c]) for c in ("roi_slice", "roi_row_min", "roi_col_min",
                                                                "roi_row_max", "roi_col_max")]

"""One risk category and one name for a slice in every output (issue 28, "Consistency").

Before: for split models on both sides of the threshold the CLI, report and viewer said
"Borderline" while the heat-map PNG title, and so the DICOM Secondary Capture filed into PACS, said
"low risk of collapse"; the QC sheet named slices by their 0-based index ("slice 19"), the viewer by
the scanner's InstanceNumber ("image 20"), and the QC sheet did not say which series was read.
Fast: the outputs are made from hand-built prediction results and a small prepared store.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pydicom

from conftest import patient_row, write_manifest
from imaging_support import save_nifti, small_volume, write_dicom_series
from vcpred.cli import main
from vcpred.imaging import read_volume
from vcpred.imaging.qc import write_qc_sheet
from vcpred.predict.dicom_sc import write_secondary_capture
from vcpred.predict.predict import NOTICE, PatientPrediction, summarise
from vcpred.predict.report import report_html

STRADDLING = [0.42, 0.55, 0.47]  # mean 0.48, below the threshold 0.5, but one model above it
BORDERLINE_TEXT = "borderline: the split models fall on both sides of the threshold"


def dicom_provenance(numbers: list[int]) -> dict:
    return {"sequences": {"t2": {"source": "/nowhere/P7", "format": "dicom", "series_description": "SAG T2",
                                 "series_number": 7, "study_date": "20210304", "instance_numbers": numbers}}}


def nifti_provenance() -> dict:
    return {"sequences": {"t2": {"source": "/nowhere/P7.nii.gz", "format": "nifti"}}}


def result_for(per_model: list[float], threshold: float = 0.5, provenance: dict | None = None) -> dict:
    """A prediction.json result as predict_patient makes it, for these split-model probabilities."""
    return {"generator": "vcpred predict", "notice": NOTICE, "training_data": {}, "model_id": "m1",
            "configuration": "vit", "ap": True, "aggregate": "mean", "threshold_rule": "median of split thresholds",
            "patient_id": "P7", **summarise(np.array(per_model), threshold),
            "per_model": [{"split": i, "threshold": threshold, "probability": p} for i, p in enumerate(per_model)],
            "per_frame": [{"offset": o, "slice": 19 + o, "probability": 0.48} for o in (-1, 0, 1)],
            "roi": {"slice": 19, "box": [10, 12, 20, 24]}, "crop_box": [8, 10, 22, 26],
            "provenance": provenance if provenance is not None else nifti_provenance(),
            "clinical": {}, "imputed": [], "clinical_flags": [], "precision": "fp32", "precision_reason": "cpu",
            "warnings": [], "heatmap": {"method": "attention rollout", "frame_offset": 0, "averaged_over_models": 3}}


def heatmap_title(result: dict, monkeypatch) -> str:
    """The title heatmap_png gives the overlay (and so the PNG, the report gallery and the SC)."""
    import vcpred.explain

    from vcpred.predict.outputs import heatmap_png

    seen = {}
    monkeypatch.setattr(vcpred.explain, "overlay_png", lambda *args, **kwargs: seen.update(kwargs) or b"png")
    prepared = SimpleNamespace(main_slice=np.zeros((40, 48), np.float32), roi_box=np.array([10, 12, 20, 24]),
                               crop_box=np.array([8, 10, 22, 26]), spacing=(3.0, 1.0, 1.0))
    heatmap_png(PatientPrediction(result, np.zeros((40, 48), np.float32), prepared), None)
    return seen["title"]


def secondary_capture_comments(result: dict, tmp_path) -> str:
    from PIL import Image
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(buffer, format="PNG")
    return pydicom.dcmread(write_secondary_capture(tmp_path / "sc.dcm", buffer.getvalue(), result)).ImageComments


# ---------- one risk category ----------

def test_split_models_on_both_sides_of_the_threshold_make_the_risk_borderline():
    result = result_for(STRADDLING)
    assert result["borderline"] and result["category"] == "low risk of collapse"  # the mean's side, kept
    assert result["risk"] == "borderline"
    agreeing = result_for([0.52, 0.55, 0.61])
    assert not agreeing["borderline"] and agreeing["risk"] == agreeing["category"] == "high risk of collapse"
    at_threshold = result_for([0.5, 0.6])  # the lowest model at the threshold is on the high side
    assert at_threshold["risk"] == "high risk of collapse"


def test_the_heat_map_and_the_secondary_capture_say_borderline_like_the_report(monkeypatch, tmp_path):
    result = result_for(STRADDLING)
    title = heatmap_title(result, monkeypatch)
    comments = secondary_capture_comments(result, tmp_path)
    for text in (title, comments):
        assert BORDERLINE_TEXT in text.lower() and "low risk" not in text.lower(), text
    assert f"P(collapse) 48.0 % ({BORDERLINE_TEXT})" in title
    assert BORDERLINE_TEXT in report_html(result, None).lower()
    high = result_for([0.6, 0.7])
    assert "P(collapse) 65.0 % (high risk of collapse)" in heatmap_title(high, monkeypatch)
    assert "high risk of collapse" in secondary_capture_comments(high, tmp_path)


def test_the_cli_line_and_the_manifest_table_give_the_same_category():
    from vcpred.predict.command import prediction_line
    from vcpred.predict.outputs import _row

    result = result_for(STRADDLING)
    line = prediction_line(result)
    assert f"; {BORDERLINE_TEXT} (threshold 0.500)" in line and "low risk" not in line
    record = SimpleNamespace(patient_id="P7", set="external", label=1)
    row = _row(record, PatientPrediction(result), None, None)
    assert row["risk"] == "borderline" and row["category"] == "low risk of collapse" and row["borderline"]


def test_a_result_written_before_the_risk_field_reads_the_same():
    from vcpred.predict.risk import risk_label, risk_text

    old = result_for(STRADDLING)
    del old["risk"]
    assert risk_text(old) == BORDERLINE_TEXT and risk_label(old) == "Borderline"
    old_high = {**result_for([0.6, 0.7])}
    del old_high["risk"]
    assert risk_label(old_high) == "High risk of collapse"


# ---------- one name for a slice ----------

def test_a_slice_is_named_by_the_scanners_image_number_with_the_index_beside_it():
    from vcpred.imaging.naming import slice_label

    assert slice_label(19, 20) == "image 20 (index 19)"
    assert slice_label(19, None) == "slice 19 (0-based index)"


def test_the_heat_map_report_and_secondary_capture_name_the_slice_as_the_scanner_does(monkeypatch, tmp_path):
    numbers = list(range(40, 0, -1))  # canonical slice 19 is image 21 (a series numbered right to left)
    result = result_for([0.6, 0.7], provenance=dicom_provenance(numbers))
    assert heatmap_title(result, monkeypatch).startswith("P7, image 21 (index 19): P(collapse)")
    assert "heat map on image 21 (index 19)" in secondary_capture_comments(result, tmp_path)
    page = report_html(result, None)
    assert "green box: ROI on image 21 (index 19), box [10, 12, 20, 24]" in page
    assert "frame offset -1: image 22 (index 18)" in page and "frame offset +1: image 20 (index 20)" in page
    assert "series 7" in page and "SAG T2" in page and "2021-03-04" in page
    nifti = result_for([0.6, 0.7])
    assert heatmap_title(nifti, monkeypatch).startswith("P7, slice 19 (0-based index): P(collapse)")
    assert "ROI on slice 19 (0-based index)" in report_html(nifti, None)


ROI = {"roi_slice": 4, "roi_row_min": 12, "roi_col_min": 14, "roi_row_max": 28, "roi_col_max": 34}


def prepare(manifest, store) -> int:
    return main(["prepare", str(manifest), "--out", str(store), "--size", "32", "--no-n4"])


def test_the_qc_sheet_names_the_series_read_and_the_roi_slices_image_number(tmp_path):
    folder = tmp_path / "cohort"
    write_dicom_series(folder / "images/P000", small_volume(seed=0), description="SAG T2 FSE",
                       study_date="20210304", series_number=7)
    save_nifti(small_volume(seed=1), folder / "images/P001.nii.gz")
    rows = [patient_row(0, image_t2="images/P000", **ROI), patient_row(1, image_t2="images/P001.nii.gz", **ROI)]
    store = tmp_path / "store"
    assert prepare(write_manifest(folder, rows, make_images=False), store) == 0
    number = read_volume(folder / "images/P000").provenance["instance_numbers"][4]
    page = (store / "qc.html").read_text()
    assert f"study 2021-03-04, series 7, &#x27;SAG T2 FSE&#x27;, sagittal, 9 slices; ROI on image {number} (index 4)" \
        in page
    assert "NIfTI file" in page and "P001.nii.gz" in page and "ROI on slice 4 (0-based index)" in page
    recorded = json.loads((store / "provenance" / "P000.json").read_text())["sequences"]["t2"]
    assert recorded["series_number"] == 7 and recorded["study_date"] == "20210304"

    from vcpred.imaging.qc import slice_captions
    from vcpred.imaging.store import load_prepared

    main_caption, frames = slice_captions(load_prepared(store, "P000"))
    assert main_caption == f"ROI: image {number} (index 4)"
    numbers = read_volume(folder / "images/P000").provenance["instance_numbers"]
    assert frames == [(f"{o:+d}: image {numbers[4 + o]}", f"(index {4 + o})") for o in (-2, -1, 0, 1, 2)]
    assert slice_captions(load_prepared(store, "P001"))[0] == "ROI: slice 4 (0-based index)"


def test_a_store_prepared_before_series_were_recorded_still_shows_its_rows(tmp_path):
    index = {"patients": {"P000": {"status": "ok", "warnings": []}}}
    page = write_qc_sheet(tmp_path, ["P000"], index).read_text()
    assert "series read: not recorded (prepared by an earlier vcpred)" in page
    assert f"vcpred prepare MANIFEST --out {tmp_path} --force" in page

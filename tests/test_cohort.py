from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from vcpred.cohort import check_manifest, load_manifest, summarize
from vcpred.errors import ManifestError


def test_clean_manifest_loads_records(clean_manifest: Path):
    cohort = load_manifest(clean_manifest)
    assert len(cohort) == 26
    assert cohort.sequences == ["t2"]
    assert cohort.clinical_columns == {"age": "numeric", "sex": "categorical"}
    record = cohort["P003"]
    assert record.label == 1 and record.set == "development"
    assert record.roi.box == (100, 80, 140, 120) and record.roi.slice == 7
    assert record.images["t2"] == (clean_manifest.parent / "images/P003.nii.gz").resolve()
    assert record.clinical == {"age": 73.0, "sex": "M"}
    assert record.row == 5  # header is row 1
    assert cohort.ids("external") == [f"P{100 + i:03d}" for i in range(6)]


def test_summary_counts_events_per_set_and_site(clean_manifest: Path):
    result = check_manifest(clean_manifest)
    text = summarize(result.cohort, result.table)
    assert "patients: 26" in text
    # 20 development patients, labels 1 at 0,3,...,18 -> 7 events
    assert "development" in text and "7 events  prevalence 35.0%" in text
    assert "external / B" in text
    assert "age" in text and "sex" in text


def test_five_planted_problems_all_reported_with_rows(tmp_path: Path):
    rows = [patient_row(i, label=i % 2) for i in range(8)]
    rows[1]["patient_id"] = "P000"                       # duplicate id -> row 3
    rows[2]["set"] = "training"                          # unknown set -> row 4
    rows[3]["label"] = 2                                 # label other than 0/1 -> row 5
    rows[4]["roi_row_min"], rows[4]["roi_row_max"] = 150, 140  # min >= max -> row 6
    rows[5]["roi_col_min"] = "abc"                       # non-numeric ROI -> row 7
    rows[6]["roi_slice"] = -1                            # negative ROI -> row 8
    path = write_manifest(tmp_path, rows)
    (tmp_path / rows[7]["image_t2"]).unlink()            # missing file -> row 9
    result = check_manifest(path)
    assert result.cohort is None
    found = {(p.row, p.column) for p in result.problems}
    assert found == {(3, "patient_id"), (4, "set"), (5, "label"), (6, "roi_row_max"),
                     (7, "roi_col_min"), (8, "roi_slice"), (9, "image_t2")}
    with pytest.raises(ManifestError, match="7 problem"):
        load_manifest(path)


def test_missing_columns_and_empty_file(tmp_path: Path):
    header = [c for c in MANIFEST_HEADER if c not in ("roi_slice", "label", "image_t2")]
    path = write_manifest(tmp_path, [patient_row(0)], header=header)
    messages = [str(p) for p in check_manifest(path).problems]
    assert any("roi_slice" in m and "missing" in m for m in messages)
    assert any("no image column" in m for m in messages)
    assert any("no label column" in m for m in messages)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="not a readable CSV"):
        check_manifest(empty)
    with pytest.raises(ManifestError, match="does not exist"):
        check_manifest(tmp_path / "nope.csv")


def test_labels_derived_from_heights(tmp_path: Path):
    header = [c for c in MANIFEST_HEADER if c != "label"] + ["height_initial", "height_followup"]
    rows = [patient_row(0, height_initial=20.0, height_followup=16.0),   # 20 % loss -> 1
            patient_row(1, height_initial=20.0, height_followup=18.0),   # 10 % loss -> 0
            patient_row(2, height_initial=20.0, height_followup="x")]    # unreadable
    path = write_manifest(tmp_path, rows, header=header)
    result = check_manifest(path)
    assert [(p.row, p.column) for p in result.problems] == [(4, "height_followup")]
    cohort = load_manifest(write_manifest(tmp_path / "ok", rows[:2], header=header))
    assert [r.label for r in cohort.records] == [1, 0]
    assert cohort.height_loss_threshold == 0.15
    stricter = load_manifest(tmp_path / "ok" / "manifest.csv", height_loss_threshold=0.25)
    assert [r.label for r in stricter.records] == [0, 0]


def test_unlabelled_allowed_only_outside_development(tmp_path: Path):
    rows = [patient_row(0, label=""), patient_row(1, set_name="external", label="")]
    result = check_manifest(write_manifest(tmp_path, rows))
    assert [(p.row, p.column) for p in result.problems] == [(2, "label")]


def test_missing_clinical_values_are_kept_as_none(tmp_path: Path):
    rows = [patient_row(0, age="NA"), patient_row(1, age="")]
    cohort = load_manifest(write_manifest(tmp_path, rows))
    assert [r.clinical["age"] for r in cohort.records] == [None, None]


def test_nan_in_roi_is_a_problem(tmp_path: Path):
    result = check_manifest(write_manifest(tmp_path, [patient_row(0, roi_row_min="nan")]))
    assert [(p.row, p.column) for p in result.problems] == [(2, "roi_row_min")]


def test_unknown_patient_lookup_is_a_clear_error(clean_manifest: Path):
    cohort = load_manifest(clean_manifest)
    with pytest.raises(ManifestError, match="not in"):
        cohort["nobody"]

"""`vcpred cohort init` (issue 18): a manifest from a folder of patients' DICOM, checked, filled in and
prepared."""

from __future__ import annotations

import csv
import re

import pytest

from dicom_variants import write_enhanced, zipped
from imaging_support import small_volume, write_dicom_series
from vcpred.cli import main
from vcpred.cohort import check_manifest
from vcpred.cohort.manifest import ROI_COLUMNS
from vcpred.imaging.dicom import scan_folder

ROI = {"roi_slice": "4", "roi_row_min": "12", "roi_col_min": "14", "roi_row_max": "28", "roi_col_max": "34"}


@pytest.fixture
def dicom_root(tmp_path):
    """P001: a sagittal T2 and an axial series; P002: two sagittal series (T2, STIR); P003: a zip of
    one series; P004: no DICOM; a hidden folder."""
    root = tmp_path / "hospital"
    write_dicom_series(root / "P001" / "sag", small_volume(seed=1), flips=(0,), description="T2 SAG")
    write_dicom_series(root / "P001" / "ax", small_volume(seed=2), perm=(1, 0, 2), description="T2 AX")
    write_dicom_series(root / "P002" / "t2", small_volume(seed=3), flips=(0,), description="T2_TSE_SAG")
    write_enhanced(root / "P002" / "stir" / "IM1", small_volume(seed=4), description="STIR SAG")
    write_dicom_series(tmp_path / "P003", small_volume(seed=5), flips=(0,), description="t2 sag")
    zipped(tmp_path / "P003", root / "P003.zip")
    (root / "P004").mkdir()
    (root / "P004" / "README.txt").write_text("no images here\n")
    write_dicom_series(root / ".trash" / "x", small_volume(seed=6))
    return root


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def uid_of(folder):
    return next(iter(scan_folder(folder).groups))


def test_init_writes_one_row_per_patient_and_lists_what_to_choose(tmp_path, dicom_root, capsys):
    out = tmp_path / "study" / "manifest.csv"
    assert main(["cohort", "init", str(dicom_root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(out)
    assert [r["patient_id"] for r in rows] == ["P001", "P002", "P003"]
    assert [r["image_t2"] for r in rows] == ["../hospital/P001", "../hospital/P002", "../hospital/P003.zip"]
    assert rows[0]["series_t2"] == uid_of(dicom_root / "P001" / "sag")  # the only sagittal one of two
    assert rows[1]["series_t2"] == "" and rows[2]["series_t2"] == ""  # P002: two candidates; P003: one series
    assert all(r["set"] == "development" and r["label"] == "" and r["age"] == "" for r in rows)
    assert all(r[c] == "" for r in rows for c in ROI_COLUMNS)
    assert "P002: 2 sagittal series; write the first word of the one to read into series_t2" in printed
    # references are padded to the longest listed: generated UIDs differ in length, so any run of spaces
    assert re.search(rf"^    {re.escape(uid_of(dicom_root / 'P002' / 't2'))} +no study date, no series number, "
                     r"'T2_TSE_SAG', sagittal, 9 slices$", printed, re.MULTILINE)
    assert "no series number, 'STIR SAG', sagittal, 9 slices" in printed
    assert "P004: left out:" in printed and ".trash" not in printed
    assert "3 patient(s), series chosen for 2, 1 to choose, 1 left out" in printed


def test_init_refuses_to_overwrite_without_force(tmp_path, dicom_root, capsys):
    out = tmp_path / "manifest.csv"
    out.write_text("my edits\n")
    assert main(["cohort", "init", str(dicom_root), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and out.read_text() == "my edits\n"
    assert main(["cohort", "init", str(dicom_root), "--out", str(out), "--force", "--series", "*t2*"]) == 0
    rows = read_rows(out)
    assert rows[1]["series_t2"] == uid_of(dicom_root / "P002" / "t2")
    assert not list(tmp_path.glob(".manifest.csv.*"))  # no temporary file left beside it


def test_init_per_study(tmp_path):
    root = tmp_path / "root"
    write_dicom_series(root / "P001" / "a", small_volume(seed=1), flips=(0,))  # each call: a new study
    write_dicom_series(root / "P001" / "b", small_volume(seed=2), flips=(0,))
    out = tmp_path / "m.csv"
    assert main(["cohort", "init", str(root), "--out", str(out), "--per-study"]) == 0
    rows = read_rows(out)
    assert [r["patient_id"] for r in rows] == ["P001_1", "P001_2"]
    assert {r["series_t2"] for r in rows} == {uid_of(root / "P001" / "a"), uid_of(root / "P001" / "b")}


def test_check_lists_patients_without_roi_then_prepare_reads_the_filled_manifest(tmp_path, dicom_root, capsys):
    out = tmp_path / "manifest.csv"
    assert main(["cohort", "init", str(dicom_root), "--out", str(out), "--series", "*t2*sag*"]) == 0
    capsys.readouterr()
    assert main(["cohort", "check", str(out)]) == 2
    printed = capsys.readouterr().out
    assert ("manifest: 3 patient(s) without ROI (roi_slice and box empty): P001, P002, P003; place each box"
            in printed)
    assert printed.count("without ROI") == 1 and "is not a whole number" not in printed
    rows = read_rows(out)
    for row in rows:
        row.update(ROI, label="0")
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert check_manifest(out).ok
    assert main(["prepare", str(out), "--out", str(tmp_path / "store"), "--size", "32", "--no-n4"]) == 0
    assert "prepared 3, skipped 0 unchanged, failed 0" in capsys.readouterr().out


def test_a_partly_filled_roi_is_still_reported_per_column(tmp_path, dicom_root):
    out = tmp_path / "manifest.csv"
    assert main(["cohort", "init", str(dicom_root), "--out", str(out)]) == 0
    rows = read_rows(out)
    rows[0]["roi_slice"] = "4"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    problems = [str(p) for p in check_manifest(out).problems]
    assert "row 2, patient 'P001', column 'roi_row_min': '' is not a whole number" in problems
    assert any(p.startswith("manifest: 2 patient(s) without ROI") and p.endswith("roi_ columns") and "P002, P003" in p
               for p in problems)


def test_init_set_external_writes_every_row_external(tmp_path, dicom_root, capsys):
    """Another hospital's export becomes its own external manifest: no hand edit of `set` (issue 28)."""
    out = tmp_path / "external.csv"
    assert main(["cohort", "init", str(dicom_root), "--out", str(out), "--set", "external"]) == 0
    rows = read_rows(out)
    assert [r["patient_id"] for r in rows] == ["P001", "P002", "P003"]
    assert all(r["set"] == "external" for r in rows)
    assert "3 patient(s), all in set external" in capsys.readouterr().out


def test_init_set_accepts_only_the_two_sets(tmp_path, dicom_root, capsys):
    out = tmp_path / "manifest.csv"
    with pytest.raises(SystemExit) as exit_info:
        main(["cohort", "init", str(dicom_root), "--out", str(out), "--set", "test"])
    assert exit_info.value.code == 2 and "invalid choice: 'test'" in capsys.readouterr().err
    assert not out.exists()

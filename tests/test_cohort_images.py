"""The manifest's images as `cohort check` and `prepare` judge them (issue 18): a zip, a single DICOM
file, an unreadable format; the per-patient series column overriding --series."""

from __future__ import annotations

import json

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from dicom_variants import write_enhanced, zipped
from imaging_support import small_volume, write_dicom_series
from vcpred.cli import main
from vcpred.cohort import check_manifest

ROI = {"roi_slice": 4, "roi_row_min": 12, "roi_col_min": 14, "roi_row_max": 28, "roi_col_max": 34}
FAST = ["--size", "32", "--no-n4"]
HEADER = MANIFEST_HEADER + ["series_t2"]


def two_series_study(folder, seed=0):
    """A study folder holding a classic 'T2 SAG' series and an enhanced 'STIR SAG' file."""
    write_dicom_series(folder / "t2", small_volume(seed=seed), flips=(0,))
    write_enhanced(folder / "stir" / "IM0001", small_volume(seed=seed + 10), description="STIR SAG")
    return folder


def prepare(manifest, store, *extra):
    return main(["prepare", str(manifest), "--out", str(store), *FAST, *extra])


def test_check_and_prepare_judge_zip_file_and_unknown_format_alike(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    write_dicom_series(cohort / "series", small_volume(), flips=(0,))
    zipped(cohort / "series", cohort / "P000.zip")
    write_enhanced(cohort / "P001.dcm", small_volume(seed=1))
    (cohort / "P002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    rows = [patient_row(0, image_t2="P000.zip", **ROI), patient_row(1, image_t2="P001.dcm", **ROI)]
    manifest = write_manifest(cohort, rows, make_images=False)
    assert main(["cohort", "check", str(manifest)]) == 0
    assert prepare(manifest, tmp_path / "store") == 0
    assert "prepared 2, skipped 0 unchanged, failed 0" in capsys.readouterr().out
    rows.append(patient_row(2, image_t2="P002.png", **ROI))
    manifest = write_manifest(cohort, rows, make_images=False)
    problems = [str(p) for p in check_manifest(manifest).problems]
    assert problems == ["row 4, patient 'P002', column 'image_t2': P002.png: neither a DICOM series folder, a zip of "
                        "one, a DICOM file nor a NIfTI file (.nii, .nii.gz); give the folder holding the DICOM slices, "
                        "or convert the image to NIfTI"]
    assert prepare(manifest, tmp_path / "store") == 2  # the manifest is refused as check refuses it
    assert "P002.png: neither a DICOM series folder" in capsys.readouterr().err


def test_the_series_column_chooses_per_patient_and_overrides_series(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    for i in range(2):
        two_series_study(cohort / f"P{i:03d}", seed=i)
    rows = [patient_row(0, image_t2="P000", series_t2="stir sag", **ROI),
            patient_row(1, image_t2="P001", series_t2="", **ROI)]
    manifest = write_manifest(cohort, rows, HEADER, make_images=False)
    assert main(["cohort", "check", str(manifest)]) == 0
    store = tmp_path / "store"
    assert prepare(manifest, store) == 2  # P001 has no choice: the error lists its series
    assert "P001: patient 'P001'" in capsys.readouterr().err
    assert prepare(manifest, store, "--series", "t2=T2 SAG") == 0
    provenance = {pid: json.loads((store / "provenance" / f"{pid}.json").read_text())["sequences"]["t2"]
                  for pid in ("P000", "P001")}
    assert provenance["P000"]["series_description"] == "STIR SAG" and provenance["P000"]["multiframe"]
    assert provenance["P001"]["series_description"] == "T2 SAG"
    # choosing another series in the manifest prepares that patient again (the choice is in its key)
    rows[0]["series_t2"] = "T2 SAG"
    write_manifest(cohort, rows, HEADER, make_images=False)
    capsys.readouterr()
    assert prepare(manifest, store, "--series", "t2=T2 SAG") == 0
    assert "prepared 1, skipped 1 unchanged" in capsys.readouterr().out


def test_a_series_column_needs_its_image_column(tmp_path):
    manifest = write_manifest(tmp_path, [patient_row(0, series_t1="T1 SAG")], MANIFEST_HEADER + ["series_t1"])
    problems = [str(p) for p in check_manifest(manifest).problems]
    assert problems == ["column 'series_t1': a series column without its image column image_t1"]

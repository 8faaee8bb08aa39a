"""The same image under two patient ids (issue 28): three patients with bit-identical prepared frames,
one pair with opposite labels, went unnoticed. `cohort check` names identical image files on both
rows; `prepare` records a hash of each patient's frames and lists the patients whose frames are
identical, with their labels."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from imaging_support import save_nifti, small_volume, write_dicom_series
from vcpred.cli import main
from vcpred.cohort import check_manifest, load_manifest
from vcpred.errors import ManifestError

ROI = {"roi_slice": 4, "roi_row_min": 12, "roi_col_min": 14, "roi_row_max": 28, "roi_col_max": 34}
HEADER = MANIFEST_HEADER + ["series_t2", "exclude"]


def nifti_cohort(folder, n=4):
    """n patients, each its own NIfTI file (its own volume), labels 0, 1, 0, 1 ..."""
    rows = [patient_row(i, label=i % 2, **ROI) for i in range(n)]
    for i, row in enumerate(rows):
        save_nifti(small_volume(seed=i), folder / row["image_t2"])
    return rows


def problems_of(manifest, pid):
    return [str(p) for p in check_manifest(manifest).problems if p.patient_id == pid]


# ---------- cohort check: identical image files ----------

def test_check_names_the_same_image_files_under_two_ids_on_both_rows(tmp_path, capsys):
    folder = tmp_path / "cohort"
    rows = nifti_cohort(folder)
    shutil.copyfile(folder / rows[1]["image_t2"], folder / rows[3]["image_t2"])  # P003 holds P001's image
    manifest = write_manifest(folder, rows, make_images=False)
    assert main(["cohort", "check", str(manifest)]) == 2
    out = capsys.readouterr().out
    assert "2 problem(s)" in out
    assert ("row 3, patient 'P001', column 'image_t2': the same image files as patient 'P003' (row 5, label 1)"
            in out)
    assert "row 5, patient 'P003', column 'image_t2': the same image files as patient 'P001' (row 3, label 1)" in out
    assert "exclude cell" in out and "P000" not in out and "P002" not in out


def test_a_pair_with_opposite_labels_is_said_so(tmp_path):
    folder = tmp_path / "cohort"
    rows = nifti_cohort(folder, 5)
    shutil.copyfile(folder / rows[0]["image_t2"], folder / rows[1]["image_t2"])
    shutil.copyfile(folder / rows[2]["image_t2"], folder / rows[4]["image_t2"])  # both label 0
    manifest = write_manifest(folder, rows, make_images=False)
    [problem] = problems_of(manifest, "P001")
    assert "the same image files as patient 'P000' (row 2, label 0)" in problem
    assert "the labels are opposite (1 here, 0 on row 2), so one of them is wrong" in problem
    assert "the labels are opposite (0 here, 1 on row 3)" in problems_of(manifest, "P000")[0]
    [same] = problems_of(manifest, "P002")
    assert "the same image files as patient 'P004' (row 6, label 0)" in same and "opposite" not in same


def test_one_file_named_by_two_rows_is_the_same_image(tmp_path):
    folder = tmp_path / "cohort"
    rows = nifti_cohort(folder, 3)
    rows[2]["image_t2"] = rows[0]["image_t2"]
    manifest = write_manifest(folder, rows, make_images=False)
    assert "the same image files as patient 'P002' (row 4, label 0)" in problems_of(manifest, "P000")[0]


def test_a_dicom_folder_is_compared_by_its_files_contents_not_their_names(tmp_path):
    folder = tmp_path / "cohort"
    rows = nifti_cohort(folder, 3)
    write_dicom_series(folder / "images" / "A", small_volume(seed=9), flips=(0,))
    shutil.copytree(folder / "images" / "A", folder / "images" / "B")
    for path in (folder / "images" / "B").iterdir():
        path.rename(path.with_name("renamed_" + path.name))
    rows[0]["image_t2"], rows[2]["image_t2"] = "images/A", "images/B"
    manifest = write_manifest(folder, rows, make_images=False)
    assert "the same image files as patient 'P002'" in problems_of(manifest, "P000")[0]


def test_an_excluded_copy_other_series_of_one_folder_and_empty_files_are_no_duplicates(tmp_path):
    folder = tmp_path / "cohort"
    rows = nifti_cohort(folder, 3)
    shutil.copyfile(folder / rows[1]["image_t2"], folder / rows[2]["image_t2"])
    rows[2]["exclude"] = "duplicate of P001"
    study = folder / "images" / "study"  # one folder, two series: a row per series (cohort init --per-study)
    write_dicom_series(study, small_volume(seed=5), flips=(0,), description="T2 SAG")
    write_dicom_series(study, small_volume(seed=6), flips=(0,), description="STIR SAG")
    rows += [patient_row(3, label=0, image_t2="images/study", series_t2="T2 SAG", **ROI),
             patient_row(4, label=1, image_t2="images/study", series_t2="STIR SAG", **ROI)]
    manifest = write_manifest(folder, rows, header=HEADER, make_images=False)
    assert check_manifest(manifest).ok
    empty = write_manifest(tmp_path / "empty", [patient_row(i, label=i % 2) for i in range(4)])  # stand-ins
    assert check_manifest(empty).ok


def test_only_inputs_of_equal_sizes_are_hashed_and_only_when_files_are_checked(tmp_path, monkeypatch):
    from vcpred.cohort import validate

    hashed = []
    real = validate.input_digest
    monkeypatch.setattr(validate, "input_digest", lambda path: hashed.append(path) or real(path))
    folder = tmp_path / "cohort"
    rows = nifti_cohort(folder)
    manifest = write_manifest(folder, rows, make_images=False)
    assert check_manifest(manifest).ok and hashed == []  # every file has its own size: nothing to hash
    shutil.copyfile(folder / rows[1]["image_t2"], folder / rows[3]["image_t2"])
    assert check_manifest(manifest, check_files=False).ok and hashed == []
    assert not check_manifest(manifest).ok and sorted(p.name for p in hashed) == ["P001.nii.gz", "P003.nii.gz"]


def test_a_manifest_to_predict_may_name_one_image_twice(tmp_path):
    """predict --manifest predicts each patient on its own: the same image under two ids is no problem."""
    folder = tmp_path / "cohort"
    rows = nifti_cohort(folder, 2)
    rows[1]["image_t2"] = rows[0]["image_t2"]
    manifest = write_manifest(folder, rows, make_images=False)
    with pytest.raises(ManifestError, match="the same image files as patient 'P001'"):
        load_manifest(manifest)
    assert load_manifest(manifest, compare_images=False).ids() == ["P000", "P001"]


# ---------- prepare: identical frames ----------

def frame_cohort(folder):
    """P000 and P001: one volume, written as .nii.gz and as .nii (other bytes, the same pixels), with
    opposite labels; P002 another volume."""
    rows = [patient_row(0, label=0, **ROI), patient_row(1, label=1, image_t2="images/P001.nii", **ROI),
            patient_row(2, label=0, **ROI)]
    save_nifti(small_volume(seed=3), folder / rows[0]["image_t2"])
    save_nifti(small_volume(seed=3), folder / rows[1]["image_t2"])
    save_nifti(small_volume(seed=4), folder / rows[2]["image_t2"])
    return write_manifest(folder, rows, header=HEADER, make_images=False), rows


def prepare(manifest, store):
    return main(["prepare", str(manifest), "--out", str(store), "--size", "32", "--no-n4"])


def test_prepare_lists_patients_whose_frames_are_identical_with_their_labels(tmp_path, capsys):
    manifest, rows = frame_cohort(tmp_path / "cohort")
    assert check_manifest(manifest).ok  # other files: cohort check cannot see it
    store = tmp_path / "store"
    assert prepare(manifest, store) == 2
    err = capsys.readouterr().err
    assert "1 group of patients with identical prepared frames" in err
    assert "P000 (row 2, label 0) and P001 (row 3, label 1): OPPOSITE LABELS" in err
    assert "P002" not in err and "Traceback" not in err
    assert "exclude cell" in err
    entries = json.loads((store / "index.json").read_text())["patients"]
    assert entries["P000"]["frames_sha256"] == entries["P001"]["frames_sha256"] != entries["P002"]["frames_sha256"]
    assert all(entry["status"] == "ok" for entry in entries.values())  # prepared all the same

    assert prepare(manifest, store) == 2  # unchanged patients are skipped, and still compared
    assert "P000 (row 2, label 0) and P001 (row 3, label 1): OPPOSITE LABELS" in capsys.readouterr().err
    rows[1]["exclude"] = "duplicate of P000"
    write_manifest(tmp_path / "cohort", rows, header=HEADER, make_images=False)
    assert prepare(manifest, store) == 0
    assert "identical" not in capsys.readouterr().err


def test_the_same_label_is_named_too_and_older_entries_are_hashed_from_their_file(tmp_path, capsys):
    manifest, rows = frame_cohort(tmp_path / "cohort")
    rows[1]["label"] = 0
    write_manifest(tmp_path / "cohort", rows, header=HEADER, make_images=False)
    store = tmp_path / "store"
    assert prepare(manifest, store) == 2
    capsys.readouterr()
    index = json.loads((store / "index.json").read_text())
    recorded = {pid: entry.pop("frames_sha256") for pid, entry in index["patients"].items()}
    (store / "index.json").write_text(json.dumps(index))  # as an earlier vcpred wrote it
    assert prepare(manifest, store) == 2
    err = capsys.readouterr().err
    assert "P000 (row 2, label 0) and P001 (row 3, label 0): the same label" in err
    again = json.loads((store / "index.json").read_text())["patients"]
    assert {pid: entry["frames_sha256"] for pid, entry in again.items()} == recorded


@pytest.mark.parametrize("quiet", [True, False])
def test_identical_frames_are_listed_even_under_quiet(tmp_path, capsys, quiet):
    manifest, _ = frame_cohort(tmp_path / "cohort")
    argv = ["prepare", str(manifest), "--out", str(tmp_path / "store"), "--size", "32", "--no-n4"]
    assert main(["--quiet", *argv] if quiet else argv) == 2
    assert "OPPOSITE LABELS" in capsys.readouterr().err

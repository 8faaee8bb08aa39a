"""`vcpred prepare` and the prepared store: layout, skip rule, failures, parallel runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import patient_row, write_manifest
from imaging_support import record_for, save_nifti, small_volume, write_dicom_series
from vcpred.cli import main
from vcpred.cohort import Roi, load_manifest
from vcpred.errors import ConfigError, ImageReadError, RoiError
from vcpred.imaging import PrepareParams, load_prepared, prepare_cohort, prepare_patient
from vcpred.imaging.store import npz_path

ROI = {"roi_slice": 4, "roi_row_min": 12, "roi_col_min": 14, "roi_row_max": 28, "roi_col_max": 34}
FAST = ["--size", "32", "--n4-iterations", "5"]


def cohort_folder(tmp_path: Path, n: int = 3) -> Path:
    """n patients: NIfTI files, the last one a DICOM series folder."""
    folder = tmp_path / "cohort"
    rows = []
    for i in range(n):
        volume = small_volume(seed=i)
        if i == n - 1:
            write_dicom_series(folder / f"images/P{i:03d}", volume, flips=(0,))
            image = f"images/P{i:03d}"
        else:
            image = f"images/P{i:03d}.nii.gz"
            save_nifti(volume, folder / image)
        rows.append(patient_row(i, label=i % 2, image_t2=image, **ROI))
    write_manifest(folder, rows, make_images=False)
    return folder


def run_prepare(manifest: Path, store: Path, *extra: str) -> int:
    return main(["prepare", str(manifest), "--out", str(store), *FAST, *extra])


def test_prepare_writes_store_and_loads_back(tmp_path, capsys):
    manifest = cohort_folder(tmp_path) / "manifest.csv"
    store = tmp_path / "store"
    assert run_prepare(manifest, store) == 0
    assert "prepared 3, skipped 0 unchanged, failed 0" in capsys.readouterr().out
    index = json.loads((store / "index.json").read_text())
    assert index["format"] == "vcpred-prepared-store" and index["params"]["size"] == 32
    assert {e["status"] for e in index["patients"].values()} == {"ok"}
    loaded = load_prepared(store, "P002")
    assert loaded.frames.shape == (5, 3, 32, 32) and loaded.frames.dtype == np.float32
    assert loaded.frame_offsets.tolist() == [-2, -1, 0, 1, 2] and loaded.frame_slices.tolist() == [2, 3, 4, 5, 6]
    assert loaded.crop_box.tolist() == [9, 13, 32, 36] and loaded.roi_box.tolist() == [12, 14, 28, 34]
    assert loaded.main_slice.shape == (40, 48) and loaded.spacing == (3.0, 1.0, 1.0)
    assert loaded.frame_boxes.tolist()[0] == [2, 9, 13, 32, 36] and loaded.frame_boxes.shape == (5, 5)
    with np.load(npz_path(store, "P002"), allow_pickle=False) as data:
        np.testing.assert_array_equal(data["frame_boxes"], loaded.frame_boxes)
    assert loaded.channels == ["t2"] * 3 and loaded.provenance["sequences"]["t2"]["format"] == "dicom"
    assert json.loads((store / "provenance" / "P002.json").read_text()) == loaded.provenance
    # The store holds what prepare_patient returns for the same record and parameters.
    record = load_manifest(manifest)["P002"]
    direct = prepare_patient(record, PrepareParams(size=32, n4_iterations=(5,)))
    np.testing.assert_allclose(direct.frames, loaded.frames, atol=1e-5)
    assert not list(store.rglob("*.tmp"))


def test_rerun_skips_unchanged_and_redoes_changed(tmp_path):
    folder = cohort_folder(tmp_path)
    manifest, store = folder / "manifest.csv", tmp_path / "store"
    cohort = load_manifest(manifest)
    params = PrepareParams(size=32, n4_iterations=(5,))
    assert len(prepare_cohort(cohort, store, params).prepared) == 3
    stamp = {p.name: p.stat().st_mtime_ns for p in (store / "patients").iterdir()}
    assert len(prepare_cohort(cohort, store, params).skipped) == 3
    # Same bytes, new mtime: re-hashed, not re-prepared.
    image = folder / "images" / "P000.nii.gz"
    os.utime(image, ns=(1, 1))
    assert prepare_cohort(cohort, store, params).skipped == ["P000", "P001", "P002"]
    assert {p.name: p.stat().st_mtime_ns for p in (store / "patients").iterdir()} == stamp
    # New bytes for one patient: only that one is prepared again.
    save_nifti(small_volume(seed=7), image)
    summary = prepare_cohort(cohort, store, params)
    assert summary.prepared == ["P000"] and summary.skipped == ["P001", "P002"]
    # New parameters: everyone again.
    assert len(prepare_cohort(cohort, store, PrepareParams(size=24, n4=False)).prepared) == 3


def test_failing_patients_reported_others_prepared(tmp_path, capsys):
    folder = cohort_folder(tmp_path, n=4)
    rows = [patient_row(i, label=i % 2, image_t2=f"images/P{i:03d}.nii.gz", **ROI) for i in range(3)]
    rows.append(patient_row(3, image_t2="images/P003", **ROI))
    rows[1].update(roi_row_min=60, roi_row_max=70)  # below the 40-row image
    victim = sorted((folder / "images/P003").iterdir())[2]
    victim.write_text("garbage")
    manifest = write_manifest(folder, rows, make_images=False)
    store = tmp_path / "store"
    assert run_prepare(manifest, store) == 2
    captured = capsys.readouterr()
    assert "prepared 2, skipped 0 unchanged, failed 2" in captured.out
    assert "P001: patient 'P001': ROI box rows 60..70" in captured.err and "fully outside" in captured.err
    assert f"P003: patient 'P003': {victim.parent}: uneven slice spacing" in captured.err
    assert f"(ignored as not DICOM: {victim.name})" in captured.err
    assert sorted(p.name for p in (store / "patients").iterdir()) == ["P000.npz", "P002.npz"]
    index = json.loads((store / "index.json").read_text())
    assert index["patients"]["P001"]["status"] == "failed" and "fully outside" in index["patients"]["P001"]["error"]
    # P000 breaks after a good run: its old result must not survive next to a failed entry.
    save_nifti(small_volume(shape=(40, 9, 48), spacing=(1.0, 3.0, 1.0)), folder / "images/P000.nii.gz")
    assert run_prepare(manifest, store) == 2
    assert not (store / "patients" / "P000.npz").exists() and not (store / "provenance" / "P000.json").exists()


def test_cli_error_exit_2_without_traceback(tmp_path, capsys):
    folder = tmp_path / "c"
    save_nifti(small_volume(shape=(40, 9, 48), spacing=(1.0, 3.0, 1.0)), folder / "images/P000.nii.gz")
    manifest = write_manifest(folder, [patient_row(0, image_t2="images/P000.nii.gz", **ROI)], make_images=False)
    assert main(["prepare", str(manifest), "--out", str(tmp_path / "store"), "--no-n4", "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "P000: patient 'P000'" in err and "axial series" in err


def test_refuses_a_folder_that_is_not_a_store(tmp_path, capsys):
    manifest = cohort_folder(tmp_path, n=1) / "manifest.csv"
    user_folder = tmp_path / "thesis"
    user_folder.mkdir()
    (user_folder / "chapter1.tex").write_text("precious")
    for extra in ([], ["--force"]):  # --force prepares every patient again; it never claims a folder
        assert run_prepare(manifest, user_folder, *extra) == 2
        err = capsys.readouterr().err
        assert "not a vcpred prepared store" in err and "choose a new or empty folder" in err
        assert [p.name for p in user_folder.iterdir()] == ["chapter1.tex"]
    (user_folder / "index.json").write_text('{"format": "my-own-index"}')  # a look-alike index is not a store
    assert run_prepare(manifest, user_folder) == 2
    assert sorted(p.name for p in user_folder.iterdir()) == ["chapter1.tex", "index.json"]


def test_bad_option_values_are_config_errors(tmp_path, capsys):
    manifest = cohort_folder(tmp_path, n=1) / "manifest.csv"
    for extra in (["--jobs", "0"], ["--n4-iterations", "a,b"], ["--series", "t2"], ["--frames", "-1"],
                  ["--sequences", "t1"]):
        assert run_prepare(manifest, tmp_path / "s", *extra) == 2
        assert capsys.readouterr().err.startswith("error:")


def test_two_sequences_resampled_onto_the_first(tmp_path):
    t2 = small_volume()
    t1 = small_volume(seed=5)
    t1.origin = t1.origin + np.array([0.0, 2.0, 0.0])  # shifted 2 mm posterior: another grid
    paths = {"t2": save_nifti(t2, tmp_path / "t2.nii.gz"), "t1": save_nifti(t1, tmp_path / "t1.nii.gz")}
    record = record_for(paths["t2"], roi=Roi(4, 12, 14, 28, 34), t1=paths["t1"])
    prepared = prepare_patient(record, PrepareParams(n4=False, size=24, sequences=("t2", "t1")))
    assert prepared.frames.shape == (5, 2, 24, 24) and prepared.channels == ["t2", "t1"]
    assert prepared.provenance["sequences"]["t1"]["resampled_onto"] == "t2"
    assert "resampled_onto" not in prepared.provenance["sequences"]["t2"]


def test_prepare_patient_errors_name_the_patient(tmp_path):
    path = save_nifti(small_volume(), tmp_path / "t2.nii.gz")
    with pytest.raises(RoiError, match=r"^patient 'P001': roi_slice 9 is outside the volume"):
        prepare_patient(record_for(path, roi=Roi(9, 1, 1, 5, 5)), PrepareParams(n4=False))


@pytest.mark.slow
def test_parallel_jobs_give_the_same_store(tmp_path):
    manifest = cohort_folder(tmp_path) / "manifest.csv"
    assert run_prepare(manifest, tmp_path / "one") == 0
    assert run_prepare(manifest, tmp_path / "two", "--jobs", "2") == 0
    for pid in ("P000", "P001", "P002"):
        np.testing.assert_allclose(load_prepared(tmp_path / "one", pid).frames,
                                   load_prepared(tmp_path / "two", pid).frames, atol=1e-5)


def test_edge_policy_and_dtype_through_prepare_patient(tmp_path, caplog):
    path = save_nifti(small_volume(), tmp_path / "t2.nii.gz")
    record = record_for(path, roi=Roi(0, 12, 14, 28, 34))
    kept = prepare_patient(record, PrepareParams(n4=False, size=16, edge="keep", dtype="float16"))
    assert kept.frames.shape == (3, 3, 16, 16) and kept.frames.dtype == np.float16
    assert kept.frame_offsets.tolist() == [0, 1, 2] and kept.provenance["frames"]["beyond_volume"] == [-2, -1]
    with caplog.at_level("WARNING", logger="vcpred"):
        replicated = prepare_patient(record, PrepareParams(n4=False, size=16))
    assert replicated.frame_slices.tolist() == [0, 0, 0, 1, 2]
    assert "frame offsets [-2, -1] fall outside the volume" in caplog.text
    assert replicated.provenance["warnings"] and "P001" in caplog.text


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    from vcpred.imaging.store import atomic_write

    def explode(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "patients" / "P.npz", explode)
    assert list((tmp_path / "patients").iterdir()) == []


def test_patient_ids_become_safe_file_names(tmp_path):
    from vcpred.imaging.store import npz_path

    assert npz_path(tmp_path, "a/b c").name == "a%2Fb%20c.npz"
    assert npz_path(tmp_path, "..") == tmp_path / "patients" / "...npz"  # stays inside the store
    assert npz_path(tmp_path, "a%2Fb") != npz_path(tmp_path, "a/b")  # '%' is encoded too: no clashes


def test_sequences_on_one_grid_are_not_resampled(tmp_path):
    paths = {name: save_nifti(small_volume(seed=i), tmp_path / f"{name}.nii.gz") for i, name in enumerate(("t2", "t1"))}
    record = record_for(paths["t2"], roi=Roi(4, 12, 14, 28, 34), t1=paths["t1"])
    prepared = prepare_patient(record, PrepareParams(n4=False, size=16, sequences=("t1", "t2")))
    assert prepared.channels == ["t1", "t2"]
    assert not any("resampled_onto" in s for s in prepared.provenance["sequences"].values())


def test_series_choice_reaches_the_reader(tmp_path):
    folder = tmp_path / "study"
    write_dicom_series(folder / "a", small_volume(), series_uid="1.2.3.1", description="T2 SAG")
    write_dicom_series(folder / "b", small_volume(seed=1), series_uid="1.2.3.2", description="T1 SAG")
    record = record_for(folder, roi=Roi(4, 12, 14, 28, 34))
    with pytest.raises(ImageReadError, match="^patient 'P001': .*mixes 2 series"):
        prepare_patient(record, PrepareParams(n4=False, size=16))
    prepared = prepare_patient(record, PrepareParams(n4=False, size=16, series=(("t2", "T1 SAG"),)))
    assert prepared.provenance["sequences"]["t2"]["series_uid"] == "1.2.3.2"


def test_params_round_trip_through_json():
    params = PrepareParams(k=1, n4_iterations=(10, 5), sequences=("t2", "t1"), series=(("t1", "T1 SAG"),))
    assert PrepareParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    with pytest.raises(ConfigError, match="unknown preparation parameter"):
        PrepareParams.from_dict({"k": 2, "wavelets": True})

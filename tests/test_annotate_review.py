"""`vcpred annotate` as a spine reader reads it (issue 28, "The viewer as a spine reader would want it"),
over HTTP: the manifest's vertebral level (and label) of each patient; a warning when the DICOM
PatientID (or, without one, PatientName) of the series opened is not the manifest's patient id,
compared as `vcpred cohort merge-clinical` matches keys (MRN_10231 is 10231) and never logged; and
the review pass's thumbnails (the ROI slice with its box, one PNG per patient with a saved ROI)."""

from __future__ import annotations

import csv
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_annotate import PAGE, annotating, open_patient, save, synthetic, true_rois  # noqa: F401 (fixture)
from vcpred.serve.annotate_review import BOX_COLOUR, THUMB_HEIGHT
from vcpred.serve.annotate_session import identity_warning


def rewrite(manifest: Path, change) -> None:
    """The manifest with change(row) applied to every row (a dict of its cells)."""
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    for row in rows:
        change(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    manifest.write_text(out.getvalue())


@pytest.fixture
def annotated(synthetic, tmp_path) -> Path:
    """A copy of the synthetic cohort with its true ROIs (every patient annotated); its manifest."""
    folder = tmp_path / "annotated"
    shutil.copytree(synthetic, folder)
    return folder / "manifest.csv"


def renamed(manifest: Path, names: dict[str, str]) -> None:
    rewrite(manifest, lambda row: row.update(patient_id=names.get(row["patient_id"], row["patient_id"])))


def test_each_patient_has_its_level_and_label_from_the_manifest(annotated, tmp_path):
    rewrite(annotated, lambda row: row.update(level="" if row["patient_id"] == "dev0002" else row["level"]))
    with open(annotated, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with annotating(annotated, tmp_path) as client:
        patients = client.get("/api/annotate").json()["patients"]
    assert [p["level"] for p in patients] == [rows[0]["level"], "", rows[2]["level"]]
    assert rows[0]["level"].startswith(("T", "L"))  # the synthetic cohort records it
    assert [p["label"] for p in patients] == [row["label"] for row in rows]


def test_a_dicom_patient_id_other_than_the_manifests_is_a_warning_in_the_answer(annotated, tmp_path):
    renamed(annotated, {"dev0001": "P007"})
    with annotating(annotated, tmp_path) as client:
        assert client.get("/api/annotate").json()["patients"][0]["identity_warning"] == ""  # not read yet
        warning = open_patient(client, 0)["patient"]["identity_warning"]
        assert warning == ("DICOM PatientID dev0001 differs from the manifest's patient id P007: check this is the "
                           "right patient's series")
        assert client.get("/api/annotate").json()["patients"][0]["identity_warning"] == warning
        assert open_patient(client, 1)["patient"]["identity_warning"] == ""  # dev0002 is dev0002


@pytest.mark.parametrize("written", ["dev0001", "DEV0001 ", "MRN_0001", "1"])
def test_an_equivalent_form_of_the_id_is_no_warning(annotated, tmp_path, written):
    """The DICOM PatientID is dev0001: the same as merge-clinical's keys (case, spaces, the digits)."""
    renamed(annotated, {"dev0001": written})
    with annotating(annotated, tmp_path) as client:
        assert open_patient(client, 0)["patient"]["identity_warning"] == ""


@pytest.mark.parametrize("identity, says", [
    ({"patient_id": "MRN_10231", "patient_name": "DOE JOHN"}, ""),
    ({"patient_id": "0010231"}, ""),
    ({"patient_id": "10232", "patient_name": "10231"}, "DICOM PatientID 10232 differs"),  # the id decides
    ({"patient_name": "DOE JOHN"}, "DICOM PatientName DOE JOHN differs from the manifest's patient id 10231"),
    ({"patient_name": "ANON 10231"}, ""),
    ({}, ""),  # NIfTI, or no identity in the header: nothing to compare (the viewer says so)
])
def test_the_identity_check_compares_as_merge_clinical_matches_keys(identity, says):
    warning = identity_warning("10231", identity)
    assert warning.startswith(says) and bool(warning) == bool(says)


def test_a_patient_name_in_a_warning_is_never_logged(annotated, tmp_path, caplog, capsys):
    """Without a PatientID the name is compared: shown on the page, never in the logs or the console."""
    import pydicom

    for path in (annotated.parent / "images" / "dev0001" / "t2").iterdir():
        dataset = pydicom.dcmread(path)
        del dataset.PatientID
        dataset.save_as(path)
    renamed(annotated, {"dev0001": "P007"})
    caplog.set_level(logging.DEBUG)
    with annotating(annotated, tmp_path) as client:
        warning = open_patient(client, 0)["patient"]["identity_warning"]
    assert warning.startswith("DICOM PatientName SYNTHETIC dev0001 differs from the manifest's patient id P007")
    out = capsys.readouterr()
    assert "SYNTHETIC" not in caplog.text + out.out + out.err


def green_box(png: bytes, width: int) -> tuple[int, int, int, int]:
    """[row_min, col_min, row_max, col_max] (inclusive) of the box colour in the first `width` columns."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[:, :width]
    rows, cols = np.nonzero(np.all(pixels == BOX_COLOUR, axis=-1))
    return rows.min(), cols.min(), rows.max(), cols.max()


def expected_box(manifest: Path, roi: list[int]) -> tuple[int, tuple[float, ...]]:
    """The whole slice's width in the thumbnail and the box scaled to it, from the image as read."""
    from vcpred.imaging import read_volume

    volume = read_volume(manifest.parent / "images" / "dev0001" / "t2")
    _, rows, cols = volume.shape
    sy = THUMB_HEIGHT / rows
    width = round(cols * sy * volume.spacing[2] / volume.spacing[1])
    sx = width / cols
    r0, c0, r1, c1 = roi[1:]
    return width, (r0 * sy, c0 * sx, r1 * sy - 1, c1 * sx - 1)


def test_a_thumbnail_shows_the_saved_box_on_its_slice_and_follows_a_new_save(annotated, tmp_path):
    roi = true_rois(annotated.read_text())[0]
    with annotating(annotated, tmp_path) as client:
        answer = client.get("/api/annotate/patients/0/thumbnail")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(answer.content)).height == THUMB_HEIGHT
        width, box = expected_box(annotated, roi)
        assert np.allclose(green_box(answer.content, width), box, atol=2), (green_box(answer.content, width), box)

        moved = [roi[0], roi[1] + 6, roi[2] - 4, roi[3] + 6, roi[4] - 4]
        open_patient(client, 0)
        assert save(client, 0, moved).status_code == 200
        again = client.get("/api/annotate/patients/0/thumbnail")
        assert again.status_code == 200
        _, box = expected_box(annotated, moved)
        assert np.allclose(green_box(again.content, width), box, atol=2)


def test_a_thumbnail_of_a_patient_without_roi_or_with_a_box_outside_its_image_says_why(annotated, tmp_path):
    rewrite(annotated, lambda row: row.update(
        roi_slice="" if row["patient_id"] == "dev0002" else row["roi_slice"],
        roi_row_max="900" if row["patient_id"] == "dev0003" else row["roi_row_max"]))
    with annotating(annotated, tmp_path) as client:
        none = client.get("/api/annotate/patients/1/thumbnail")
        assert none.status_code == 404 and "dev0002 has no saved ROI" in none.json()["error"]
        outside = client.get("/api/annotate/patients/2/thumbnail")
        assert outside.status_code == 422 and "outside" in outside.json()["error"]
        assert client.get("/api/annotate/patients/7/thumbnail").status_code == 404

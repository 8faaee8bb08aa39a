"""The QC sheet and crop warnings of `vcpred prepare` (issue 18)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from conftest import patient_row, write_manifest
from imaging_support import save_nifti, small_volume
from vcpred.cli import main
from vcpred.imaging.qc import FRAME_SIDE, ROI_COLOUR, SLICE_HEIGHT, qc_png_path
from vcpred.imaging.quality import crop_warnings

ROI = {"roi_slice": 4, "roi_row_min": 12, "roi_col_min": 14, "roi_row_max": 28, "roi_col_max": 34}
TINY = {**ROI, "roi_row_max": 16, "roi_col_max": 18}  # 4 x 4 pixels: a 5-pixel crop enlarged to 32
OUTSIDE = {**ROI, "roi_row_min": 60, "roi_row_max": 70}


def cohort(tmp_path):
    folder = tmp_path / "cohort"
    rows = []
    for i, roi in enumerate((ROI, TINY, OUTSIDE)):
        save_nifti(small_volume(seed=i), folder / f"images/P{i:03d}.nii.gz")
        rows.append(patient_row(i, image_t2=f"images/P{i:03d}.nii.gz", **roi))
    return write_manifest(folder, rows, make_images=False)


def prepare(manifest, store):
    return main(["prepare", str(manifest), "--out", str(store), "--size", "32", "--no-n4"])


def test_prepare_writes_a_qc_sheet_with_every_patient_and_its_warnings(tmp_path, capsys):
    store = tmp_path / "store"
    assert prepare(cohort(tmp_path), store) == 2  # P002's box is outside its image
    captured = capsys.readouterr()
    assert f"QC sheet: {store / 'qc.html'}" in captured.out
    assert "patient 'P001': crop of 5 x 5 pixels upscaled 6.4x to 32 px" in captured.err
    page = (store / "qc.html").read_text()
    assert page.index("<h2>P000</h2>") < page.index("<h2>P001</h2>") < page.index("<h2>P002</h2>")
    assert "3 patient(s): 1 with warnings, 1 not prepared" in page
    assert '<section class="warned"><h2>P001</h2><ul><li>crop of 5 x 5 pixels upscaled 6.4x' in page
    assert '<section class="failed"><h2>P002</h2><p class="error">patient &#x27;P002&#x27;: ROI box' in page
    assert 'src="qc/P000.png"' in page and not qc_png_path(store, "P002").exists()
    index = json.loads((store / "index.json").read_text())
    assert index["patients"]["P001"]["warnings"][0].startswith("crop of 5 x 5 pixels upscaled 6.4x")
    assert index["patients"]["P000"]["warnings"] == []


def test_the_qc_image_outlines_the_roi_on_the_full_slice_beside_the_frames(tmp_path):
    store = tmp_path / "store"
    prepare(cohort(tmp_path), store)
    image = np.asarray(Image.open(qc_png_path(store, "P000")).convert("RGB"))
    scale = SLICE_HEIGHT / 40  # the 40 x 48 slice (1 mm pixels) drawn 256 high
    assert image.shape == (SLICE_HEIGHT, round(48 * scale) + 4 + 5 * (FRAME_SIDE + 4), 3)
    top, left = round(ROI["roi_row_min"] * scale), round(ROI["roi_col_min"] * scale)
    middle = round((ROI["roi_col_min"] + ROI["roi_col_max"]) / 2 * scale)
    assert tuple(image[top, middle]) == ROI_COLOUR and tuple(image[(top + 40), left]) == ROI_COLOUR
    assert tuple(image[top + 40, middle]) != ROI_COLOUR  # inside the box: the image


def test_a_rerun_keeps_the_sheet_and_draws_missing_images_again(tmp_path, capsys):
    manifest, store = cohort(tmp_path), tmp_path / "store"
    prepare(manifest, store)
    qc_png_path(store, "P000").unlink()
    (store / "qc.html").unlink()
    capsys.readouterr()
    prepare(manifest, store)
    assert "skipped 2 unchanged" in capsys.readouterr().out
    assert qc_png_path(store, "P000").is_file() and "<h2>P000</h2>" in (store / "qc.html").read_text()


def slice_with_body(body_value=300.0, noise=5.0, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(100, noise, (80, 80)).astype(np.float32)
    image[20:50, 20:50] = rng.normal(body_value, noise, (30, 30))
    return image


def warnings_for(image, box=(15, 15, 55, 55), roi=(20, 20, 50, 50), volume_max=None):
    crop = image[box[0]:box[2], box[1]:box[3]]
    valid = np.ones(crop.shape, dtype=bool)
    return crop_warnings(crop, valid, image, float(image.max() if volume_max is None else volume_max), box, roi, 64)


def test_crop_warnings_near_constant_clipped_and_dark_vertebra():
    image = slice_with_body()
    image[0:5, 0:5] = 5000  # something bright elsewhere on the slice
    assert warnings_for(image) == []
    flat = image.copy()
    flat[10:60, 10:60] = 300 + np.random.default_rng(1).normal(0, 0.5, (50, 50))
    assert any(w.startswith("near-constant crop: its intensity range is 1 % of the slice's") for w in warnings_for(flat))
    saturated = image.copy()
    saturated[25:35, 25:35] = 5000
    assert any(w.startswith("clipped crop: 6 % of its pixels are at the image's maximum") for w in warnings_for(saturated))
    csf = image.copy()
    csf[15:55, 40:55] = 3000  # bright CSF over a third of the crop, brighter than the body
    csf[20:50, 20:40] = np.random.default_rng(2).normal(150, 5, (30, 20))
    dark = warnings_for(csf, roi=(20, 20, 50, 40))
    assert any(w.startswith("dark vertebra: the ROI's median is at") for w in dark)

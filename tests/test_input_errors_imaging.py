"""Damaged or implausible images and ROIs: a clear per-patient error, never an ITK/numpy crash or
all-zero frames (issue 14). Real DICOM written with pydicom, as in test_imaging_io.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from imaging_support import record_for, save_nifti, small_volume, write_dicom_series
from vcpred import console
from vcpred.cli import main
from vcpred.cohort import Roi
from vcpred.errors import ConfigError, ImageReadError, OrientationError, RoiError
from vcpred.imaging import PrepareParams, prepare_patient, read_volume
from vcpred.imaging.preprocess import CropROI, SelectFrames

BLOCK = Roi(4, 10, 12, 30, 36)  # the bright block of small_volume()
FAST = PrepareParams(size=32)


def _edit(folder: Path, change, *, only: int | None = None) -> Path:
    """Apply change(dataset) to every file of the series (or to the file at position `only`, by slice
    position along x) and save it. pydicom logs a warning for 'NaN' in a header: the log goes to this
    test's stderr (not to the closed stream of an earlier test's `main()`)."""
    console.configure()
    files = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True)
                                                         .ImagePositionPatient[0]))
    for index, path in enumerate(files):
        if only is None or index == only:
            ds = pydicom.dcmread(path)
            change(ds)
            ds.save_as(path)
    return folder


def _series(tmp_path: Path, name: str = "s", volume=None, **kwargs) -> Path:
    return write_dicom_series(tmp_path / name, volume if volume is not None else small_volume(), **kwargs)


@pytest.mark.parametrize("spacing", [[0, 0], ["NaN", "NaN"], [-1.0, 1.0]])
def test_zero_nan_or_negative_pixel_spacing_is_named(tmp_path, spacing):
    folder = _edit(_series(tmp_path), lambda ds: setattr(ds, "PixelSpacing", spacing))
    with pytest.raises(ImageReadError, match=r"PixelSpacing .* is not two positive numbers") as raised:
        read_volume(folder)
    assert "differs" not in str(raised.value)
    with pytest.raises(ImageReadError, match="^patient 'P001': .*PixelSpacing"):
        prepare_patient(record_for(folder, roi=BLOCK), FAST)  # was a SimpleITK RuntimeError for 0


@pytest.mark.parametrize("tag, value", [("RescaleSlope", "NaN"), ("RescaleIntercept", "inf"), ("RescaleSlope", 0)])
def test_nan_or_zero_rescale_is_named_with_its_file(tmp_path, tag, value):
    folder = _edit(_series(tmp_path), lambda ds: setattr(ds, tag, value), only=3)
    with pytest.raises(ImageReadError, match=f"{tag} .* in IM") as raised:
        read_volume(folder)
    assert "re-export" in str(raised.value)


def test_all_nan_nifti_is_refused(tmp_path):
    volume = small_volume()
    volume.array[:] = np.nan
    path = save_nifti(volume, tmp_path / "nan.nii.gz")
    with pytest.raises(ImageReadError, match=r"every voxel .* is NaN or infinite"):
        read_volume(path)
    volume.array[:] = small_volume().array
    volume.array[2, :5] = np.inf
    with pytest.raises(ImageReadError, match=r"240 of 17280 voxels are NaN or infinite"):
        read_volume(save_nifti(volume, tmp_path / "some.nii.gz"))


def test_all_zero_volume_is_refused_not_predicted(tmp_path):
    volume = small_volume()
    volume.array[:] = 0
    folder = _series(tmp_path, volume=volume)
    with pytest.raises(ImageReadError, match=r"^patient 'P001': .*the image is blank: every voxel is 0"):
        prepare_patient(record_for(folder, roi=BLOCK), FAST)


def test_a_constant_crop_is_refused(tmp_path):
    volume = small_volume()
    volume.array[:, :20, :20] = 0  # the ROI below lies in a black corner
    folder = _series(tmp_path, volume=volume)
    with pytest.raises(RoiError, match=r"the crop around the ROI on slice 4 is constant \(every pixel 0\)"):
        prepare_patient(record_for(folder, roi=Roi(4, 2, 2, 12, 12)), FAST)


@pytest.mark.parametrize("box", [(10, 12, 11, 13), (10, 12, 30, 14)])
def test_a_roi_of_a_few_pixels_is_refused(tmp_path, box):
    folder = _series(tmp_path)
    with pytest.raises(RoiError, match=r"^patient 'P001': the ROI box .* is smaller than 4 x 4 pixels"):
        prepare_patient(record_for(folder, roi=Roi(4, *box)), FAST)


def test_a_huge_roi_is_an_error_not_an_allocation(tmp_path):
    folder = _series(tmp_path)
    with pytest.raises(RoiError, match=r"^patient 'P001': the ROI box .* is larger than the 40 x 48 image"):
        prepare_patient(record_for(folder, roi=Roi(4, 0, 0, 10**12, 10**12)), FAST)
    # a crop that only reaches past the edge is still padded (the ROI fits in the image)
    _, _, _, record = CropROI(margin=0.0)(np.ones((1, 20, 30), np.float32), [0], Roi(0, 15, 25, 25, 35),
                                         (1.0, 1.0, 1.0))
    assert record["padded"] == {"bottom": 5, "right": 5}


@pytest.mark.parametrize("moved, onto", [(1, 2), (2, 1)])
def test_a_duplicated_slice_position_is_named_not_called_missing(tmp_path, moved, onto):
    """One slice written with its neighbour's position leaves a double gap on one side of the pair:
    the duplicate is the cause, whichever side the gap falls."""
    folder = _series(tmp_path)
    by_x = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True)
                                                        .ImagePositionPatient[0]))
    position = list(pydicom.dcmread(by_x[onto]).ImagePositionPatient)
    _edit(folder, lambda ds: setattr(ds, "ImagePositionPatient", position), only=moved)
    with pytest.raises(ImageReadError, match=f"{by_x[moved].name} and {by_x[onto].name} are at the same "
                                             "position|" f"{by_x[onto].name} and {by_x[moved].name} are at the "
                                             "same position") as raised:
        read_volume(folder)
    assert "missing" not in str(raised.value)


@pytest.mark.parametrize("iop, what", [([0, 0, 0, 0, 0, -1], "row direction"),
                                       ([0, 1, 0, 0, 0, 0], "column direction"),
                                       ([0, 1, 0, 0, "NaN", -1], "not six finite numbers"),
                                       ([0, 1, 0, 0, 1, 0], "not perpendicular")])
def test_a_degenerate_orientation_is_named_not_called_too_oblique(tmp_path, iop, what):
    folder = _edit(_series(tmp_path), lambda ds: setattr(ds, "ImageOrientationPatient", iop))
    with pytest.raises(ImageReadError, match=f"ImageOrientationPatient .*{what}") as raised:
        read_volume(folder)
    assert "oblique" not in str(raised.value) and not isinstance(raised.value, OrientationError)


def test_frames_has_a_sensible_maximum(tmp_path, capsys):
    with pytest.raises(ConfigError, match="between 0 and 10"):
        SelectFrames(k=1000)
    with pytest.raises(ConfigError):
        PrepareParams(k=11)
    assert PrepareParams(k=10).k == 10
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label\n")
    assert main(["prepare", str(manifest), "--out", str(tmp_path / "store"), "--frames", "1000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --frames 1000") and err.count("\n") == 1 and "21 frames" in err
    assert not (tmp_path / "store").exists()


def test_prepare_reports_each_bad_patient_and_prepares_the_others(tmp_path, capsys):
    """Every crash above, one patient each, in one prepare run: each fails with its own reason and the
    good patient is prepared."""
    cohort = tmp_path / "cohort"
    for name in ("good", "huge", "tiny"):  # each patient its own files: one image under two ids is a problem
        _series(cohort, name)
    _edit(_series(cohort, "zero_spacing"), lambda ds: setattr(ds, "PixelSpacing", [0, 0]))
    _edit(_series(cohort, "nan_slope"), lambda ds: setattr(ds, "RescaleSlope", "NaN"))
    blank = small_volume()
    blank.array[:] = 0
    _series(cohort, "blank", volume=blank)
    nan = small_volume()
    nan.array[:] = np.nan
    save_nifti(nan, cohort / "nan.nii.gz")
    rows = [("good", "good", BLOCK), ("zero_spacing", "zero_spacing", BLOCK), ("nan_slope", "nan_slope", BLOCK),
            ("blank", "blank", BLOCK), ("nan", "nan.nii.gz", BLOCK), ("huge", "huge", Roi(4, 0, 0, 10**12, 10**12)),
            ("tiny", "tiny", Roi(4, 10, 12, 11, 13))]
    lines = ["patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label"]
    lines += [f"{pid},development,{image},{roi.slice},{roi.row_min},{roi.col_min},{roi.row_max},{roi.col_max},0"
              for pid, image, roi in rows]
    (cohort / "manifest.csv").write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    code = main(["prepare", str(cohort / "manifest.csv"), "--out", str(store), "--size", "32"])
    err = capsys.readouterr().err
    assert code == 2 and (store / "index.json").is_file(), err
    index = json.loads((store / "index.json").read_text())["patients"]
    assert index["good"]["status"] == "ok"
    expected = {"zero_spacing": "PixelSpacing", "nan_slope": "RescaleSlope", "blank": "the image is blank",
                "nan": "NaN or infinite", "huge": "larger than the 40 x 48 image", "tiny": "smaller than 4 x 4"}
    for pid, words in expected.items():
        assert index[pid]["status"] == "failed" and words in index[pid]["error"], (pid, index[pid])
        assert "internal error" not in index[pid]["error"]
        assert f"  {pid}: patient '{pid}': " in err
    assert "Traceback" not in err and "internal error" not in err, err


def test_an_itk_failure_inside_n4_is_a_clear_per_patient_error(tmp_path, monkeypatch):
    """Whatever the reader's checks miss, ITK's RuntimeError from N4 names the step and the way out."""
    from vcpred.imaging import preprocess

    class Failing:
        def __getattr__(self, name):
            def fail(*args):
                raise RuntimeError("Exception thrown in SimpleITK N4BiasFieldCorrectionImageFilter_Execute: x.hxx:1:\n"
                                   "ITK ERROR: N4BiasFieldCorrectionImageFilter(0x1): Inputs do not occupy the same "
                                   "physical space!")
            return fail

    monkeypatch.setattr(preprocess.sitk, "N4BiasFieldCorrectionImageFilter", Failing)
    folder = _series(tmp_path)
    with pytest.raises(ImageReadError, match=r"^patient 'P001': N4 bias-field correction failed on this image "
                                             r"\(ITK ERROR: .*same physical space!\); .*--no-n4"):
        prepare_patient(record_for(folder, roi=BLOCK), FAST)


def test_a_one_slice_series_with_zero_thickness_is_named(tmp_path):
    folder = _series(tmp_path, volume=small_volume(shape=(1, 40, 48)))
    assert read_volume(folder).spacing[0] == 3.0  # SliceThickness
    _edit(folder, lambda ds: setattr(ds, "SliceThickness", 0))
    with pytest.raises(ImageReadError, match="SliceThickness 0.0 is not a positive number"):
        read_volume(folder)

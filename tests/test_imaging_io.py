"""Reading series into the canonical sagittal display, and the errors for inputs vcpred refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging_support import (
    BODY,
    T2_LUMBAR,
    canonical_t2,
    record_for,
    rewrite_nifti,
    small_volume,
    write_dicom_series,
)
from vcpred.errors import ImageReadError, OrientationError
from vcpred.imaging import CANONICAL_CODES, PrepareParams, prepare_patient, read_volume

RAW = PrepareParams(n4=False, size=64)  # orientation tests compare crops exactly: no N4


@pytest.fixture(scope="module")
def t2():
    return canonical_t2()


@pytest.fixture(scope="module")
def reference_frames():
    return prepare_patient(record_for(T2_LUMBAR), RAW).frames


def test_canonical_axes_point_left_inferior_posterior(t2):
    # nibabel's codes of the canonical array (RAS affine rebuilt from the LPS direction).
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ t2.direction * np.asarray(t2.spacing)
    assert nib.aff2axcodes(affine) == CANONICAL_CODES == ("L", "I", "P")
    assert t2.shape == (38, 201, 257) and t2.spacing == (1.0, 1.0, 1.0)
    assert t2.provenance["orientation_found"] == ["R", "A", "S"]
    assert t2.provenance["permutation"] == [0, 2, 1] and t2.provenance["flipped"] == [0, 1, 2]
    # Anatomy: a bright CSF band (spinal canal) lies just posterior to the body (higher columns),
    # the darker prevertebral tissue just anterior.
    columns = t2.array[BODY.slice, BODY.row_min + 2:BODY.row_max - 2].mean(axis=0)
    body = columns[BODY.col_min:BODY.col_max].mean()
    assert columns[BODY.col_max - 2:BODY.col_max + 10].max() > 1.3 * body
    assert columns[BODY.col_min - 14:BODY.col_min - 2].max() < body


def test_box_is_a_vertebral_body_between_two_discs(t2):
    """The chosen box lies between two bright discs, each just outside the box."""
    profile = t2.array[BODY.slice - 1:BODY.slice + 2, :, 148:162].mean(axis=(0, 2))
    inside = profile[BODY.row_min:BODY.row_max]
    above = profile[BODY.row_min - 10:BODY.row_min]
    below = profile[BODY.row_max:BODY.row_max + 10]
    assert above.max() > 1.15 * inside.max() and below.max() > 1.05 * inside.max()
    # Dark endplates separate each disc from the body.
    assert above.min() < 0.6 * np.median(inside) and below.min() < 0.6 * np.median(inside)


@pytest.mark.parametrize("perm, flips", [((0, 1, 2), (1,)), ((2, 0, 1), ()), ((1, 2, 0), (0, 2))])
def test_same_crop_from_flipped_or_permuted_nifti(tmp_path, reference_frames, perm, flips):
    path = rewrite_nifti(T2_LUMBAR, tmp_path / "t2.nii.gz", perm=perm, flips=flips)
    volume = read_volume(path)
    assert volume.provenance["orientation_found"] != ["R", "A", "S"] or flips
    frames = prepare_patient(record_for(path), RAW).frames
    np.testing.assert_array_equal(frames, reference_frames)


@pytest.mark.parametrize("perm, flips, rotate", [
    ((0, 1, 2), (0,), 0.0),     # IOP [0,1,0,0,0,-1], slices stored right -> left
    ((0, 2, 1), (1, 2), 0.0),   # in-plane transposed and both in-plane axes reversed
    ((0, 1, 2), (0,), 4.0),     # oblique sagittal, 4 degrees about left-right
])
def test_same_crop_from_dicom_series(tmp_path, t2, reference_frames, perm, flips, rotate):
    folder = write_dicom_series(tmp_path / "series", t2, perm=perm, flips=flips, rotate_deg=rotate)
    volume = read_volume(folder)
    np.testing.assert_allclose(volume.array, t2.array, atol=1e-3)  # rescale slope/intercept applied
    np.testing.assert_allclose(volume.spacing, t2.spacing)
    assert volume.provenance["obliquity_deg"] == pytest.approx(rotate, abs=1e-3)
    assert volume.provenance["format"] == "dicom" and volume.provenance["files"] == 38
    frames = prepare_patient(record_for(folder), RAW).frames
    np.testing.assert_allclose(frames, reference_frames, atol=1e-4)


def test_typical_sagittal_orientation_is_recorded(tmp_path):
    folder = write_dicom_series(tmp_path / "s", small_volume(), flips=(0,))
    prov = read_volume(folder).provenance
    assert prov["orientation_found"] == ["R", "I", "P"] and prov["flipped"] == [0]
    assert prov["manufacturer"] == "vcpred-test" and prov["series_description"] == "T2 SAG"


@pytest.mark.parametrize("perm, plane", [((1, 0, 2), "axial"), ((2, 1, 0), "coronal")])
def test_axial_or_coronal_dicom_is_refused(tmp_path, perm, plane):
    folder = write_dicom_series(tmp_path / plane, small_volume(), perm=perm)
    with pytest.raises(OrientationError, match=f"{plane} series") as refused:
        read_volume(folder)
    assert refused.value.plane == plane


@pytest.mark.parametrize("perm, plane", [((1, 0, 2), "axial"), ((2, 1, 0), "coronal")])
def test_axial_or_coronal_nifti_is_refused(tmp_path, perm, plane):
    volume = small_volume(shape=(40, 9, 48), spacing=(1.0, 3.0, 1.0)) if plane == "axial" else \
        small_volume(shape=(40, 48, 9), spacing=(1.0, 1.0, 3.0))
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ volume.direction * np.asarray(volume.spacing)
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(volume.array, affine), str(path))
    with pytest.raises(OrientationError, match=f"{plane} series") as refused:
        read_volume(path)
    assert refused.value.plane == plane


def test_corrupt_and_non_dicom_files_are_named(tmp_path):
    folder = write_dicom_series(tmp_path / "s", small_volume())
    victim = sorted(folder.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:400])  # truncated mid-header
    with pytest.raises(ImageReadError, match=victim.name):
        read_volume(folder)
    victim.write_text("not an image\n")  # a text file in the place of a slice: ignored, the gap names it
    with pytest.raises(ImageReadError, match=f"slice\\(s\\) probably missing \\(ignored as not DICOM: {victim.name}\\)"):
        read_volume(folder)


def test_truncated_pixel_data_is_named(tmp_path):
    folder = write_dicom_series(tmp_path / "s", small_volume())
    victim = sorted(folder.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(ImageReadError, match=victim.name):
        read_volume(folder)


def test_missing_slice_is_reported_with_the_gap(tmp_path):
    folder = write_dicom_series(tmp_path / "s", small_volume())
    by_position = sorted(folder.iterdir(), key=lambda p: read_volume_position(p))
    by_position[4].unlink()
    with pytest.raises(ImageReadError, match=r"uneven slice spacing: 6\.00 mm .* 3\.00 mm elsewhere; 1 slice"):
        read_volume(folder)


def read_volume_position(path: Path) -> float:
    import pydicom

    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[0])


def test_mixed_series_listed_and_selectable(tmp_path):
    folder = tmp_path / "study"
    write_dicom_series(folder / "a", small_volume(), series_uid="1.2.3.1", description="T2 SAG")
    write_dicom_series(folder / "b", small_volume(seed=1), series_uid="1.2.3.2", description="T1 SAG")
    with pytest.raises(ImageReadError, match=r"mixes 2 series: .*1\.2\.3\.1 \(no study date, no series number, "
                                             r"'T2 SAG', sagittal, 9 slices\)"):
        read_volume(folder)
    assert read_volume(folder, series="t1 sag").provenance["series_uid"] == "1.2.3.2"
    assert read_volume(folder, series="1.2.3.1").provenance["series_description"] == "T2 SAG"
    with pytest.raises(ImageReadError, match="no series matches 'STIR'; the series here: "):
        read_volume(folder, series="STIR")


def test_sorting_ignores_file_names(tmp_path):
    volume = small_volume()
    folder = write_dicom_series(tmp_path / "s", volume, seed=3)
    for i, path in enumerate(sorted(folder.iterdir(), key=read_volume_position, reverse=True)):
        shutil.move(path, folder / f"slice{i:03d}.dcm")  # names now count right -> left backwards
    np.testing.assert_allclose(read_volume(folder).array, volume.array, atol=0.5)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(ImageReadError, match="x.png: neither a DICOM series folder, a zip of one, a DICOM file nor a NIfTI"):
        read_volume(tmp_path / "x.png")


def test_two_slices_at_one_position_are_refused(tmp_path):
    volume = small_volume()
    write_dicom_series(tmp_path / "s", volume, series_uid="1.2.9", seed=1)
    write_dicom_series(tmp_path / "s", volume, series_uid="1.2.9", seed=2)  # a second echo, same places
    with pytest.raises(ImageReadError, match="at the same position"):
        read_volume(tmp_path / "s")


def test_canonical_geometry_keeps_world_positions(t2):
    """Voxel [s, r, c] of the canonical volume sits where nibabel's affine puts the stored voxel."""
    image = nib.load(str(T2_LUMBAR))
    shape = image.shape
    sitk_image = t2.to_sitk()
    for s, r, c in [(0, 0, 0), (5, 17, 200), (37, 200, 256)]:
        # canonical (slice +L, row -S, col +P) <- stored RAS (i: +R, j: +A, k: +S) = flip all, swap j/k
        stored = (shape[0] - 1 - s, shape[1] - 1 - c, shape[2] - 1 - r)
        ras = image.affine @ np.array([*stored, 1.0])
        lps = np.array([-ras[0], -ras[1], ras[2]])
        np.testing.assert_allclose(sitk_image.TransformIndexToPhysicalPoint((c, r, s)), lps, atol=1e-4)
        assert t2.array[s, r, c] == np.asarray(image.dataobj)[stored]


def test_jpeg_lossless_series_decoded_through_simpleitk(tmp_path):
    from imaging_support import jpeg_lossless

    volume = small_volume()
    folder = write_dicom_series(tmp_path / "s", volume)
    jpeg_lossless(folder)
    read = read_volume(folder)
    np.testing.assert_allclose(read.array, volume.array, atol=0.5)  # rescale applied exactly once
    assert read.provenance["decoder"] == ["SimpleITK"] and read.provenance["rescale"] == [[0.5, -100.0]]

"""Hospital DICOM (issue 18): each variant prepares to the same frames as the NIfTI of the same
volume (the real lumbar T2, tests/data/mri) to 1e-4."""

from __future__ import annotations

import zipfile

import numpy as np
import pydicom
import pytest

from dicom_variants import (
    STRAY_FILES,
    classic_series,
    with_stray_files,
    without_preamble,
    write_enhanced,
    zipped,
)
from imaging_support import T2_LUMBAR, canonical_t2, record_for
from vcpred.errors import ImageReadError
from vcpred.imaging import PrepareParams, prepare_patient, read_volume
from vcpred.imaging.formats import image_kind, is_dicom_file

RAW = PrepareParams(n4=False, size=64)


@pytest.fixture(scope="module")
def t2():
    return canonical_t2()


@pytest.fixture(scope="module")
def reference():
    return prepare_patient(record_for(T2_LUMBAR), RAW).frames


def same_frames(path, reference, params=RAW):
    frames = prepare_patient(record_for(path), params).frames
    np.testing.assert_allclose(frames, reference, atol=1e-4)


def test_stray_files_are_ignored_with_a_note(tmp_path, t2, reference, capsys):
    folder = with_stray_files(classic_series(tmp_path / "series", t2))
    volume = read_volume(folder)
    assert sorted(volume.provenance["ignored_files"]) == sorted(STRAY_FILES)  # hidden files and DICOMDIR unnoted
    assert volume.provenance["files"] == 38
    out = capsys.readouterr().out
    assert "ignored 4 file(s) that are not DICOM" in out and "README.txt" in out
    same_frames(folder, reference)


def test_files_without_preamble_are_read(tmp_path, t2, reference):
    folder = without_preamble(classic_series(tmp_path / "series", t2))
    files = sorted(folder.iterdir())
    assert files[0].read_bytes()[:4] == b"DICM"  # cut preamble
    assert files[1].read_bytes()[128:132] != b"DICM" and files[1].read_bytes()[:2] == b"\x08\x00"  # raw dataset
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(files[1])  # what vcpred used to refuse with "no DICM marker"
    assert all(is_dicom_file(f) for f in files)
    volume = read_volume(folder)
    np.testing.assert_allclose(volume.array, t2.array, atol=1e-3)
    same_frames(folder, reference)


def test_enhanced_multiframe_file_is_read_from_its_functional_groups(tmp_path, t2, reference):
    path = write_enhanced(tmp_path / "enhanced" / "IM0001", t2)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert "ImagePositionPatient" not in header and header.NumberOfFrames == 38
    volume = read_volume(path.parent)
    np.testing.assert_allclose(volume.array, t2.array, atol=1e-3)
    assert volume.provenance["multiframe"] and volume.provenance["files"] == 1
    assert volume.provenance["rescale"] == [[0.5, -100.0]]
    # canonical slice s is the frame numbered instance_numbers[s] (frames were stored shuffled)
    numbers = volume.provenance["instance_numbers"]
    assert sorted(numbers) == list(range(1, 39)) and numbers != sorted(numbers)
    same_frames(path.parent, reference)
    same_frames(path, reference)  # the file itself as image_t2


def test_enhanced_multiframe_prepares_like_nifti_with_n4(tmp_path, t2):
    params = PrepareParams(size=64)
    reference = prepare_patient(record_for(T2_LUMBAR), params).frames
    same_frames(write_enhanced(tmp_path / "IM0001", t2), reference, params)


def test_multiframe_frame_without_position_is_named(tmp_path, t2):
    path = write_enhanced(tmp_path / "s" / "IM0001", t2)
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence[4].PlanePositionSequence
    ds.save_as(path)
    with pytest.raises(ImageReadError, match=r"IM0001 frame 5: DICOM slice without ImagePositionPatient"):
        read_volume(path.parent)


def test_zipped_series_with_stray_files_prepares_like_nifti(tmp_path, t2, reference):
    folder = with_stray_files(without_preamble(classic_series(tmp_path / "series", t2)))
    archive = zipped(folder, tmp_path / "t2.zip")
    assert image_kind(archive) == "zip"
    volume = read_volume(archive)
    assert volume.provenance["source"] == str(archive) and volume.provenance["files"] == 38
    assert sorted(volume.provenance["ignored_files"]) == sorted(f"series/{name}" for name in STRAY_FILES)
    same_frames(archive, reference)


def test_zipped_enhanced_file(tmp_path, t2, reference):
    archive = zipped(write_enhanced(tmp_path / "s" / "IM0001", t2).parent, tmp_path / "t2.zip")
    same_frames(archive, reference)


def test_unsafe_or_empty_zip_is_an_image_error(tmp_path):
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../evil.dcm", b"x")
    with pytest.raises(ImageReadError, match="slip.zip: the zip holds an unsafe path"):
        read_volume(slip)
    assert not (tmp_path.parent / "evil.dcm").exists()
    empty = tmp_path / "text.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("README.txt", b"hello")
    with pytest.raises(ImageReadError, match="text.zip: the zip holds no DICOM file"):
        read_volume(empty)


def test_errors_inside_a_zip_name_the_zip_not_a_temporary_folder(tmp_path, t2):
    folder = classic_series(tmp_path / "series", t2)
    sorted(folder.iterdir())[5].unlink()
    with pytest.raises(ImageReadError, match=r"t2.zip \(unzipped\).*probably missing") as missing:
        read_volume(zipped(folder, tmp_path / "t2.zip"))
    assert "vcpred-zip-" not in str(missing.value)


def test_series_chosen_in_a_folder_of_classic_and_enhanced_series(tmp_path, t2):
    folder = classic_series(tmp_path / "study" / "classic", t2)
    write_enhanced(tmp_path / "study" / "enhanced" / "IM0001", t2, description="T2 enhanced")
    with pytest.raises(ImageReadError, match="mixes 2 series"):
        read_volume(folder.parent)
    assert read_volume(folder.parent, series="t2 enhanced").provenance["multiframe"]
    assert not read_volume(folder.parent, series="T2 SAG").provenance["multiframe"]


def test_canonical_indices_convert_to_nifti_voxels_and_instance_numbers(tmp_path, t2):
    import nibabel as nib

    from vcpred.imaging.orient import stored_index

    stored = np.asarray(nib.load(str(T2_LUMBAR)).dataobj, dtype=np.float32)
    for index in [(0, 0, 0), (19, 103, 140), (37, 200, 256), (5, 150, 20)]:
        assert stored_index(index, t2.provenance) != index
        assert stored[stored_index(index, t2.provenance)] == t2.array[index]
    # DICOM: canonical slice s is the file numbered instance_numbers[s] (written with numbers shuffled)
    folder = classic_series(tmp_path / "series", t2)
    numbers = read_volume(folder).provenance["instance_numbers"]
    for s in (0, 19, 37):
        path = next(p for p in folder.iterdir() if pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber
                    == numbers[s])
        plane = pydicom.dcmread(path).pixel_array * 0.5 - 100.0
        np.testing.assert_allclose(plane, t2.array[s], atol=1e-3)  # typical sagittal: rows/columns as stored

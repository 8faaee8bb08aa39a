"""A .nii.gz is read only when gzip's own check holds (CRC-32 and length of the whole stream, issue 27):
nibabel reads just the bytes the header names and never reaches the end of the stream where gzip
checks them, so a flipped byte used to give other pixels without a word."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging_support import T2_LUMBAR, record_for
from vcpred.errors import ImageReadError
from vcpred.imaging import PrepareParams, prepare_patient, read_volume
from vcpred.imaging.io import GZIP_TRAILING_LIMIT


def _copy(tmp_path: Path, name: str = "t2.nii.gz") -> Path:
    return Path(shutil.copyfile(T2_LUMBAR, tmp_path / name))


def _flip(path: Path, at: float) -> Path:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _cut(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path


def _assert_refused(path: Path, *needles: str) -> str:
    with pytest.raises(ImageReadError) as raised:
        read_volume(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("at", [0.5, 0.9, 0.999])
def test_a_flipped_byte_in_a_nifti_gz_is_refused_naming_the_file(tmp_path, at):
    _assert_refused(_flip(_copy(tmp_path), at), "damaged or incomplete")


@pytest.mark.parametrize("cut", ["half", "trailer", "length field"])
def test_a_truncated_nifti_gz_is_refused(tmp_path, cut):
    path = _copy(tmp_path)
    size = path.stat().st_size
    # the trailer (CRC-32, then the length) is the last 8 bytes: without it every voxel is still there
    _cut(path, {"half": size // 2, "trailer": size - 8, "length field": size - 4}[cut])
    _assert_refused(path, "damaged or incomplete")


def test_a_wrong_length_in_the_gzip_trailer_is_refused(tmp_path):
    path = _copy(tmp_path)
    data = bytearray(path.read_bytes())
    (length,) = struct.unpack("<I", data[-4:])
    data[-4:] = struct.pack("<I", length + 1)  # CRC still right: only the length does not check
    path.write_bytes(bytes(data))
    _assert_refused(path, "damaged or incomplete")


def test_an_intact_nifti_gz_is_read_as_before(tmp_path):
    """The same volume as from its uncompressed copy, holding exactly nibabel's voxels (reoriented)."""
    volume = read_volume(T2_LUMBAR)
    plain = tmp_path / "t2.nii"
    plain.write_bytes(gzip.decompress(T2_LUMBAR.read_bytes()))
    uncompressed = read_volume(plain)
    assert np.array_equal(volume.array, uncompressed.array)
    assert volume.spacing == uncompressed.spacing
    assert np.array_equal(volume.origin, uncompressed.origin) and np.array_equal(volume.direction, uncompressed.direction)
    stored = np.asarray(nib.load(str(T2_LUMBAR)).dataobj, dtype=np.float32)
    assert np.array_equal(np.sort(volume.array, axis=None), np.sort(stored, axis=None))


def test_a_few_bytes_after_the_image_are_read_but_a_bomb_is_refused(tmp_path):
    """Data after the voxels must be decompressed to reach gzip's check; a little is read as before,
    more than GZIP_TRAILING_LIMIT (a gzip bomb behind a small header) is refused without expanding it all."""
    raw = gzip.decompress(T2_LUMBAR.read_bytes())
    padded = tmp_path / "padded.nii.gz"
    padded.write_bytes(gzip.compress(raw + bytes(16), mtime=0))
    assert np.array_equal(read_volume(padded).array, read_volume(T2_LUMBAR).array)
    bomb = tmp_path / "bomb.nii.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as handle:
        handle.write(raw)
        for _ in range(GZIP_TRAILING_LIMIT // 2**20 + 2):
            handle.write(bytes(2**20))
    _assert_refused(bomb, "after its image")


def test_prepare_names_the_patient_and_the_damaged_file(tmp_path):
    path = _flip(_copy(tmp_path), 0.5)
    with pytest.raises(ImageReadError, match=f"^patient 'P001': .*{path.name}.*damaged or incomplete"):
        prepare_patient(record_for(path), PrepareParams(size=32, n4=False))


def test_a_damaged_nifti_gz_upload_is_refused_by_the_viewer(tmp_path):
    """serve reads an uploaded NIfTI with the same reader (after judging its size from the header)."""
    from vcpred.serve.series import nifti_series
    from vcpred.serve.settings import ServeSettings

    path = _flip(_copy(tmp_path, "image.nii.gz"), 0.5)
    with pytest.raises(ImageReadError, match="damaged or incomplete"):
        nifti_series(path, ServeSettings(workdir=tmp_path / "work"))


def test_a_cut_uncompressed_nifti_is_refused_in_one_line(tmp_path):
    """Not gzip, nothing to check but the length: nibabel's own message (it holds a line break) in one line."""
    path = tmp_path / "t2.nii"
    raw = gzip.decompress(T2_LUMBAR.read_bytes())
    path.write_bytes(raw[: len(raw) // 2])
    _assert_refused(path, "cannot read NIfTI file", "damaged")

"""DICOM files that start directly with their file-meta group (0002), without the 128-byte preamble
and "DICM" (some exporters write them; pydicom reads them with force=True), are DICOM for every
reader of vcpred (issue 27); text, PNG and other files that merely start with the same bytes are not."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from imaging_support import small_volume, write_dicom_series
from vcpred.imaging import read_volume
from vcpred.imaging.formats import image_kind, is_dicom_file
from vcpred.serve.errors import UnsupportedUpload
from vcpred.serve.settings import ServeSettings
from vcpred.serve.uploads import sniff


def meta_first(folder: Path) -> Path:
    """Each file with its preamble and "DICM" cut off: the file-meta group (0002,0000) at byte 0."""
    for path in folder.iterdir():
        data = path.read_bytes()
        assert data[128:132] == b"DICM"
        path.write_bytes(data[132:])
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta_first")
    volume = small_volume(shape=(5, 24, 28))
    return write_dicom_series(root / "normal", volume), meta_first(write_dicom_series(root / "cut", volume))


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(6))) + chunk(b"IEND", b"")


def test_files_starting_with_the_file_meta_group_are_read_like_the_originals(folders):
    normal, cut = folders
    first = sorted(cut.iterdir())[0]
    assert first.read_bytes()[:4] == b"\x02\x00\x00\x00"  # (0002,0000) FileMetaInformationGroupLength
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(first)  # without force, pydicom refuses it too
    assert all(is_dicom_file(p) for p in cut.iterdir()) and image_kind(first) == "dicom-file"
    read, expected = read_volume(cut), read_volume(normal)
    np.testing.assert_array_equal(read.array, expected.array)
    assert read.spacing == expected.spacing


def test_the_viewer_names_a_single_such_file_as_dicom(folders, tmp_path):
    _, cut = folders
    with pytest.raises(UnsupportedUpload, match="single DICOM file"):
        sniff(sorted(cut.iterdir())[0], ServeSettings(workdir=tmp_path))


@pytest.mark.parametrize("name,data", [
    ("notes.txt", b"Patient notes: no fracture seen.\n" * 10),
    ("scan.png", png_bytes()),
    ("group2.bin", b"\x02\x00\x00\x00UL\x04\x00" + bytes(200)),  # starts like a file meta group, holds nothing
    ("meta_only.bin", None),  # a real file meta group and no dataset after it
])
def test_other_files_are_still_not_dicom(name, data, folders, tmp_path):
    if data is None:
        whole = sorted(folders[1].iterdir())[0].read_bytes()
        length = struct.unpack("<I", whole[8:12])[0]
        data = whole[:12 + length]  # (0002,0000) and the group it counts
    path = tmp_path / name
    path.write_bytes(data)
    assert not is_dicom_file(path)
    with pytest.raises(ValueError, match="neither a DICOM"):
        image_kind(path)

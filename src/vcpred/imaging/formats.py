"""What an image path holds, judged from its name and first bytes (no pixels read).

One judgement for `vcpred cohort check`, `prepare`, `predict` and the viewer's zip extraction, so
that a path one of them accepts is not refused by another.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

NIFTI_SUFFIXES = (".nii", ".nii.gz")
PREAMBLE = 128  # bytes before the "DICM" marker of a DICOM Part 10 file
# A dataset written without preamble and "DICM" starts with an element of group 0002 (its file meta,
# as some exporters write it) or, without file meta too (older exports, some PACS), of group 0008
# (identification: SpecificCharacterSet, ImageType, SOPClassUID...). pydicom reads both with force.
RAW_FIRST_GROUPS = (0x0002, 0x0008)
KINDS = ("dicom-folder", "dicom-file", "zip", "nifti")


def head(path: Path, size: int = PREAMBLE + 4) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def has_marker(start: bytes) -> str | None:
    """'part10' for a standard file, 'no-preamble' for "DICM" at byte 0, else None."""
    if start[PREAMBLE:PREAMBLE + 4] == b"DICM":
        return "part10"
    if start[:4] == b"DICM":
        return "no-preamble"
    return None


def looks_raw(start: bytes) -> bool:
    """The first element could open a dataset stored without preamble and file meta."""
    if len(start) < 8:
        return False
    group, element = struct.unpack("<HH", start[:4])
    return group in RAW_FIRST_GROUPS and element < 0x0100


def is_dicom_file(path: str | Path) -> bool:
    """A DICOM file: Part 10 (preamble + "DICM"), one whose preamble was cut off, or a dataset
    without "DICM" (starting with its file meta or with the dataset itself) that pydicom reads into
    one with a SOP class or an image matrix. Text, thumbnails and the like are not."""
    path = Path(path)
    try:
        start = head(path)
    except OSError:
        return False
    if has_marker(start):
        return True
    if not looks_raw(start):
        return False
    import pydicom

    try:
        with open(path, "rb") as handle:
            dataset = pydicom.dcmread(handle, force=True, stop_before_pixels=True)
    except Exception:  # a file that merely starts like a dataset
        return False
    return "SOPClassUID" in dataset or "Rows" in dataset


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def image_kind(path: str | Path) -> str:
    """One of KINDS; ValueError saying why not (to follow the path in a message) when vcpred cannot
    read it."""
    path = Path(path)
    if path.is_dir():
        return "dicom-folder"
    if not path.is_file():
        raise ValueError("does not exist")
    if is_nifti_name(path):
        return "nifti"
    if zipfile.is_zipfile(path):
        return "zip"
    if is_dicom_file(path):
        return "dicom-file"
    raise ValueError("neither a DICOM series folder, a zip of one, a DICOM file nor a NIfTI "
                     "file (.nii, .nii.gz); give the folder holding the DICOM slices, or convert the image to NIfTI")

"""Writers of the DICOM variants hospitals and PACS export (issue 18), from a canonical Volume: a
classic series with stray files beside it, files without the 128-byte preamble, one enhanced MR
multi-frame file, a zip. No tests here.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedMRImageStorage, ExplicitVRLittleEndian, generate_uid

from imaging_support import stored_geometry, write_dicom_series

STRAY_FILES = {"README.txt": b"exported by PACS\n", "Thumbs.db": bytes(range(256)) * 4,
               "index.xml": b"<?xml version='1.0'?><study/>", "notes.TXT": b"\x00\x01 binary junk"}
HIDDEN_FILES = {".DS_Store": b"\x00\x00\x00\x01Bud1", "DICOMDIR": b"not a real dicomdir"}


def with_stray_files(folder: Path) -> Path:
    """The series folder with a README, a Thumbs.db, an XML, a .TXT, a hidden file and a DICOMDIR."""
    for name, data in {**STRAY_FILES, **HIDDEN_FILES}.items():
        (folder / name).write_bytes(data)
    return folder


def without_preamble(folder: Path) -> Path:
    """Every other file loses its 128-byte preamble ("DICM" + file meta at byte 0); the others are
    rewritten as raw datasets (no preamble, no file meta, implicit VR), as older exports write."""
    for number, path in enumerate(sorted(folder.iterdir())):
        if number % 2 == 0:
            path.write_bytes(path.read_bytes()[128:])
            continue
        dataset = pydicom.dcmread(path)
        del dataset.file_meta
        dataset.preamble = None
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, implicit_vr=True, little_endian=True)
        path.write_bytes(buffer.getvalue())
    return folder


def zipped(folder: Path, archive: Path) -> Path:
    """folder's files (with their folder name, as a user zips a folder) in a deflated zip."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{folder.name}/{path.relative_to(folder)}")
    return archive


def _group(**tags) -> Sequence:
    item = Dataset()
    for keyword, value in tags.items():
        setattr(item, keyword, value)
    return Sequence([item])


def write_enhanced(path: Path, volume, *, flips=(0,), slope=0.5, intercept=-100.0, seed=0,
                   description="T2 SAG enhanced") -> Path:
    """`volume` as ONE Enhanced MR Image Storage file: orientation, pixel spacing and rescale in the
    shared functional groups, each frame's position in its per-frame group, frames in shuffled order
    (so reading must sort them by position). No top-level ImagePositionPatient."""
    array, direction, spacing, origin = stored_geometry(volume, (0, 1, 2), flips, 0.0)
    order = list(range(array.shape[0]))
    random.Random(seed).shuffle(order)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedMRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer, ds.PatientID = "MR", "vcpred-test", "TEST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesDescription = generate_uid(), generate_uid(), description
    ds.Rows, ds.Columns, ds.NumberOfFrames = array.shape[1], array.shape[2], len(order)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.PlaneOrientationSequence = _group(
        ImageOrientationPatient=[float(v) for v in (*direction[:, 2], *direction[:, 1])])
    shared.PixelMeasuresSequence = _group(PixelSpacing=[float(spacing[1]), float(spacing[2])],
                                          SliceThickness=float(spacing[0]))
    shared.PixelValueTransformationSequence = _group(RescaleSlope=slope, RescaleIntercept=intercept,
                                                     RescaleType="US")
    frames = []
    for k in order:
        frame = Dataset()
        frame.PlanePositionSequence = _group(
            ImagePositionPatient=[float(v) for v in origin + k * spacing[0] * direction[:, 0]])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    stored = np.round((array[order] - intercept) / slope).astype(np.uint16)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def classic_series(folder: Path, volume, seed=0) -> Path:
    return write_dicom_series(folder, volume, flips=(0,), seed=seed)

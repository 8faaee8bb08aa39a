"""Write a canonical volume [slice, row, col] as a DICOM MR series or a NIfTI file.

Canonical sagittal display: slice index increases from patient right to left (+L), rows run
superior -> inferior, columns anterior -> posterior. In DICOM (LPS) terms:
ImageOrientationPatient = [0, 1, 0, 0, 0, -1] (along a row: +P; down a column: -S), and slice k
lies at ImagePositionPatient = origin + k * spacing * (1, 0, 0). InstanceNumber k + 1 follows the
same order and names the file (0001.dcm, ...). NIfTI stores the same array with the RAS affine
that maps voxel (k, r, c) to x = -(L), y = -(P), z = S.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom import __version__ as pydicom_version
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage,
                         generate_uid)

IOP = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
SERIES_TEXT = {  # vendor-style series descriptions
    "SIEMENS": "{s}_tse_sag", "GE MEDICAL SYSTEMS": "Sag {S} FSE",
    "Philips Medical Systems": "{S}W_TSE SAG", "Canon Medical Systems": "SAG {S} FSE",
}
TIMING = {"t1": (550.0, 11.0, 3), "t2": (3500.0, 100.0, 17)}  # TR ms, TE ms, echo train length


@dataclass(frozen=True)
class SeriesInfo:
    """Everything in a series header that is not pixel data. Lengths in mm, field in tesla."""

    patient_id: str
    sex: str
    age: int
    sequence: str                     # "t1" | "t2"
    series_number: int
    manufacturer: str
    model: str
    field_t: float
    pixel_mm: float
    thickness_mm: float
    spacing_mm: float
    origin_lps: tuple[float, float, float]
    rescale: tuple[float, float]      # slope, intercept
    study_day: int                    # days after 2024-01-01
    uid_seed: str                     # makes the UIDs unique per cohort seed and patient


def uid(info: SeriesInfo, *parts: object) -> str:
    """A deterministic UID from the cohort seed, the patient and the given parts."""
    return generate_uid(entropy_srcs=[info.uid_seed, info.patient_id, *map(str, parts)])


def _base_dataset(info: SeriesInfo, shape: tuple[int, int, int]) -> Dataset:
    ds = Dataset()
    study = date(2024, 1, 1) + timedelta(days=info.study_day)
    ds.SOPClassUID = MRImageStorage
    ds.PatientName, ds.PatientID = f"SYNTHETIC^{info.patient_id}", info.patient_id
    ds.PatientBirthDate = f"{study.year - info.age}0101"
    ds.PatientSex, ds.PatientAge = info.sex, f"{info.age:03d}Y"
    ds.StudyInstanceUID, ds.StudyID = uid(info, "study"), "1"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "090000"
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.StudyDescription = "MRI THORACOLUMBAR SPINE (synthetic)"
    ds.Modality, ds.SeriesNumber = "MR", info.series_number
    ds.SeriesInstanceUID = uid(info, "series", info.sequence)
    ds.SeriesDescription = SERIES_TEXT[info.manufacturer].format(s=info.sequence, S=info.sequence.upper())
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = uid(info, "frame"), ""
    ds.Manufacturer, ds.ManufacturerModelName = info.manufacturer, info.model
    ds.MagneticFieldStrength = info.field_t
    ds.BodyPartExamined, ds.PatientPosition = "TSPINE", "HFS"
    tr, te, etl = TIMING[info.sequence]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "SK", ""
    ds.MRAcquisitionType, ds.RepetitionTime, ds.EchoTime = "2D", tr, te
    ds.EchoTrainLength, ds.ImagingFrequency = etl, round(42.577 * info.field_t, 4)
    ds.SliceThickness, ds.SpacingBetweenSlices = info.thickness_mm, info.spacing_mm
    ds.PixelSpacing = [info.pixel_mm, info.pixel_mm]
    ds.ImageOrientationPatient = IOP
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = shape[1], shape[2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = info.rescale[0], info.rescale[1], "US"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def slice_position(info: SeriesInfo, k: int) -> list[float]:
    """ImagePositionPatient of slice k (LPS, mm): the origin moved k slices towards patient left."""
    x, y, z = info.origin_lps
    return [round(x + k * info.spacing_mm, 4), round(y, 4), round(z, 4)]


PER_SLICE_TAGS = (0x00080018, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010)


def _encode(elements: list[DataElement]) -> bytes:
    """Explicit VR little endian bytes of some data elements (in the given order)."""
    ds = Dataset()
    for element in elements:
        ds.add(element)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


class SeriesEncoder:
    """Encodes the slices of one series fast: the elements shared by all slices are encoded once,
    in the tag ranges between the per-slice elements, and spliced around them.

    Produces exactly the bytes of `pydicom.dcmwrite(..., enforce_file_format=True)` (tested).
    """

    def __init__(self, base: Dataset):
        bounds = (-1, *PER_SLICE_TAGS, 0x100000000)
        elements = [e for e in base if int(e.tag) not in PER_SLICE_TAGS]
        self.segments = [_encode([e for e in elements if lo < int(e.tag) < hi])
                         for lo, hi in zip(bounds[:-1], bounds[1:])]
        self.meta = base.file_meta

    def encode(self, sop_uid: str, number: int, position: list[float], pixels: bytes) -> bytes:
        self.meta.MediaStorageSOPInstanceUID = sop_uid
        meta = DicomBytesIO()
        meta.is_little_endian, meta.is_implicit_VR = True, False
        write_file_meta_info(meta, self.meta, enforce_standard=True)
        own = [DataElement(0x00080018, "UI", sop_uid), DataElement(0x00200013, "IS", number),
               DataElement(0x00200032, "DS", position), DataElement(0x00201041, "DS", position[0]),
               DataElement(0x7FE00010, "OW", pixels)]
        parts = [b"\0" * 128, b"DICM", meta.getvalue(), self.segments[0]]
        for element, segment in zip(own, self.segments[1:]):
            parts += [_encode([element]), segment]
        return b"".join(parts)


def write_dicom_series(folder: Path, stored: np.ndarray, info: SeriesInfo) -> list[Path]:
    """One MR Image Storage file per slice of stored [slice, row, col] uint16 pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    base = _base_dataset(info, stored.shape)
    base.file_meta.MediaStorageSOPClassUID = MRImageStorage
    base.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    base.file_meta.ImplementationVersionName = f"PYDICOM {pydicom_version}"
    encoder = SeriesEncoder(base)
    paths = []
    for k in range(stored.shape[0]):
        data = encoder.encode(uid(info, "image", info.sequence, k), k + 1, slice_position(info, k),
                              np.ascontiguousarray(stored[k], dtype="<u2").tobytes())
        path = folder / f"{k + 1:04d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def slice_dataset(info: SeriesInfo, stored: np.ndarray, k: int) -> Dataset:
    """Slice k as a complete pydicom Dataset (reference for SeriesEncoder; used by tests)."""
    ds = _base_dataset(info, stored.shape)
    ds.SOPInstanceUID = uid(info, "image", info.sequence, k)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = slice_position(info, k)
    ds.SliceLocation = ds.ImagePositionPatient[0]
    ds.PixelData = np.ascontiguousarray(stored[k], dtype="<u2").tobytes()
    return ds


def nifti_affine(info: SeriesInfo) -> np.ndarray:
    """4x4 RAS affine of the canonical array: (k, r, c) -> (x, y, z) mm."""
    x, y, z = info.origin_lps
    p, s = info.pixel_mm, info.spacing_mm
    return np.array([[-s, 0.0, 0.0, -x],      # +k: towards patient left = -x (RAS)
                     [0.0, 0.0, -p, -y],      # +c: towards posterior = -y
                     [0.0, -p, 0.0, z],       # +r: towards inferior = -z
                     [0.0, 0.0, 0.0, 1.0]])


def write_nifti(path: Path, stored: np.ndarray, info: SeriesInfo) -> Path:
    """The canonical array as .nii.gz, holding modality values (stored x slope + intercept).

    gzip with mtime 0 so the same volume always gives the same bytes.
    """
    slope, intercept = info.rescale
    values = np.clip(np.rint(stored.astype(np.float32) * slope + intercept), -32768, 32767)
    affine = nifti_affine(info)
    image = nib.Nifti1Image(values.astype(np.int16), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = f"vcpred synth {info.sequence} {info.manufacturer}"[:79].encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1, mtime=0))
    return path

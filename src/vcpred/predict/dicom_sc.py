"""The heat-map overlay as a DICOM Secondary Capture image, for a PACS viewer.

RGB, 8 bits, uncompressed (Explicit VR Little Endian), always a new series (its own
SeriesInstanceUID and SeriesNumber, described as a vcpred research heat map). When the input was
DICOM, the patient and study identity (IDENTITY) are copied from the source series' own header, so
a PACS files the heat map with that patient's study; otherwise (NIfTI has no identity) PatientID and
PatientName are --patient-id in a new study, and the file and the console say so. The notice
travels in ImageComments and DerivationDescription, and BurnedInAnnotation is YES (the title says it
too). ImageComments also give the vertebral level when one was given, the probability, the risk worded as everywhere (vcpred.predict.risk) and
the slice the map lies on, named as the scanner numbers it (vcpred.imaging.naming).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np

from vcpred import __version__, console
from vcpred.imaging.naming import named_slice
from vcpred.predict.risk import risk_text

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
IDENTITY = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
            "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID")
SERIES_NUMBER = 999
SERIES_DESCRIPTION = "vcpred research heat map - not for diagnosis"
NO_IDENTITY = ("the input was not DICOM, so patient and study are unknown: PatientID/PatientName are the "
               "--patient-id and the study is new")


def png_to_rgb(png: bytes) -> np.ndarray:
    """[R, C, 3] uint8 from PNG bytes."""
    from matplotlib.image import imread

    image = imread(io.BytesIO(png), format="png")
    return (np.clip(image[..., :3], 0, 1) * 255).round().astype(np.uint8)


def source_identity(result: dict):
    """The header of the DICOM series the prediction read (the first sequence read from DICOM), or
    None when it read none (NIfTI) or the source is gone."""
    from vcpred.imaging.io import series_header

    sequences = (result.get("provenance") or {}).get("sequences") or {}
    for sequence in sequences.values():
        if sequence.get("format") == "dicom" and sequence.get("source"):
            header = series_header(sequence["source"], sequence.get("series_uid"))
            if header is not None:
                return header
    return None


def _identify(ds, result: dict) -> str | None:
    """Patient and study identity from the source (None), or --patient-id and a new study (the note)."""
    from pydicom.uid import generate_uid

    source = source_identity(result)
    if source is None:
        ds.PatientID = ds.PatientName = str(result["patient_id"])
        ds.StudyInstanceUID = generate_uid()
        for keyword in IDENTITY:
            if keyword not in ds:
                setattr(ds, keyword, "")
        return NO_IDENTITY
    for keyword in IDENTITY:
        ds[keyword] = source[keyword] if keyword in source else _empty(keyword)
    if not str(ds.StudyInstanceUID):
        ds.StudyInstanceUID = generate_uid()
    return None


def _empty(keyword: str):
    from pydicom.dataelem import DataElement
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(keyword)
    return DataElement(tag, dictionary_VR(tag), "")


def write_secondary_capture(path: str | Path, png: bytes, result: dict) -> Path:
    """Write the overlay PNG of one prediction (prediction.json `result`) as a DICOM SC file, in the
    source's patient and study when the input was DICOM (module docstring)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rgb = png_to_rgb(png)
    now = dt.datetime.now()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, meta.MediaStorageSOPInstanceUID
    note = _identify(ds, result)
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.ConversionType, ds.SeriesNumber, ds.InstanceNumber = "OT", "WSD", SERIES_NUMBER, 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.ContentDate, ds.ContentTime
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.SoftwareVersions = f"vcpred {__version__}"
    ds.BurnedInAnnotation = "YES"
    where = named_slice(result.get("provenance"), result["roi"]["slice"])
    level = f"Vertebral level {result['level']}. " if result.get("level") else ""
    ds.ImageComments = (f"{level}P(collapse) {result['probability']:.3f} (threshold {result['threshold']:.3f}): "
                        f"{risk_text(result)}; heat map on {where}. {result['notice']}"
                        + (f". {result['warning']}" if result.get("warning") else "")
                        + f". Model {result['model_id']}" + (f". Note: {note}" if note else ""))[:10240]
    ds.DerivationDescription = f"vcpred heat map; {result['notice']}"[:1024]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    if note:
        console.warn(f"{path.name}: {note}; check the patient before sending it to a PACS")
    return path

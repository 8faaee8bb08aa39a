"""The heat-map overlay as a DICOM Secondary Capture image, for a PACS viewer.

RGB, 8 bits, uncompressed (Explicit VR Little Endian). Joined to the input study when the input
was a DICOM series (its StudyInstanceUID); a new study otherwise. The notice travels in
ImageComments and DerivationDescription, and BurnedInAnnotation is YES (the title says it too).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np

from vcpred import __version__

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def png_to_rgb(png: bytes) -> np.ndarray:
    """[R, C, 3] uint8 from PNG bytes."""
    from matplotlib.image import imread

    image = imread(io.BytesIO(png), format="png")
    return (np.clip(image[..., :3], 0, 1) * 255).round().astype(np.uint8)


def _study_uid(result: dict) -> str | None:
    sequences = (result.get("provenance") or {}).get("sequences") or {}
    return next((s.get("study_uid") for s in sequences.values() if s.get("study_uid")), None)


def write_secondary_capture(path: str | Path, png: bytes, result: dict) -> Path:
    """Write the overlay PNG of one prediction (prediction.json `result`) as a DICOM SC file."""
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
    ds.StudyInstanceUID = _study_uid(result) or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = ds.PatientName = str(result["patient_id"])
    ds.Modality, ds.ConversionType, ds.SeriesNumber, ds.InstanceNumber = "OT", "WSD", 999, 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SeriesDescription = f"vcpred heat map ({result['model_id']})"[:64]
    ds.SoftwareVersions = f"vcpred {__version__}"
    ds.BurnedInAnnotation = "YES"
    ds.ImageComments = (f"P(collapse) {result['probability']:.3f}, {result['category']} at threshold "
                        f"{result['threshold']:.3f}. {result['notice']}"
                        + (f". {result['warning']}" if result.get("warning") else ""))[:10240]
    ds.DerivationDescription = f"vcpred heat map; {result['notice']}"[:1024]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path

"""Helpers for the imaging tests: the real lumbar T2, rewritten in other orientations and as DICOM.

No tests here; the test_imaging_*.py modules import these helpers.
"""

from __future__ import annotations

import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from conftest import DATA
from vcpred.cohort import PatientRecord, Roi
from vcpred.imaging import read_volume
from vcpred.imaging.orient import Volume

T2_LUMBAR = DATA / "mri" / "t2_lumbar.nii.gz"

# A lumbar vertebral body on the real T2 in canonical coordinates [slice, row, col] (see
# docs/imaging.md). Chosen on a rendering of slice 19 (the mid-sagittal slice of 38) and the
# row profile of slices 18-20, columns 148-161: bright disc nuclei peak at rows 98 and 132 with
# dark endplate lines at 95/101-102 and 127-128/135; the body between spans rows 103-126 and
# columns 140-170 (anterior cortex to posterior wall, spinal canal starts at about column 175).
BODY = Roi(slice=19, row_min=103, col_min=140, row_max=127, col_max=171)


def record_for(path: Path, roi: Roi = BODY, patient_id: str = "P001", **images: Path) -> PatientRecord:
    return PatientRecord(patient_id=patient_id, set="development", label=0,
                         images={"t2": Path(path), **images}, roi=roi)


def rewrite_nifti(source: Path, target: Path, *, perm: tuple[int, int, int] = (0, 1, 2),
                  flips: tuple[int, ...] = ()) -> Path:
    """Same image, same world, other storage: array axes permuted/flipped, affine adjusted."""
    image = nib.load(str(source))
    data, affine = np.asarray(image.dataobj), image.affine.copy()
    data = np.transpose(data, perm)
    affine[:3, :3] = affine[:3, :3][:, list(perm)]
    for axis in flips:
        affine[:3, 3] += affine[:3, axis] * (data.shape[axis] - 1)
        affine[:3, axis] *= -1
        data = np.flip(data, axis)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), str(target))
    return target


def rotation_x(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def stored_geometry(volume: Volume, perm: tuple[int, int, int], flips: tuple[int, ...], rotate_deg: float):
    """Stored array, LPS direction columns, spacing and origin for canonical axes `perm` (stored
    axis a holds canonical axis perm[a]), stored axes `flips` reversed, world rotated about x."""
    array = np.transpose(volume.array, perm)
    direction = volume.direction[:, list(perm)].copy()
    spacing = np.asarray(volume.spacing)[list(perm)]
    origin = volume.origin.astype(float).copy()
    for axis in flips:
        origin += direction[:, axis] * spacing[axis] * (array.shape[axis] - 1)
        direction[:, axis] *= -1
        array = np.flip(array, axis)
    rotation = rotation_x(rotate_deg)
    return array, rotation @ direction, spacing, rotation @ origin


def write_dicom_series(folder: Path, volume: Volume, *, perm=(0, 1, 2), flips=(), rotate_deg=0.0,
                       slope=0.5, intercept=-100.0, series_uid: str | None = None,
                       description="T2 SAG", seed=0, study_uid: str | None = None, study_date: str | None = None,
                       series_number: int | None = None) -> Path:
    """Write `volume` as single-frame MR DICOM files with random names in shuffled order.

    Stored pixel = (value - intercept) / slope as uint16, so reading must apply the rescale.
    Default perm/flips give the typical sagittal ImageOrientationPatient [0, 1, 0, 0, 0, -1].
    Each call is a new study unless study_uid is given; StudyDate and SeriesNumber only when given.
    """
    folder.mkdir(parents=True, exist_ok=True)
    array, direction, spacing, origin = stored_geometry(volume, perm, flips, rotate_deg)
    series_uid = series_uid or generate_uid()
    study_uid, rng = study_uid or generate_uid(), random.Random(seed)
    order = list(range(array.shape[0]))
    rng.shuffle(order)
    for number, k in enumerate(order):
        stored = np.round((array[k] - intercept) / slope).astype(np.uint16)
        ds = _slice_dataset(stored, series_uid, study_uid, description)
        ds.ImageOrientationPatient = [float(v) for v in (*direction[:, 2], *direction[:, 1])]
        ds.ImagePositionPatient = [float(v) for v in origin + k * spacing[0] * direction[:, 0]]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[2])]
        ds.SliceThickness = float(spacing[0])
        ds.InstanceNumber = number + 1  # deliberately not the anatomical order
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if study_date is not None:
            ds.StudyDate = study_date
        if series_number is not None:
            ds.SeriesNumber = series_number
        ds.save_as(folder / f"IM{rng.randrange(10**6):06d}_{number}", enforce_file_format=True)
    return folder


def _slice_dataset(pixels: np.ndarray, series_uid: str, study_uid: str, description: str) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer = "MR", "vcpred-test"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesDescription = study_uid, series_uid, description
    ds.PatientID = "TEST"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    return ds


def small_volume(shape=(9, 40, 48), spacing=(3.0, 1.0, 1.0), seed=0) -> Volume:
    """A small canonical volume (noise on a bright block) for fast geometry/error tests."""
    rng = np.random.default_rng(seed)
    array = rng.normal(100, 5, shape).astype(np.float32)
    array[:, 10:30, 12:36] += 200
    return Volume(array, spacing, np.array([-10.0, -50.0, 60.0]), np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]))


def canonical_t2() -> Volume:
    return read_volume(T2_LUMBAR)


def save_nifti(volume: Volume, path: Path) -> Path:
    """Write a canonical Volume as NIfTI (RAS affine) so that reading gives it back."""
    affine = np.eye(4)
    to_ras = np.diag([-1.0, -1.0, 1.0])
    affine[:3, :3] = to_ras @ volume.direction * np.asarray(volume.spacing)
    affine[:3, 3] = to_ras @ volume.origin
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume.array, affine), str(path))
    return path


def jpeg_lossless(folder: Path) -> None:
    """Re-encode every file's pixels as JPEG Lossless (which pydicom cannot decode without extra
    plugins), keeping all other tags; SimpleITK/GDCM does the encoding."""
    import SimpleITK as sitk

    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(path.with_suffix(".jpeg.dcm")))
        writer.SetUseCompression(True)
        writer.SetCompressor("JPEG")
        writer.Execute(sitk.GetImageFromArray(ds.pixel_array[None]))
        compressed = pydicom.dcmread(path.with_suffix(".jpeg.dcm"))
        path.with_suffix(".jpeg.dcm").unlink()
        ds.file_meta.TransferSyntaxUID = compressed.file_meta.TransferSyntaxUID
        ds.PixelData = compressed.PixelData
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.save_as(path, enforce_file_format=True)

"""Read a sagittal series (DICOM directory or NIfTI file) into the canonical display.

Rules (docs/imaging.md): DICOM slices are grouped by SeriesInstanceUID and sorted by
ImagePositionPatient projected on the slice normal, never by file name; size, orientation and
pixel spacing must agree and slices must be evenly spaced; RescaleSlope/Intercept are applied per
slice. NIfTI is read with nibabel (RAS affine). Whatever the stored orientation, the result is
permuted/flipped into the canonical sagittal display; a volume acquired in another plane is refused.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from vcpred.errors import ImageReadError, OrientationError
from vcpred.imaging import dicom
from vcpred.imaging.orient import Volume, check_sagittal, geometry_record, to_canonical

NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Voxel-size ratio above which the thickest axis is taken as the acquisition slice axis.
THICK_RATIO = 1.2


def read_volume(path: str | Path, *, series: str | None = None) -> Volume:
    """Read a DICOM series directory or a NIfTI file as a canonical sagittal Volume.

    series: SeriesInstanceUID or SeriesDescription choosing one series when a directory holds
    several. Returns float32 [S, R, C] with spacing (slice_mm, row_mm, col_mm) and provenance.
    Raises ImageReadError (unreadable, inconsistent) or OrientationError (not sagittal).
    """
    path = Path(path)
    if path.is_dir():
        return check_finite(dicom.read_dicom_series(path, series=series), path)
    if not path.exists():
        raise ImageReadError(f"image {path} does not exist; check the image_ column of the manifest")
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return check_finite(read_nifti(path), path)
    raise ImageReadError(f"{path}: not a DICOM series directory nor a NIfTI file (.nii, .nii.gz); "
                         "give the folder holding the DICOM slices, or convert the image to NIfTI")


def check_finite(volume: Volume, path: Path) -> Volume:
    """The volume, when every voxel is a finite number; else ImageReadError saying how many are not."""
    bad = int(np.count_nonzero(~np.isfinite(volume.array)))
    if bad == volume.array.size:
        raise ImageReadError(f"{path}: every voxel of the image is NaN or infinite; the file holds no image "
                             "(a failed conversion?); convert or export the series again")
    if bad:
        raise ImageReadError(f"{path}: {bad} of {volume.array.size} voxels are NaN or infinite; vcpred needs "
                             "finite intensities: convert the image again, or replace them (e.g. by 0) with "
                             "the tool that wrote it")
    return volume


def read_nifti(path: Path) -> Volume:
    """Read a NIfTI file; the affine (RAS) decides the orientation."""
    try:
        image = nib.load(str(path))
        array = np.asarray(image.dataobj, dtype=np.float32)  # applies scl_slope/scl_inter
    except Exception as exc:  # nibabel raises many types for damaged files
        raise ImageReadError(f"{path}: cannot read NIfTI file ({type(exc).__name__}: {exc}); "
                             "check the file is complete and not corrupt") from None
    while array.ndim > 3 and array.shape[-1] == 1:  # drop singleton time/channel axes only
        array = array[..., 0]
    if array.ndim != 3:
        raise ImageReadError(f"{path}: expected a 3-D volume, found shape {image.shape}; "
                             "give one sagittal 3-D series per file")
    affine = image.affine
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(affine)):
        raise OrientationError(f"{path}: the NIfTI affine is degenerate ({affine.tolist()}); "
                               "the orientation cannot be determined")
    to_lps = np.diag([-1.0, -1.0, 1.0])  # RAS -> LPS
    direction = to_lps @ (affine[:3, :3] / spacing)
    origin = to_lps @ affine[:3, 3]
    check_sagittal(direction[:, nifti_slice_axis(array.shape, spacing)], path)
    volume, record = to_canonical(array, spacing, origin, direction, source=str(path))
    volume.provenance = {"source": str(path), "format": "nifti", **record,
                         **geometry_record(volume), "manufacturer": None}
    return volume


def nifti_slice_axis(shape: tuple[int, ...], spacing: np.ndarray) -> int:
    """The stored axis that was the acquisition slice axis.

    NIfTI files rewritten by tools (e.g. reoriented to RAS) carry stale dim_info, so it is not
    trusted: the slice axis is the thickest one when clearly thicker than the others, otherwise the
    axis with the fewest voxels (a sagittal spine series has far fewer slices than rows or columns).
    """
    order = np.argsort(spacing)[::-1]
    if spacing[order[0]] > THICK_RATIO * spacing[order[1]]:
        return int(order[0])
    return int(np.argmin(shape))

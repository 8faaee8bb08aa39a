"""The voxel budget: a volume is judged from its header (NIfTI dims; DICOM Rows, Columns and
NumberOfFrames) and refused before any voxel is read or decompressed when it is larger than
`max_dimension` a side or `max_voxels` in all (docs/serve.md, "Limits")."""

from __future__ import annotations

import math
from pathlib import Path

from vcpred.serve.errors import TooLarge, UnsupportedUpload
from vcpred.serve.settings import ServeSettings


def shape_refusal(shape: tuple[int, ...], settings: ServeSettings, what: str) -> str | None:
    """Why a volume of this shape is refused (None: within the budget). what: e.g. 'the NIfTI image'."""
    shown = " x ".join(str(n) for n in shape)
    voxels = math.prod(shape)
    widest = max(shape, default=0)
    if widest > settings.max_dimension:
        return (f"{what} is {shown} voxels ({voxels} voxels): {widest} is more than the {settings.max_dimension} "
                "a side the viewer reads (sagittal spine MRI is at most about 1024); refused before reading it")
    if voxels > settings.max_voxels:
        return (f"{what} is {shown} = {voxels} voxels, more than the viewer's budget of {settings.max_voxels} "
                f"voxels (vcpred serve --max-megavoxels {settings.max_voxels / 2**20:g}); refused before reading it")
    return None


def check_shape(shape: tuple[int, ...], settings: ServeSettings, what: str) -> None:
    refusal = shape_refusal(shape, settings, what)
    if refusal:
        raise TooLarge(refusal)


def nifti_header_shape(path: Path) -> tuple[int, ...]:
    """The data shape in a NIfTI file's header (nibabel reads the header only, not the voxels)."""
    import nibabel as nib

    try:
        return tuple(int(n) for n in nib.load(str(path)).header.get_data_shape())
    except Exception as exc:  # nibabel raises many types for damaged headers
        raise UnsupportedUpload(f"the NIfTI header is damaged ({type(exc).__name__}: {exc}); export the image "
                                "again") from None


def check_nifti(path: Path, settings: ServeSettings) -> None:
    check_shape(nifti_header_shape(path), settings, "the NIfTI image")


def dicom_series_refusal(datasets: list, settings: ServeSettings) -> str | None:
    """The budget for one DICOM series from its headers (read without pixels): slices (frames of
    every file) x Rows x Columns."""
    rows = cols = frames = voxels = 0
    for dataset in datasets:
        try:
            r, c = int(dataset.get("Rows") or 0), int(dataset.get("Columns") or 0)
            f = int(dataset.get("NumberOfFrames") or 1)
        except (TypeError, ValueError):
            return "a header's Rows, Columns or NumberOfFrames is not a number; the series is damaged"
        if min(r, c, f) < 1:
            return f"a header says {f} frame(s) of {r} x {c} pixels; the series is damaged"
        rows, cols, frames, voxels = max(rows, r), max(cols, c), frames + f, voxels + r * c * f
    shown = f"{frames} slices of {rows} x {cols} pixels ({voxels} voxels)"
    widest = max(rows, cols, frames)
    if widest > settings.max_dimension:
        return (f"this series is {shown}: {widest} is more than the {settings.max_dimension} a side the viewer "
                "reads (sagittal spine MRI is at most about 1024); refused before reading its pixels")
    if voxels > settings.max_voxels:
        return (f"this series is {shown}, more than the viewer's budget of {settings.max_voxels} voxels (vcpred "
                f"serve --max-megavoxels {settings.max_voxels / 2**20:g}); refused before reading its pixels")
    return None

"""The voxel budget: a volume is judged from its header (NIfTI dims; DICOM Rows, Columns and
NumberOfFrames) and refused before any voxel is read or decompressed when it is larger than
`max_dimension` a side or `max_voxels` in all; an upload's DICOM files are refused when their
headers declare more than `max_frames` frames in all (docs/serve.md, "Limits")."""

from __future__ import annotations

import math
from pathlib import Path

from vcpred.errors import ImageReadError
from vcpred.serve.errors import TooLarge, UnsupportedUpload
from vcpred.serve.settings import ServeSettings


def budget_refusal(what: str, size: str, sides: tuple[int, ...], voxels: int, settings: ServeSettings, *,
                   from_header: bool = True) -> str | None:
    """The one decision and wording of the voxel budget, for NIfTI and DICOM alike: why a volume is
    refused (None: within the budget). what: the volume ('the NIfTI image', 'this series'); size:
    how its shape reads ('9 x 40 x 48', '9 slices of 40 x 48 pixels'); sides: its extent along each
    axis; voxels: how many voxels it holds in all; from_header: judged before any voxel was read
    (False where the volume had to be read first)."""
    refused = "refused from its header, before any voxel is read" if from_header else "refused"
    widest = max(sides, default=0)
    shown = f"{what} is {size} ({voxels} voxels)"
    if widest > settings.max_dimension:
        return (f"{shown}: {widest} is more than the {settings.max_dimension} a side the viewer reads (sagittal "
                f"spine MRI is at most about 1024); {refused}")
    if voxels > settings.max_voxels:
        return (f"{shown}, more than the viewer's budget of {settings.max_voxels} voxels (vcpred serve "
                f"--max-megavoxels {settings.max_voxels / 2**20:g}); {refused}")
    return None


def check_shape(shape: tuple[int, ...], settings: ServeSettings, what: str, *, from_header: bool = True) -> None:
    """TooLarge when a volume of this shape is over the budget. what: e.g. 'the NIfTI image'."""
    refusal = budget_refusal(what, " x ".join(str(n) for n in shape), tuple(shape), math.prod(shape), settings,
                             from_header=from_header)
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
    return budget_refusal("this series", f"{frames} slices of {rows} x {cols} pixels", (frames, rows, cols),
                          voxels, settings)


def declared_frames(path: Path) -> int:
    """The frames one file's header declares (1 for a classic file, or for a file that is not DICOM
    or whose header is damaged: the reader names those); DeclaredTooLarge where the file alone
    declares more than the reader reads (its own check, vcpred.imaging.dicom)."""
    from vcpred.imaging.dicom import DeclaredTooLarge, declared_size_refusal, read_header
    from vcpred.imaging.formats import is_dicom_file

    if not is_dicom_file(path):
        return 1
    try:
        dataset = read_header(path)
        frames = max(int(dataset.get("NumberOfFrames") or 1), 1)
    except (ImageReadError, TypeError, ValueError):
        return 1
    if frames > 1 and (refusal := declared_size_refusal(path, dataset, frames)):
        raise DeclaredTooLarge(refusal)
    return frames


def declared_frames_refusal(files: list[Path], settings: ServeSettings) -> str | None:
    """Why an upload's (or a local folder's) DICOM files are refused from their headers alone: more
    frames declared in all than max_frames. Each file's own declared size is the reader's check
    (vcpred.imaging.dicom); many files within it add up, and the reader builds a header for every
    declared frame before the series' voxel budget can be judged. None: within."""
    total = sum(declared_frames(path) for path in files)
    if total <= settings.max_frames:
        return None
    return (f"the DICOM files declare {total} frames (slices) in all, more than the {settings.max_frames} the viewer "
            "reads from one upload (a whole spine MRI study holds a few hundred); refused from their headers, before "
            "any frame is read: upload the sagittal series alone")

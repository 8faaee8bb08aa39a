"""Read a sagittal series (DICOM folder, zip of one, DICOM file or NIfTI file) into the canonical display.

Rules (docs/imaging.md): DICOM slices are grouped by SeriesInstanceUID and sorted by
ImagePositionPatient projected on the slice normal, never by file name; size, orientation and
pixel spacing must agree and slices must be evenly spaced; RescaleSlope/Intercept are applied per
slice. NIfTI is read with nibabel (RAS affine). Whatever the stored orientation, the result is
permuted/flipped into the canonical sagittal display; a volume acquired in another plane is refused.
"""

from __future__ import annotations

import gzip
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from io import BufferedIOBase
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from vcpred.errors import ImageReadError, OrientationError
from vcpred.imaging import dicom
from vcpred.imaging.formats import image_kind
from vcpred.imaging.orient import Volume, check_sagittal, geometry_record, to_canonical

if TYPE_CHECKING:
    import pydicom

# Voxel-size ratio above which the thickest axis is taken as the acquisition slice axis.
THICK_RATIO = 1.2
# Most a .nii.gz may decompress to after its voxels (read only to reach gzip's check at the end; a
# normal file has nothing there): more is refused, so a gzip bomb behind a small header is not expanded.
GZIP_TRAILING_LIMIT = 16 * 2**20


def read_volume(path: str | Path, *, series: str | None = None) -> Volume:
    """Read a sagittal series as a canonical Volume: a DICOM series folder, a zip of one, a single
    DICOM file (e.g. an enhanced multi-frame file), or a NIfTI file.

    series: SeriesInstanceUID or SeriesDescription choosing one series when a folder holds
    several. Returns float32 [S, R, C] with spacing (slice_mm, row_mm, col_mm) and provenance.
    Raises ImageReadError (unreadable, inconsistent) or OrientationError (not sagittal).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"image {path} does not exist; check the image_ column of the manifest")
    try:
        kind = image_kind(path)
    except ValueError as exc:
        raise ImageReadError(f"{path}: {exc}") from None
    if kind == "dicom-folder":
        volume = dicom.read_dicom_series(path, series=series)
    elif kind == "nifti":
        volume = read_nifti(path)
    elif kind == "zip":
        volume = read_zip(path, series=series)
    else:
        volume = dicom.read_dicom_series(path.parent, series=series, files=[path], source=path)
    return check_finite(volume, path)


@contextmanager
def unzipped(path: Path) -> Iterator[tuple[Path, list[str]]]:
    """(a temporary folder holding the zip's DICOM files, the members skipped as not DICOM): the
    viewer's safe extraction (no member leaves the folder, bounded expansion; vcpred.serve.archive).
    Errors name the zip, not the temporary folder."""
    from vcpred.serve.archive import safe_extract
    from vcpred.serve.errors import ServeError
    from vcpred.serve.settings import ServeSettings

    with tempfile.TemporaryDirectory(prefix="vcpred-zip-") as folder:
        try:
            extracted = safe_extract(path, Path(folder), ServeSettings())
        except ServeError as exc:
            raise ImageReadError(f"{path}: {exc}") from None
        try:
            yield Path(folder), extracted.skipped
        except OrientationError as exc:
            raise OrientationError(str(exc).replace(folder, f"{path} (unzipped)"), plane=exc.plane) from None
        except ImageReadError as exc:
            raise ImageReadError(str(exc).replace(folder, f"{path} (unzipped)")) from None


def read_zip(path: Path, *, series: str | None = None) -> Volume:
    """A zipped DICOM series (its files that are not DICOM ignored with a note)."""
    with unzipped(path) as (folder, skipped):
        dicom.note_ignored(skipped, path)
        volume = dicom.read_dicom_series(folder, series=series, source=path)
        volume.provenance["ignored_files"] = skipped + volume.provenance["ignored_files"]
        return volume


def scan_series(path: str | Path) -> dicom.FolderScan:
    """The DICOM series of a folder, a zip of one or a DICOM file, from their headers only (for
    listing them: the slices' paths inside a zip are gone once this returns)."""
    path = Path(path)
    kind = image_kind(path)
    if kind == "dicom-folder":
        return dicom.scan_folder(path)
    if kind == "dicom-file":
        return dicom.scan_folder(path.parent, [path])
    if kind == "zip":
        with unzipped(path) as (folder, _):
            return dicom.scan_folder(folder)
    raise ImageReadError(f"{path}: a NIfTI file holds no DICOM series to list")


def series_header(source: str | Path, series_uid: str | None) -> pydicom.Dataset | None:
    """The header (no pixels) of one file of the series `series_uid` in a DICOM source (a folder, a
    zip, a file) as read_volume was given it; None when the source is not DICOM or no longer there."""
    source = Path(source)
    try:
        kind = image_kind(source)
        if kind == "dicom-file":
            return dicom.first_header([source], series_uid)
        if kind == "dicom-folder":
            return dicom.first_header(dicom.list_files(source), series_uid)
        if kind == "zip":
            with unzipped(source) as (folder, _):
                return dicom.first_header(dicom.list_files(folder), series_uid)
    except (ValueError, ImageReadError):
        return None
    return None


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
    image, array = load_nifti(path)
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


def load_nifti(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """(the image, its voxels as float32 with scl_slope/scl_inter applied), checked as gzip checks it.

    nibabel reads only the bytes its header names, so it never reaches the end of a .nii.gz, where
    gzip compares the CRC-32 and length of the whole stream: a flipped or missing byte gave other
    voxels silently. Here nibabel reads from Python's gzip stream, which is then read to its end so
    gzip checks it. It costs no memory (the stream is decompressed once, as before, and what lies
    after the voxels, nothing in a normal file, is read in chunks and dropped) and no time beyond
    that trailing data (at most GZIP_TRAILING_LIMIT).
    """
    compressed = path.name.lower().endswith(".gz")  # as nibabel judges it, by the suffix
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            image = nifti_class(stream.read(nib.Nifti2Header.sizeof_hdr), path).from_stream(rewound(stream))
            array = np.asarray(image.dataobj, dtype=np.float32)  # applies scl_slope/scl_inter
            if compressed:
                read_to_end(stream, path)
    except ImageReadError:
        raise
    except Exception as exc:  # nibabel raises many types for damaged files
        if compressed and isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error)):
            raise ImageReadError(f"{path}: the gzip data is damaged or incomplete ({one_line(exc)}); copy or "
                                 "export the file again") from None
        raise ImageReadError(f"{path}: cannot read NIfTI file ({type(exc).__name__}: {one_line(exc)}); "
                             "check the file is complete and not corrupt") from None
    return image, array


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())  # nibabel's messages may hold line breaks


def nifti_class(head: bytes, path: Path) -> type[nib.Nifti1Image]:
    """Nifti1Image or Nifti2Image from the header's first bytes (nibabel's own test, as nib.load makes it)."""
    for klass in (nib.Nifti1Image, nib.Nifti2Image):
        if klass.header_class.may_contain_header(head):
            return klass
    raise ImageReadError(f"{path}: not a NIfTI file (no NIfTI-1 or NIfTI-2 header at its start); "
                         "check the file is complete and not corrupt")


def rewound(stream: BufferedIOBase) -> BufferedIOBase:
    stream.seek(0)  # a gzip stream goes back to its start cheaply this close to it
    return stream


def read_to_end(stream: BufferedIOBase, path: Path) -> None:
    """Read the gzip stream past the voxels to its end, where gzip raises when its CRC-32 or length does
    not check (or the file ends early); refuse more than GZIP_TRAILING_LIMIT bytes there."""
    left = GZIP_TRAILING_LIMIT
    while chunk := stream.read(min(left + 1, 2**20)):
        left -= len(chunk)
        if left < 0:
            raise ImageReadError(f"{path}: the file holds more than {GZIP_TRAILING_LIMIT // 2**20} MB of data after its "
                                 "image; it is not one NIfTI image as vcpred reads it: export the image again")


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

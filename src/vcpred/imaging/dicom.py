"""DICOM series: discovery, choice of series, slice sorting, geometry checks, pixels.

Headers are read with pydicom (`stop_before_pixels`) for every file under the folder (recursively);
pixels are read only for the chosen series. Hidden files and DICOMDIR are passed over; files that
are not DICOM (README.txt, Thumbs.db, XML exports...; judged from their first bytes, see
vcpred.imaging.formats) are ignored with a note. Files without the 128-byte preamble are read
too. An enhanced (multi-frame) file contributes one slice per frame, placed by its per-frame
functional groups.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from vcpred import console
from vcpred.cohort.series_choice import SeriesInfo, inline, reference, resolve, sort_key, unmatched
from vcpred.errors import ImageReadError
from vcpred.imaging.formats import has_marker, head, is_dicom_file
from vcpred.imaging.orient import Volume, check_sagittal, geometry_record, plane_of, to_canonical

REQUIRED = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
GAP_TOLERANCE = 0.1  # a slice gap more than 10 % off the median gap means a missing/extra slice
IOP_TOLERANCE = 1e-3  # direction cosines that differ by more are a different orientation
UNIT_TOLERANCE = 0.01  # a direction cosine vector must have length 1 within this
PERPENDICULAR_TOLERANCE_DEG = 1.0  # row and column directions must be 90 degrees apart within this
# Neighbouring slices further apart than this are a damaged ImagePositionPatient: a series of the
# spine (or of any body part) has slices a few mm apart, and its whole stack is under 500 mm wide.
MAX_SLICE_GAP_MM = 100.0
# Per-frame functional groups of an enhanced file -> the classic tags they hold.
FRAME_GROUPS = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
}
FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
# What one multi-frame file may declare, judged from its header before any per-frame work (a header
# claiming 10^9 frames would otherwise have a header built for each): the viewer's default budget
# (vcpred.serve.settings: 64 Mi voxels, 2048 a side); sagittal spine MRI is at most about
# 1024 x 1024 x 30 (2D) or 512 x 512 x 200 (3D).
MAX_FILE_VOXELS = 64 * 2**20
MAX_FILE_SIDE = 2048


class DeclaredTooLarge(ImageReadError):
    """A header that declares more frames or pixels than the reader reads, or than its file holds."""


@dataclass
class SliceHeader:
    """One slice: a classic file, or one frame (0-based) of an enhanced multi-frame file."""

    path: Path
    dataset: pydicom.Dataset  # header only, no pixel data; a frame's geometry flattened into it
    frame: int | None = None

    @property
    def series_uid(self) -> str:
        return str(self.dataset.get("SeriesInstanceUID", "<no SeriesInstanceUID>"))

    @property
    def description(self) -> str:
        return str(self.dataset.get("SeriesDescription", "") or "")

    @property
    def plane(self) -> str:
        """'sagittal', 'coronal' or 'axial' from ImageOrientationPatient; 'unknown' when it is missing
        or not six numbers (the reader names the damage when the series is read)."""
        try:
            iop = np.asarray(self.dataset.ImageOrientationPatient, dtype=float)
            return plane_of(np.cross(iop[:3], iop[3:]))
        except (AttributeError, TypeError, ValueError, IndexError):
            return "unknown"

    @property
    def label(self) -> str:
        """The file name, with the frame number (1-based, as viewers count) for a multi-frame file."""
        return self.path.name if self.frame is None else f"{self.path.name} frame {self.frame + 1}"

    @property
    def where(self) -> str:
        return str(self.path) if self.frame is None else f"{self.path} frame {self.frame + 1}"


@dataclass
class FolderScan:
    """A folder's image slices by SeriesInstanceUID; DICOM objects that are not images (skipped);
    files that are not DICOM (ignored)."""

    groups: dict[str, list[SliceHeader]]
    skipped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def read_dicom_series(folder: Path, *, series: str | None = None, files: list[Path] | None = None,
                      source: str | Path | None = None) -> Volume:
    """Read one series of a DICOM folder (or of `files` in it) into a canonical Volume.

    source: what messages and provenance call the input (default: the folder)."""
    scan = scan_folder(folder, files)
    note_ignored(scan.ignored, source or folder)
    uid = choose_series(scan.groups, folder, series)
    slices, normal, gap = sort_slices(scan.groups[uid], folder, ignored=scan.ignored)
    first = slices[0].dataset
    row_cos, col_cos = _iop(slices[0])[:3], _iop(slices[0])[3:]
    check_sagittal(normal, folder)
    array, pixel_record = read_pixels(slices)
    row_mm, col_mm = (float(v) for v in first.PixelSpacing)
    direction = np.column_stack([normal, col_cos, row_cos])  # stored axes: slice, row, col
    spacing = np.array([gap, row_mm, col_mm])
    volume, record = to_canonical(array, spacing, _ipp(slices[0]), direction, source=str(folder))
    info = SeriesInfo.of(uid, slices)  # study date and series number, as series lists show them
    volume.provenance = {
        "source": str(source or folder), "format": "dicom", "series_uid": uid,
        "study_uid": str(first.get("StudyInstanceUID", "")) or None,
        "series_description": slices[0].description or None,
        "series_number": info.number, "study_date": info.study_date or None,
        "manufacturer": str(first.get("Manufacturer", "")) or None,
        "model": str(first.get("ManufacturerModelName", "")) or None,
        "files": len({item.path for item in slices}), "multiframe": any(s.frame is not None for s in slices),
        "rescale": pixel_record["slope_intercept"],
        "decoder": pixel_record["decoder"], "skipped_files": scan.skipped, "ignored_files": scan.ignored,
        "instance_numbers": canonical_instance_numbers(slices, record["flipped"]),
        **record, **geometry_record(volume)}
    return volume


def canonical_instance_numbers(slices: list[SliceHeader], flipped: list[int]) -> list[int | None]:
    """InstanceNumber (a multi-frame file: its frame number, 1-based) of each canonical slice, the
    number a PACS viewer shows: canonical slice s is the one numbered [s] here."""
    numbers = [item.frame + 1 if item.frame is not None else _int_or_none(item.dataset.get("InstanceNumber"))
               for item in slices]
    return numbers[::-1] if 0 in flipped else numbers


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def note_ignored(names: list[str], source: str | Path) -> None:
    """Say which files were passed over as not DICOM (a README, Thumbs.db...): not an error."""
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        console.say(f"note: {source}: ignored {len(names)} file(s) that are not DICOM: {shown}")


def list_files(folder: Path) -> list[Path]:
    """Every regular file under folder but hidden files and DICOMDIR (sorted for stable messages;
    order never used for slices)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)
             and p.name.upper() != "DICOMDIR"]
    if not files:
        raise ImageReadError(f"{folder}: the folder holds no files; give the folder of a DICOM series")
    return files


def dcmread(path: Path, *, header_only: bool) -> pydicom.Dataset:
    """pydicom's reading of a DICOM file with or without its preamble (and file meta)."""
    start = head(path)
    marker = has_marker(start)
    if marker == "part10":
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    if marker == "no-preamble":  # "DICM" and the file meta at byte 0: give pydicom its preamble back
        return pydicom.dcmread(io.BytesIO(bytes(128) + path.read_bytes()), stop_before_pixels=header_only)
    dataset = pydicom.dcmread(path, force=True, stop_before_pixels=header_only)
    _name_raw_encoding(dataset)
    return dataset


def _name_raw_encoding(dataset: pydicom.Dataset) -> None:
    """A raw dataset has no file meta: record the transfer syntax pydicom found, which decoding needs."""
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = getattr(dataset, "original_encoding", (True, True))
    dataset.file_meta = meta if meta is not None else FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                           ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def read_header(path: Path) -> pydicom.Dataset:
    try:
        return dcmread(path, header_only=True)
    except Exception as exc:  # truncated or damaged headers raise assorted errors
        raise ImageReadError(f"{path}: corrupt DICOM file ({type(exc).__name__}: {exc}); "
                             "re-export the series or remove this file") from None


def scan_folder(folder: Path, files: list[Path] | None = None) -> FolderScan:
    """Image slices grouped by SeriesInstanceUID (see FolderScan)."""
    scan = FolderScan({})
    for path in files if files is not None else list_files(folder):
        if not is_dicom_file(path):
            scan.ignored.append(str(path.relative_to(folder)))
            continue
        dataset = read_header(path)
        if "Rows" not in dataset:
            if not is_image_class(dataset):  # structured reports, presentation states, ...
                scan.skipped.append(str(path.relative_to(folder)))
                continue
            raise ImageReadError(f"{path}: corrupt DICOM file (an image whose header ends before Rows; "
                                 "truncated?); re-export the series or remove this file")
        for header in slice_headers(path, dataset):
            scan.groups.setdefault(header.series_uid, []).append(header)
    if not scan.groups:
        ignored = f" ({len(scan.ignored)} file(s) that are not DICOM ignored)" if scan.ignored else ""
        raise ImageReadError(f"{folder}: no DICOM image in the folder{ignored}; give the folder of a sagittal series")
    return scan


def first_header(files: list[Path], series_uid: str | None) -> pydicom.Dataset | None:
    """The header of the first DICOM file of the series (any series when series_uid is None)."""
    for path in files:
        if is_dicom_file(path):
            try:
                dataset = dcmread(path, header_only=True)
            except Exception:  # a damaged file: look at the next
                continue
            if series_uid is None or str(dataset.get("SeriesInstanceUID", "")) == series_uid:
                return dataset
    return None


def discover_series(folder: Path, files: list[Path] | None = None) -> tuple[dict[str, list[SliceHeader]], list[str]]:
    """Image slices grouped by SeriesInstanceUID; the files passed over (not images, not DICOM).
    files: those of folder to read (default: list_files(folder))."""
    scan = scan_folder(folder, files)
    return scan.groups, scan.skipped + scan.ignored


def is_multiframe(dataset: pydicom.Dataset) -> bool:
    try:
        return int(dataset.get("NumberOfFrames") or 1) > 1 or "PerFrameFunctionalGroupsSequence" in dataset
    except (TypeError, ValueError):
        return True  # a damaged NumberOfFrames: frame_headers names it


def slice_headers(path: Path, dataset: pydicom.Dataset) -> list[SliceHeader]:
    """The slice of a classic file, or one header per frame of an enhanced file."""
    if not is_multiframe(dataset):
        return [SliceHeader(path, dataset)]
    try:
        count = int(dataset.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        count = 0
    refusal = declared_size_refusal(path, dataset, count)
    if refusal:
        raise DeclaredTooLarge(refusal)
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence") or [])
    shared = (dataset.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    if count < 1 or (per_frame and len(per_frame) != count):
        raise ImageReadError(f"{path}: multi-frame DICOM with NumberOfFrames {dataset.get('NumberOfFrames')!s} and "
                             f"{len(per_frame)} per-frame functional groups; the header is damaged: re-export the series")
    base = Dataset()
    for element in dataset:
        if element.keyword not in (*FUNCTIONAL_GROUPS, "NumberOfFrames"):
            base.add(element)
    base.file_meta = getattr(dataset, "file_meta", FileMetaDataset())
    return [SliceHeader(path, _frame_dataset(base, per_frame[i] if per_frame else Dataset(), shared), frame=i)
            for i in range(count)]


def declared_size_refusal(path: Path, dataset: pydicom.Dataset, frames: int) -> str | None:
    """Why a multi-frame file's declared size is refused (None: it is not), from its header alone:
    frames, rows or columns over MAX_FILE_SIDE, more than MAX_FILE_VOXELS in all, or (uncompressed)
    more pixel bytes than the whole file holds."""
    rows, cols = _int_or_none(dataset.get("Rows")) or 0, _int_or_none(dataset.get("Columns")) or 0
    voxels = frames * rows * cols
    shown = (f"{path}: the header declares {frames} frame{'s' if frames != 1 else ''} of {rows} x {cols} pixels "
             "(NumberOfFrames, Rows, Columns)")
    if max(frames, rows, cols) > MAX_FILE_SIDE or voxels > MAX_FILE_VOXELS:
        return (f"{shown}, more than vcpred reads ({MAX_FILE_SIDE} a side, {MAX_FILE_VOXELS // 2**20} Mi voxels in "
                "all; sagittal spine MRI is far smaller); refused before reading it: the header is damaged or "
                "this is not a spine MRI series")
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or syntax.is_compressed or syntax.is_deflated:
        return None  # compressed pixel data can be smaller than its pixels
    bits = (_int_or_none(dataset.get("BitsAllocated")) or 1) * (_int_or_none(dataset.get("SamplesPerPixel")) or 1)
    needed, size = voxels * bits // 8, path.stat().st_size
    if needed > size:
        return (f"{shown}: that is {needed} bytes of uncompressed pixel data, more pixel data than the file holds "
                f"({size} bytes); the header is damaged: re-export the series")
    return None


def _frame_dataset(base: Dataset, frame: Dataset, shared: Dataset) -> Dataset:
    """The file's top-level tags with one frame's geometry and rescale (per-frame groups first,
    then shared ones), as a classic slice would hold them."""
    flat = Dataset()
    for element in base:
        flat.add(element)
    flat.file_meta = base.file_meta
    for group, tags in FRAME_GROUPS.items():
        for source in (shared, frame):  # per-frame values override shared ones
            items = source.get(group)
            if items:
                for tag in tags:
                    if tag in items[0]:
                        flat[tag] = items[0][tag]
    return flat


def is_image_class(dataset: pydicom.Dataset) -> bool:
    """True for image storage SOP classes (or when the class is unknown: then treat as an image)."""
    meta = getattr(dataset, "file_meta", None)
    uid = dataset.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    return uid is None or "Image" in getattr(uid, "name", "Image")


def choose_series(groups: dict[str, list[SliceHeader]], folder: Path, series: str | None) -> str:
    """The SeriesInstanceUID to read: the only one, or the one `series` chooses (a UID, a DATE#N
    reference, a description, words in any order or a glob: vcpred.cohort.series_choice)."""
    listed = sorted((SeriesInfo.of(uid, items) for uid, items in groups.items()), key=sort_key)
    if series is None:
        if len(groups) == 1:
            return next(iter(groups))
        raise ImageReadError(f"{folder}: the folder mixes {len(groups)} series: {inline(listed, listed)}; choose one "
                             "with --series SEQUENCE=CHOICE or the manifest's series_<sequence> column (the first "
                             f"word of its entry above, e.g. {reference(listed[0], listed)}; docs/manifest.md, "
                             "\"Choosing a series\"), or give each series its own folder")
    found = resolve(series, listed)
    if len(found) == 1:
        return found[0].uid
    raise ImageReadError(f"{folder}: {unmatched(series, found, listed, 'here')}; choose one by the first word of its "
                         "entry (docs/manifest.md, \"Choosing a series\")")


def _iop(item: SliceHeader) -> np.ndarray:
    return np.asarray(item.dataset.ImageOrientationPatient, dtype=float)


def _ipp(item: SliceHeader) -> np.ndarray:
    return np.asarray(item.dataset.ImagePositionPatient, dtype=float)


def _numbers(value, count: int) -> np.ndarray | None:
    """`count` finite floats from a (multi-valued) DICOM element, or None."""
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        values = np.asarray([float(v) for v in items], dtype=float)
    except (TypeError, ValueError):
        return None
    return values if values.shape == (count,) and np.all(np.isfinite(values)) else None


def _shown(value) -> str:
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    return "[" + ", ".join(str(v) for v in items) + "]"


def check_geometry(item: SliceHeader) -> None:
    """The geometry tags of one slice hold usable values (a damaged header often has 0 or NaN)."""
    ds, damaged = item.dataset, "the header is damaged; re-export the series"
    spacing = _numbers(ds.PixelSpacing, 2)
    if spacing is None or np.any(spacing <= 0):
        raise ImageReadError(f"{item.where}: PixelSpacing {_shown(ds.PixelSpacing)} is not two positive numbers "
                             f"(row and column spacing in mm); {damaged}")
    if _numbers(ds.ImagePositionPatient, 3) is None:
        raise ImageReadError(f"{item.where}: ImagePositionPatient {_shown(ds.ImagePositionPatient)} is not three "
                             f"finite numbers (mm); {damaged}")
    iop = _numbers(ds.ImageOrientationPatient, 6)
    shown = f"{item.where}: ImageOrientationPatient {_shown(ds.ImageOrientationPatient)}"
    if iop is None:
        raise ImageReadError(f"{shown} is not six finite numbers (row and column direction cosines); {damaged}")
    for name, vector in (("row direction (first three values)", iop[:3]),
                         ("column direction (last three values)", iop[3:])):
        length = float(np.linalg.norm(vector))
        if abs(length - 1) > UNIT_TOLERANCE:
            raise ImageReadError(f"{shown}: the {name} has length {length:.3g}, not 1; {damaged}")
    angle = float(np.degrees(np.arccos(np.clip(abs(iop[:3] @ iop[3:]), 0, 1))))
    if abs(angle - 90) > PERPENDICULAR_TOLERANCE_DEG:
        raise ImageReadError(f"{shown}: the row and column directions are {angle:.1f} degrees apart, not "
                             f"perpendicular; {damaged}")


def check_consistent(items: list[SliceHeader], folder: Path) -> None:
    """Usable geometry values in every slice; the same matrix size, pixel spacing and orientation."""
    first = items[0]
    for item in items:
        missing = [tag for tag in REQUIRED if tag not in item.dataset]
        if missing:
            raise ImageReadError(f"{item.where}: DICOM slice without {', '.join(missing)}; "
                                 "vcpred needs these to place the slice; re-export the series")
        check_geometry(item)
    for item in items[1:]:
        for tag in ("Rows", "Columns"):
            if item.dataset[tag].value != first.dataset[tag].value:
                raise ImageReadError(f"{folder}: {tag} {item.dataset[tag].value} in {item.label} but "
                                     f"{first.dataset[tag].value} in {first.label}; one series has one matrix size")
        if not np.allclose(np.asarray(item.dataset.PixelSpacing, float),
                           np.asarray(first.dataset.PixelSpacing, float), rtol=1e-4):
            raise ImageReadError(f"{folder}: PixelSpacing differs between {first.label} and {item.label}")
        if np.abs(_iop(item) - _iop(first)).max() > IOP_TOLERANCE:
            raise ImageReadError(f"{folder}: ImageOrientationPatient differs between {first.label} "
                                 f"and {item.label}; the folder mixes slices of different planes")


def sort_slices(items: list[SliceHeader], folder: Path, *,
                ignored: Sequence[str] = ()) -> tuple[list[SliceHeader], np.ndarray, float]:
    """Slices sorted along the slice normal; the normal (LPS unit vector) and the slice spacing in mm.
    ignored: files passed over as not DICOM, named when a slice is missing."""
    check_consistent(items, folder)
    iop = _iop(items[0])
    normal = np.cross(iop[:3], iop[3:])
    normal /= np.linalg.norm(normal)
    position = np.array([_ipp(item) @ normal for item in items])
    order = np.argsort(position, kind="stable")
    items, position = [items[i] for i in order], position[order]
    _check_stacked(items, iop, folder)
    if len(items) == 1:
        return items, normal, _single_slice_thickness(items[0])
    return items, normal, _even_gap(items, position, folder, ignored)


def _single_slice_thickness(item: SliceHeader) -> float:
    """A one-slice series has no gap: SpacingBetweenSlices, else SliceThickness, else 1 mm."""
    for tag in ("SpacingBetweenSlices", "SliceThickness"):
        raw = item.dataset.get(tag)
        if raw is None or str(raw).strip() == "":
            continue
        value = _numbers(raw, 1)
        if value is None or value[0] <= 0:
            raise ImageReadError(f"{item.where}: {tag} {raw} is not a positive number (mm); the header is "
                                 "damaged; re-export the series")
        return float(value[0])
    return 1.0


def _check_stacked(items: list[SliceHeader], iop: np.ndarray, folder: Path) -> None:
    """Slices must lie on one line along the normal (no in-plane shift between slices)."""
    spacing = float(min(items[0].dataset.PixelSpacing))
    in_plane = np.array([[_ipp(i) @ iop[:3], _ipp(i) @ iop[3:]] for i in items])
    shift = np.abs(in_plane - in_plane[0]).max()
    if shift > 0.5 * spacing:
        raise ImageReadError(f"{folder}: slices are shifted in-plane by up to {shift:.2f} mm (gantry tilt "
                             "or a reformatted stack); vcpred reads only stacks along the slice normal")


def _even_gap(items: list[SliceHeader], position: np.ndarray, folder: Path, ignored: Sequence[str] = ()) -> float:
    gaps = np.diff(position)
    median = float(np.median(gaps))
    if not np.all(np.isfinite(gaps)) or median > MAX_SLICE_GAP_MM:
        raise ImageReadError(f"{folder}: the slices are {median:.3g} mm apart (ImagePositionPatient, from "
                             f"{items[0].label} to {items[1].label}); no series has slices more than "
                             f"{MAX_SLICE_GAP_MM:.0f} mm apart: the header is damaged; re-export the series")
    # Duplicates first: a slice written at its neighbour's position also leaves a double gap beside it,
    # which is not a missing slice.
    for i, gap in enumerate(gaps):
        if gap < 1e-3 * max(median, 1e-3):
            raise ImageReadError(f"{folder}: {items[i].label} and {items[i + 1].label} are at the same "
                                 f"position ({position[i]:.2f} mm); several echoes or time points in one series, "
                                 "or a duplicated slice? export a single 3-D sagittal stack")
    for i, gap in enumerate(gaps):
        if abs(gap - median) > GAP_TOLERANCE * median:
            missing = round(gap / median) - 1
            raise ImageReadError(
                f"{folder}: uneven slice spacing: {gap:.2f} mm between {items[i].label} (at "
                f"{position[i]:.2f} mm) and {items[i + 1].label} (at {position[i + 1]:.2f} mm), "
                f"{median:.2f} mm elsewhere; {max(missing, 1)} slice(s) probably missing"
                + (f" (ignored as not DICOM: {', '.join(ignored)})" if ignored else "")
                + "; re-export the complete series")
    return median


def read_pixels(items: list[SliceHeader]) -> tuple[np.ndarray, dict]:
    """Pixels [n, rows, cols] float32 with each slice's RescaleSlope/Intercept applied (a frame's
    own, from its functional groups)."""
    planes, rescales, decoders = [], set(), set()
    stored, where = None, None
    for item in items:
        if item.path != where:  # a multi-frame file is read once for all its frames
            stored, decoder, ds = _stored_pixels(item.path)
            where = item.path
            decoders.add(decoder)
        assert stored is not None  # read above for the first item of each file
        pixels = stored if item.frame is None else stored[item.frame]
        slope, intercept = _rescale(item)
        rescales.add((slope, intercept))
        if decoder == "pydicom":  # GDCM applies the rescale itself
            pixels = pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        if pixels.shape != (ds.Rows, ds.Columns):
            raise ImageReadError(f"{item.where}: pixel data of shape {pixels.shape}, expected "
                                 f"({ds.Rows}, {ds.Columns}) single-channel; give a grey-scale MR series")
        planes.append(pixels.astype(np.float32, copy=False))
    record = {"slope_intercept": [list(pair) for pair in sorted(rescales)], "decoder": sorted(decoders)}
    return np.stack(planes), record


def _stored_pixels(path: Path) -> tuple[np.ndarray, str, pydicom.Dataset]:
    """(pixels as stored: [rows, cols], or [frames, rows, cols] for a multi-frame file; the decoder
    used; the dataset)."""
    ds = _full_dataset(path)
    try:
        return ds.pixel_array, "pydicom", ds
    except Exception as exc:
        return _decode_with_sitk(path, ds, exc, frames=is_multiframe(ds)), "SimpleITK", ds


def _rescale(item: SliceHeader) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept); absent or empty: 1 and 0. NaN, infinite or a zero slope
    (every pixel the same value) is a damaged header."""
    values = []
    for tag, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        raw = item.dataset.get(tag)
        if raw is None or str(raw).strip() == "":
            values.append(default)
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if not np.isfinite(value) or (tag == "RescaleSlope" and value == 0):
            what = "a finite, non-zero number" if tag == "RescaleSlope" else "a finite number"
            raise ImageReadError(f"{item.path.parent}: {tag} {str(raw)!r} in {item.label} is not {what}, so its "
                                 "pixel values cannot be recovered; the header is damaged: re-export the series")
        values.append(value)
    return values[0], values[1]


def _full_dataset(path: Path) -> pydicom.Dataset:
    try:
        return dcmread(path, header_only=False)
    except Exception as exc:
        raise ImageReadError(f"{path}: corrupt DICOM file ({type(exc).__name__}: {exc}); "
                             "re-export the series or remove this file") from None


def _decode_with_sitk(path: Path, ds: pydicom.Dataset, error: Exception, *, frames: bool = False) -> np.ndarray:
    """Compressed pixel data pydicom has no codec for (e.g. JPEG Lossless) through SimpleITK/GDCM.

    Only for compressed transfer syntaxes: an uncompressed file pydicom cannot read is corrupt.
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    problem = f"cannot read the pixel data ({type(error).__name__}: {str(error).splitlines()[0]})"
    if syntax is None or not syntax.is_compressed:
        raise ImageReadError(f"{path}: {problem}; the file is corrupt; re-export the series") from None
    import SimpleITK as sitk

    try:
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
        return array if frames else array[0]
    except Exception as exc:
        raise ImageReadError(f"{path}: {problem}, and SimpleITK failed too ({exc}); the pixel data is "
                             f"compressed as {syntax.name}: re-export the series uncompressed") from None

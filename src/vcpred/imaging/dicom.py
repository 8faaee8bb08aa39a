"""DICOM series directories: discovery, choice of series, slice sorting, geometry checks, pixels.

Headers are read with pydicom (`stop_before_pixels`) for every file under the folder (recursively;
hidden files and DICOMDIR are ignored); pixels are read only for the chosen series.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from vcpred.errors import ImageReadError
from vcpred.imaging.orient import Volume, check_sagittal, geometry_record, to_canonical

REQUIRED = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
GAP_TOLERANCE = 0.1  # a slice gap more than 10 % off the median gap means a missing/extra slice
IOP_TOLERANCE = 1e-3  # direction cosines that differ by more are a different orientation
UNIT_TOLERANCE = 0.01  # a direction cosine vector must have length 1 within this
PERPENDICULAR_TOLERANCE_DEG = 1.0  # row and column directions must be 90 degrees apart within this


@dataclass
class SliceHeader:
    path: Path
    dataset: pydicom.Dataset  # header only, no pixel data

    @property
    def series_uid(self) -> str:
        return str(self.dataset.get("SeriesInstanceUID", "<no SeriesInstanceUID>"))

    @property
    def description(self) -> str:
        return str(self.dataset.get("SeriesDescription", "") or "")


def read_dicom_series(folder: Path, *, series: str | None = None) -> Volume:
    """Read one series of a DICOM folder into a canonical Volume (see module docstring)."""
    groups, skipped = discover_series(folder)
    uid = choose_series(groups, folder, series)
    slices, normal, gap = sort_slices(groups[uid], folder)
    first = slices[0].dataset
    row_cos, col_cos = _iop(slices[0])[:3], _iop(slices[0])[3:]
    check_sagittal(normal, folder)
    array, pixel_record = read_pixels(slices)
    row_mm, col_mm = (float(v) for v in first.PixelSpacing)
    direction = np.column_stack([normal, col_cos, row_cos])  # stored axes: slice, row, col
    spacing = np.array([gap, row_mm, col_mm])
    volume, record = to_canonical(array, spacing, _ipp(slices[0]), direction, source=str(folder))
    volume.provenance = {
        "source": str(folder), "format": "dicom", "series_uid": uid,
        "study_uid": str(first.get("StudyInstanceUID", "")) or None,
        "series_description": slices[0].description or None,
        "manufacturer": str(first.get("Manufacturer", "")) or None,
        "model": str(first.get("ManufacturerModelName", "")) or None,
        "files": len(slices), "rescale": pixel_record["slope_intercept"],
        "decoder": pixel_record["decoder"], "skipped_files": skipped,
        **record, **geometry_record(volume)}
    return volume


def list_files(folder: Path) -> list[Path]:
    """Every regular file under folder (sorted for stable messages; order never used for slices)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)
             and p.name.upper() != "DICOMDIR"]
    if not files:
        raise ImageReadError(f"{folder}: the folder holds no files; give the folder of a DICOM series")
    return files


def read_header(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise ImageReadError(f"{path}: not a DICOM file (no DICM marker); remove it from the series "
                             "folder or re-export the series") from None
    except Exception as exc:  # truncated or damaged headers raise assorted errors
        raise ImageReadError(f"{path}: corrupt DICOM file ({type(exc).__name__}: {exc}); "
                             "re-export the series or remove this file") from None


def discover_series(folder: Path) -> tuple[dict[str, list[SliceHeader]], list[str]]:
    """Image files grouped by SeriesInstanceUID; also the names of DICOM files without an image."""
    groups: dict[str, list[SliceHeader]] = {}
    skipped = []
    for path in list_files(folder):
        header = SliceHeader(path, read_header(path))
        if "Rows" not in header.dataset:
            if not is_image_class(header.dataset):  # structured reports, presentation states, ...
                skipped.append(str(path.relative_to(folder)))
                continue
            raise ImageReadError(f"{path}: corrupt DICOM file (an image whose header ends before Rows; "
                                 "truncated?); re-export the series or remove this file")
        groups.setdefault(header.series_uid, []).append(header)
    if not groups:
        raise ImageReadError(f"{folder}: no DICOM image in the folder; give the folder of a sagittal series")
    return groups, skipped


def is_image_class(dataset: pydicom.Dataset) -> bool:
    """True for image storage SOP classes (or when the class is unknown: then treat as an image)."""
    meta = getattr(dataset, "file_meta", None)
    uid = dataset.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    return uid is None or "Image" in getattr(uid, "name", "Image")


def describe(groups: dict[str, list[SliceHeader]]) -> str:
    return "; ".join(f"{uid} {items[0].description!r} ({len(items)} files)" for uid, items in groups.items())


def choose_series(groups: dict[str, list[SliceHeader]], folder: Path, series: str | None) -> str:
    """The SeriesInstanceUID to read: the only one, or the one matching `series` (UID or description)."""
    if series is None:
        if len(groups) == 1:
            return next(iter(groups))
        raise ImageReadError(f"{folder}: the folder mixes {len(groups)} series: {describe(groups)}; "
                             "choose one with --series SEQUENCE=UID_OR_DESCRIPTION, or give each series its own folder")
    if series in groups:
        return series
    matches = [uid for uid, items in groups.items() if items[0].description.lower() == series.lower()]
    if len(matches) == 1:
        return matches[0]
    what = "several series are" if matches else "no series is"
    raise ImageReadError(f"{folder}: {what} named {series!r}; the series here: {describe(groups)}; "
                         "choose by SeriesInstanceUID")


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
        raise ImageReadError(f"{item.path}: PixelSpacing {_shown(ds.PixelSpacing)} is not two positive numbers "
                             f"(row and column spacing in mm); {damaged}")
    if _numbers(ds.ImagePositionPatient, 3) is None:
        raise ImageReadError(f"{item.path}: ImagePositionPatient {_shown(ds.ImagePositionPatient)} is not three "
                             f"finite numbers (mm); {damaged}")
    iop = _numbers(ds.ImageOrientationPatient, 6)
    shown = f"{item.path}: ImageOrientationPatient {_shown(ds.ImageOrientationPatient)}"
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
            raise ImageReadError(f"{item.path}: DICOM slice without {', '.join(missing)}; "
                                 "vcpred needs these to place the slice; re-export the series")
        check_geometry(item)
    for item in items[1:]:
        for tag in ("Rows", "Columns"):
            if item.dataset[tag].value != first.dataset[tag].value:
                raise ImageReadError(f"{folder}: {tag} {item.dataset[tag].value} in {item.path.name} but "
                                     f"{first.dataset[tag].value} in {first.path.name}; one series has one matrix size")
        if not np.allclose(np.asarray(item.dataset.PixelSpacing, float),
                           np.asarray(first.dataset.PixelSpacing, float), rtol=1e-4):
            raise ImageReadError(f"{folder}: PixelSpacing differs between {first.path.name} and {item.path.name}")
        if np.abs(_iop(item) - _iop(first)).max() > IOP_TOLERANCE:
            raise ImageReadError(f"{folder}: ImageOrientationPatient differs between {first.path.name} "
                                 f"and {item.path.name}; the folder mixes slices of different planes")


def sort_slices(items: list[SliceHeader], folder: Path) -> tuple[list[SliceHeader], np.ndarray, float]:
    """Slices sorted along the slice normal; the normal (LPS unit vector) and the slice spacing in mm."""
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
    return items, normal, _even_gap(items, position, folder)


def _single_slice_thickness(item: SliceHeader) -> float:
    """A one-slice series has no gap: SpacingBetweenSlices, else SliceThickness, else 1 mm."""
    for tag in ("SpacingBetweenSlices", "SliceThickness"):
        raw = item.dataset.get(tag)
        if raw is None or str(raw).strip() == "":
            continue
        value = _numbers(raw, 1)
        if value is None or value[0] <= 0:
            raise ImageReadError(f"{item.path}: {tag} {raw} is not a positive number (mm); the header is "
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


def _even_gap(items: list[SliceHeader], position: np.ndarray, folder: Path) -> float:
    gaps = np.diff(position)
    median = float(np.median(gaps))
    # Duplicates first: a slice written at its neighbour's position also leaves a double gap beside it,
    # which is not a missing slice.
    for i, gap in enumerate(gaps):
        if gap < 1e-3 * max(median, 1e-3):
            raise ImageReadError(f"{folder}: {items[i].path.name} and {items[i + 1].path.name} are at the same "
                                 f"position ({position[i]:.2f} mm); several echoes or time points in one series, "
                                 "or a duplicated slice? export a single 3-D sagittal stack")
    for i, gap in enumerate(gaps):
        if abs(gap - median) > GAP_TOLERANCE * median:
            missing = round(gap / median) - 1
            raise ImageReadError(
                f"{folder}: uneven slice spacing: {gap:.2f} mm between {items[i].path.name} (at "
                f"{position[i]:.2f} mm) and {items[i + 1].path.name} (at {position[i + 1]:.2f} mm), "
                f"{median:.2f} mm elsewhere; {max(missing, 1)} slice(s) probably missing; "
                "re-export the complete series")
    return median


def read_pixels(items: list[SliceHeader]) -> tuple[np.ndarray, dict]:
    """Pixels [n, rows, cols] float32 with each slice's RescaleSlope/Intercept applied."""
    planes, rescales, decoders = [], set(), set()
    for item in items:
        ds = _full_dataset(item.path)
        slope, intercept = _rescale(ds, item.path)
        rescales.add((slope, intercept))
        try:
            pixels = ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(intercept)
            decoders.add("pydicom")
        except Exception as exc:
            pixels = _decode_with_sitk(item.path, ds, exc)  # GDCM applies the rescale itself
            decoders.add("SimpleITK")
        if pixels.shape != (ds.Rows, ds.Columns):
            raise ImageReadError(f"{item.path}: pixel data of shape {pixels.shape}, expected "
                                 f"({ds.Rows}, {ds.Columns}) single-channel; give a grey-scale MR series")
        planes.append(pixels)
    record = {"slope_intercept": [list(pair) for pair in sorted(rescales)], "decoder": sorted(decoders)}
    return np.stack(planes), record


def _rescale(ds: pydicom.Dataset, path: Path) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept); absent or empty: 1 and 0. NaN, infinite or a zero slope
    (every pixel the same value) is a damaged header."""
    values = []
    for tag, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        raw = ds.get(tag)
        if raw is None or str(raw).strip() == "":
            values.append(default)
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if not np.isfinite(value) or (tag == "RescaleSlope" and value == 0):
            what = "a finite, non-zero number" if tag == "RescaleSlope" else "a finite number"
            raise ImageReadError(f"{path.parent}: {tag} {str(raw)!r} in {path.name} is not {what}, so its pixel "
                                 "values cannot be recovered; the header is damaged: re-export the series")
        values.append(value)
    return values[0], values[1]


def _full_dataset(path: Path) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise ImageReadError(f"{path}: corrupt DICOM file ({type(exc).__name__}: {exc}); "
                             "re-export the series or remove this file") from None
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise ImageReadError(f"{path}: multi-frame (enhanced) DICOM is not supported; export "
                             "classic single-frame slices or convert to NIfTI (e.g. dcm2niix)")
    return ds


def _decode_with_sitk(path: Path, ds: pydicom.Dataset, error: Exception) -> np.ndarray:
    """Compressed pixel data pydicom has no codec for (e.g. JPEG Lossless) through SimpleITK/GDCM.

    Only for compressed transfer syntaxes: an uncompressed file pydicom cannot read is corrupt.
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    problem = f"cannot read the pixel data ({type(error).__name__}: {str(error).splitlines()[0]})"
    if syntax is None or not syntax.is_compressed:
        raise ImageReadError(f"{path}: {problem}; the file is corrupt; re-export the series") from None
    import SimpleITK as sitk

    try:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0].astype(np.float32)
    except Exception as exc:
        raise ImageReadError(f"{path}: {problem}, and SimpleITK failed too ({exc}); the pixel data is "
                             f"compressed as {syntax.name}: re-export the series uncompressed") from None

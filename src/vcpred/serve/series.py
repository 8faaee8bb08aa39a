"""What a study holds: its series (description, plane, slices), and the one the user chose.

DICOM series are found with the reader's own discovery (vcpred.imaging.dicom), NIfTI files and the
chosen series are read with vcpred.imaging.read_volume: no second reader. The chosen DICOM series
is copied into its own folder so that the prediction reads exactly one series, like
`vcpred predict --image-t2 FOLDER` would.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vcpred.errors import OrientationError
from vcpred.imaging import Volume, read_volume
from vcpred.imaging.dicom import discover_series
from vcpred.imaging.orient import plane_of


@dataclass
class SeriesEntry:
    """One series of a study. refused: why it cannot be used (None: usable)."""

    id: str
    description: str
    plane: str
    slices: int
    rows: int | None
    cols: int | None
    refused: str | None = None
    files: list[Path] = field(default_factory=list, repr=False)
    volume: Volume | None = field(default=None, repr=False)  # NIfTI: read once, at upload

    def public(self) -> dict:
        return {"id": self.id, "description": self.description, "plane": self.plane, "slices": self.slices,
                "rows": self.rows, "cols": self.cols, "usable": self.refused is None, "refused": self.refused}


def refusal(plane: str) -> str | None:
    if plane == "sagittal":
        return None
    if plane == "unknown":
        return ("the slices carry no ImageOrientationPatient, so the plane cannot be told; vcpred needs a "
                "sagittal series")
    return f"this is {'an' if plane == 'axial' else 'a'} {plane} series; vcpred reads sagittal series only"


def _plane(dataset) -> str:
    if "ImageOrientationPatient" not in dataset:
        return "unknown"
    iop = np.asarray(dataset.ImageOrientationPatient, dtype=float)
    return plane_of(np.cross(iop[:3], iop[3:]))


def dicom_series(folder: Path) -> list[SeriesEntry]:
    """Every image series under folder (ImageReadError for damaged files, as the reader says)."""
    groups, _ = discover_series(folder)
    ordered = sorted(groups.values(), key=lambda items: (int(items[0].dataset.get("SeriesNumber") or 0),
                                                          items[0].description))
    entries = []
    for number, items in enumerate(ordered, start=1):
        first = items[0].dataset
        plane = _plane(first)
        entries.append(SeriesEntry(f"s{number}", items[0].description or "(no description)", plane, len(items),
                                   int(first.get("Rows") or 0) or None, int(first.get("Columns") or 0) or None,
                                   refusal(plane), [item.path for item in items]))
    return entries


def nifti_series(path: Path) -> list[SeriesEntry]:
    """A NIfTI file is one series; read now (the display needs it anyway)."""
    try:
        volume = read_volume(path)
    except OrientationError as exc:
        plane = exc.plane or "not sagittal"
        return [SeriesEntry("s1", "NIfTI volume", plane, 0, None, None, refusal(plane) or str(exc))]
    slices, rows, cols = volume.shape
    return [SeriesEntry("s1", "NIfTI volume", "sagittal", slices, rows, cols, None, [path], volume)]


def isolate(entry: SeriesEntry, root: Path, dest: Path) -> Path:
    """The series' files copied (relative paths kept) into dest, a folder holding only this series."""
    if dest.exists():
        shutil.rmtree(dest)
    for path in entry.files:
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copyfile(path, target)
    return dest

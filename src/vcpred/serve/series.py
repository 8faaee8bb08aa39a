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


from vcpred.errors import OrientationError
from vcpred.imaging import Volume, read_volume
from vcpred.imaging.dicom import DeclaredTooLarge, discover_series, list_files
from vcpred.serve.errors import TooLarge
from vcpred.serve.limits import check_nifti, declared_frames_refusal, dicom_series_refusal
from vcpred.serve.settings import ServeSettings


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
    too_large: bool = False  # refused for the voxel budget
    identity: dict = field(default_factory=dict)  # patient, study date, series number (DICOM only)

    def public(self) -> dict:
        return {"id": self.id, "description": self.description, "plane": self.plane, "slices": self.slices,
                "rows": self.rows, "cols": self.cols, "usable": self.refused is None, "refused": self.refused,
                "identity": self.identity}


IDENTITY_TAGS = {"patient_name": "PatientName", "patient_id": "PatientID", "birth_date": "PatientBirthDate",
                 "study_date": "StudyDate", "study_description": "StudyDescription",
                 "series_number": "SeriesNumber", "series_date": "SeriesDate", "modality": "Modality"}


def _date(text: str) -> str:
    """DICOM DA (YYYYMMDD) as YYYY-MM-DD; anything else as found."""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def identity_of(dataset) -> dict:
    """What the page shows so the clinician can tell whose study is open: the patient's name and id,
    birth date, study date and description, series number (text, at most 64 characters each; shown
    in the page only, never logged)."""
    found = {}
    for key, tag in IDENTITY_TAGS.items():
        value = dataset.get(tag)
        text = "" if value is None else str(value).replace("^", " ").strip()
        if text:
            found[key] = (_date(text) if key.endswith("date") else text)[:64]
    return found


def refusal(plane: str) -> str | None:
    if plane == "sagittal":
        return None
    if plane == "unknown":
        return ("the slices carry no ImageOrientationPatient, so the plane cannot be told; vcpred needs a "
                "sagittal series")
    return f"this is {'an' if plane == 'axial' else 'a'} {plane} series; vcpred reads sagittal series only"


def _number(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def dicom_series(folder: Path, settings: ServeSettings, files: list[Path] | None = None) -> list[SeriesEntry]:
    """Every image series under folder (ImageReadError for damaged files, as the reader says); a
    series over the voxel budget (judged from the headers, read without pixels) is refused, and so
    is the whole folder when its headers declare more frames in all than the viewer reads (TooLarge).
    files: those of folder to read (default: all but hidden ones and DICOMDIR)."""
    try:
        files = list_files(folder) if files is None else files
        if too_many := declared_frames_refusal(files, settings):
            raise TooLarge(too_many)
        groups, _ = discover_series(folder, files)
    except DeclaredTooLarge as exc:  # a header declaring a huge file: the viewer's 413, like its own budget
        raise TooLarge(str(exc)) from None
    ordered = sorted(groups.values(), key=lambda items: (_number(items[0].dataset.get("SeriesNumber")),
                                                          items[0].description))
    entries = []
    for number, items in enumerate(ordered, start=1):
        first = items[0].dataset
        plane = items[0].plane
        reason = refusal(plane)
        too_large = None if reason else dicom_series_refusal([item.dataset for item in items], settings)
        entries.append(SeriesEntry(f"s{number}", items[0].description or "(no description)", plane, len(items),
                                   _number(first.get("Rows")) or None, _number(first.get("Columns")) or None,
                                   reason or too_large, [item.path for item in items], too_large=too_large is not None,
                                   identity=identity_of(first)))
    return entries


def nifti_series(path: Path, settings: ServeSettings) -> list[SeriesEntry]:
    """A NIfTI file is one series; its size is judged from its header (TooLarge), then it is read
    now (the display needs it anyway)."""
    check_nifti(path, settings)
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

"""One `vcpred annotate` session: the manifest's patients, their ROIs, progress, reading a patient's
image the way `vcpred prepare` does, and saving a box into the manifest (annotate_manifest.py).

The image shown is the patient's first `image_<sequence>` column (the grid `prepare` crops on),
read by `vcpred.imaging.read_volume` with the row's `series_<sequence>`: the same canonical volume,
so a saved box is in exactly the coordinates `prepare` and `predict` use (0-based, max exclusive).
Where the image holds several series, the page lists them (series_choices) and a choice is written
into the row's series_<sequence> cell as its short reference (choose_series; vcpred.cohort.series_choice).
A patient is excluded with a reason, or included again, through the row's `exclude` cell (exclude);
excluded patients are counted apart from the N to annotate. Each patient carries the row's `level` and
`label` (shown, never written), and once its image is read, a warning when the DICOM header names another
patient than the row (identity_warning).
"""

from __future__ import annotations

import contextlib
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from vcpred import locking
from vcpred.cohort.clinical_table import normalise_key
from vcpred.cohort.manifest import EXCLUDE_COLUMN, IMAGE_PREFIX, ROI_COLUMNS, SERIES_PREFIX, image_sequences, \
    is_missing, parse_int, read_manifest_table
from vcpred.cohort.series_choice import SeriesInfo, reference, resolve, unmatched
from vcpred.cohort.validate import FORMULA_ADVICE, NOT_A_REASON, runs_as_formula
from vcpred.errors import ImageReadError, ManifestError
from vcpred.serve.annotate_manifest import ManifestFile
from vcpred.serve.errors import NotReady, ServeError, StudyNotFound
from vcpred.serve.roi import check_box
from vcpred.serve.limits import check_shape
from vcpred.serve.series import IDENTITY_TAGS, SeriesEntry, identity_of
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import Study


class RowChanged(ServeError):
    """A save based on a version of the row that another save has replaced."""

    status = 409


class RoiOnAnotherSeries(ServeError):
    """Another series chosen for a patient whose ROI was placed on the one it has."""

    status = 409


class SeriesNotChosen(ServeError):
    """A series choice that names no single series of the patient's image, or cannot be written."""

    status = 422


class ReasonRefused(ServeError):
    """An exclusion reason `cohort check` would refuse, or no exclude column to write it into."""

    status = 422


MAX_REASON = 300  # characters: a reason is a short phrase, shown in every count of who was left out

# What a series cell written by annotate holds: a reference (20240105#3) or a UID, never anything the
# CSV would have to quote.
PLAIN_CELL = re.compile(r"^[0-9A-Za-z.#-]+$")


def lock_path(manifest: Path) -> Path:
    real = Path(manifest).resolve()  # one lock whatever link or relative path names the file
    return real.with_name(real.name + ".annotate.lock")


@contextlib.contextmanager
def annotation_lock(manifest: Path):
    """Held for the whole session: a second `vcpred annotate` on the same manifest exits 2 at once."""
    with locking.held(lock_path(manifest), f"manifest {manifest}",
                      " (another vcpred annotate session writes it; stop that one first)"):
        yield


@dataclass
class Patient:
    index: int
    line: int  # CSV row (header = 1)
    patient_id: str
    image: str  # as written in the manifest (relative to its folder)
    series: str | None
    cells: list[str]  # the five ROI cells as written
    shape: tuple[int, int, int] | None = None  # known once the image was read in this session
    version: int = 0  # saves of this row in this session: a save names the version it saw
    exclude: str = ""  # the row's exclusion reason ("" when the patient is included)
    level: str = ""  # the row's vertebral level (e.g. L1), "" when not recorded
    label: str = ""  # the row's label cell as written, "" when empty
    identity_warning: str = ""  # the image last read names another patient (identity_warning); page only

    @property
    def roi(self) -> dict | None:
        numbers = [parse_int(c) if c else None for c in self.cells]
        if any(n is None for n in numbers):
            return None
        return {"slice": numbers[0], "box": numbers[1:]}

    def public(self) -> dict:
        partly = self.roi is None and any(self.cells)
        return {"index": self.index, "patient_id": self.patient_id, "row": self.line, "roi": self.roi,
                "partly_filled": partly, "version": self.version, "series": self.series or "",
                "exclude": self.exclude, "level": self.level, "label": self.label,
                "identity_warning": self.identity_warning}


def annotated_sequence(path: Path, frame) -> str:
    """The sequence whose image is shown (the first image column); ManifestError when the manifest
    lacks a column annotate needs, or has no patient."""
    missing = [c for c in ("patient_id", *ROI_COLUMNS) if c not in frame.columns]
    sequences = image_sequences(list(frame.columns))
    if missing or not sequences:
        what = ", ".join(missing + ([] if sequences else ["an image_<sequence> column"]))
        raise ManifestError(f"manifest {path} has no {what}; vcpred annotate fills the roi_* columns of a "
                            "manifest that has them (vcpred cohort init writes them empty)")
    if frame.empty:
        raise ManifestError(f"manifest {path} has no patients (only its header row)")
    return sequences[0]


class AnnotateSession:
    """The patients of one manifest and the ROI saves into it (one save at a time)."""

    def __init__(self, manifest: ManifestFile, sequence: str, patients: list[Patient]):
        self.manifest, self.sequence, self.patients = manifest, sequence, patients
        self._saving = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> "AnnotateSession":
        """The session over a manifest; ManifestError (exit 2) when it cannot be annotated safely."""
        path = Path(path)
        table = read_manifest_table(path)  # unreadable: ManifestError naming the line
        if table.problems:
            listed = "; ".join(str(p) for p in table.problems[:3])
            raise ManifestError(f"manifest {path}: {listed}; fix the file first (vcpred cohort check lists every "
                                "problem)")
        frame = table.frame
        sequence = annotated_sequence(path, frame)
        manifest = ManifestFile(path)
        manifest.check_rows(frame)
        patients = [Patient(i, int(line), row["patient_id"], row[IMAGE_PREFIX + sequence],
                            row.get(SERIES_PREFIX + sequence) or None, manifest.roi_cells(int(line)),
                            exclude=_cell_text(row.get(EXCLUDE_COLUMN, "")), level=_cell_text(row.get("level", "")),
                            label=_cell_text(row.get("label", "")))
                    for i, (line, row) in enumerate(frame.iterrows())]
        return cls(manifest, sequence, patients)

    def patient(self, index: int) -> Patient:
        if not 0 <= index < len(self.patients):
            raise StudyNotFound(f"no patient number {index}; the manifest has {len(self.patients)}")
        return self.patients[index]

    def progress(self) -> dict:
        """Patients with a ROI among the N included ones; the excluded ones counted apart (they need none)."""
        included = [p for p in self.patients if not p.exclude]
        return {"annotated": sum(p.roi is not None for p in included), "total": len(included),
                "excluded": len(self.patients) - len(included)}

    def progress_text(self) -> str:
        done = self.progress()
        excluded = f" ({done['excluded']} excluded)" if done["excluded"] else ""
        return f"{done['annotated']} of {done['total']} patients annotated{excluded}"

    def public(self) -> dict:
        return {"manifest": self.manifest.path.name, "sequence": self.sequence, **self.progress(),
                "patients": [p.public() for p in self.patients]}

    def image_path(self, patient: Patient) -> Path:
        if not patient.image:
            raise ImageReadError(f"patient {patient.patient_id!r} has no {IMAGE_PREFIX}{self.sequence} image in the "
                                 "manifest")
        return (self.manifest.path.parent / patient.image).resolve()

    def load(self, index: int, study: Study, settings: ServeSettings) -> None:
        """Read the patient's image into the study as `prepare` reads it (per-patient errors: 422)."""
        from vcpred.imaging import read_volume
        from vcpred.imaging.io import series_header

        patient = self.patient(index)
        patient.identity_warning = ""  # until this image is read
        path = self.image_path(patient)
        volume = read_volume(path, series=patient.series)
        check_shape(volume.shape, settings, "the image", from_header=False)
        header = series_header(path, volume.provenance.get("series_uid")) if volume.provenance.get("series_uid") else None
        description = volume.provenance.get("series_description") or patient.image
        entry = SeriesEntry("s1", description, "sagittal", *volume.shape, files=[path], volume=volume,
                            identity=identity_of(header) if header is not None else {})
        study.root, study.series, study.chosen, study.image, study.volume = path.parent, [entry], entry, path, volume
        patient.shape = tuple(volume.shape)
        patient.identity_warning = identity_warning(patient.patient_id, entry.identity)

    def listed_series(self, patient: Patient) -> list[SeriesInfo]:
        """The DICOM series of the patient's image, from their headers (none for NIfTI or a path that is
        not there: opening the patient says what is wrong)."""
        from vcpred.cohort.from_dicom import list_series

        try:
            return list_series(self.image_path(patient))
        except (ImageReadError, ValueError, OSError):
            return []

    @property
    def series_column(self) -> str:
        return SERIES_PREFIX + self.sequence

    def series_choices(self, index: int) -> dict:
        """The patient's series as the page lists them: each with the reference that chooses it, what tells
        it apart, and whether it is the one the row's series cell (or, without one, the only series) reads."""
        patient = self.patient(index)
        listed = self.listed_series(patient)
        current = resolve(patient.series, listed) if patient.series else listed
        return {"column": self.series_column, "choice": patient.series or "",
                "series": [{"reference": reference(s, listed), "uid": s.uid, "study_date": s.date_shown,
                            "number": s.number, "description": s.description, "plane": s.plane, "slices": s.slices,
                            "chosen": current == [s]} for s in listed]}

    def choose_series(self, index: int, choice: str, version: int, *, clear_roi: bool = False) -> Patient:
        """Write the series `choice` names into the row's series cell (its reference). A patient whose ROI
        was placed on another series keeps both unless clear_roi (then its ROI cells are emptied too: a
        box belongs to the image it was drawn on). The chosen series is read when the patient is opened again."""
        patient = self.patient(index)
        listed = self.listed_series(patient)
        found = resolve(choice, listed)
        if len(found) != 1:
            raise SeriesNotChosen(f"patient {patient.patient_id!r}: {unmatched(choice, found, listed, 'of its image')}")
        written = reference(found[0], listed)
        column = self.manifest.header.index(self.series_column) if self.series_column in self.manifest.header else None
        if column is None:
            raise SeriesNotChosen(f"the manifest has no {self.series_column} column to write the choice into; add it "
                                  "(an empty column, as vcpred cohort init writes it) and start vcpred annotate again")
        if not PLAIN_CELL.match(written):
            raise SeriesNotChosen(f"the series {written!r} cannot be written into a manifest cell as it is; write "
                                  f"its description into {self.series_column} by hand")
        with self._saving:
            self._check_version(patient, version)
            had = resolve(patient.series, listed) if patient.series else listed
            clearing = any(patient.cells) and had != found
            if clearing and not clear_roi:
                placed = f"series {patient.series}" if patient.series else "the series read without a choice"
                raise RoiOnAnotherSeries(f"the ROI of {patient.patient_id!r} was placed on {placed}; choosing another "
                                         "series clears it (the page asks first); nothing was saved")
            changes = {column: written, **(dict.fromkeys(self.manifest.columns, "") if clearing else {})}
            self.manifest.save_cells(patient.line, changes)  # only these cells' bytes change
            if clearing:
                patient.cells = [""] * len(ROI_COLUMNS)
            patient.series, patient.version = written, patient.version + 1
            if had != found:
                patient.shape = None  # the image opened was another series: open the patient again
        return patient

    def exclude(self, index: int, reason: str, version: int) -> Patient:
        """Write `reason` into the row's exclude cell, "" to include the patient again (only that cell's
        bytes change; refused as `cohort check` would refuse it, or when the manifest has no such column)."""
        patient = self.patient(index)
        reason = checked_reason(reason)
        if EXCLUDE_COLUMN not in self.manifest.header:
            raise ReasonRefused(f"the manifest has no {EXCLUDE_COLUMN} column to write the reason into; add it (an "
                                f"empty column named {EXCLUDE_COLUMN}, docs/manifest.md) and start vcpred annotate again")
        with self._saving:
            self._check_version(patient, version)
            self.manifest.save_cells(patient.line, {self.manifest.header.index(EXCLUDE_COLUMN): reason})
            patient.exclude, patient.version = reason, patient.version + 1
        return patient

    def _check_version(self, patient: Patient, version: int) -> None:
        """RowChanged when another tab or client saved the row since the saving page read it."""
        if version != patient.version:
            now = patient.roi
            shown = f"slice {now['slice']}, box {now['box']}" if now else "no ROI"
            series = f", series {patient.series}" if patient.series else ""
            raise RowChanged(f"the ROI of {patient.patient_id!r} was saved from another tab or client since this "
                             f"page read it (it is now {shown}{series}); nothing was saved: reload the page to see "
                             "it, then save again")

    def save(self, index: int, roi_slice: int, box: tuple[int, int, int, int], version: int) -> Patient:
        """Write the patient's ROI into the manifest (the box checked against its image), if the row
        is still at the version the saving page saw (RowChanged otherwise: no silent overwrite of
        another tab's or client's save)."""
        patient = self.patient(index)
        if patient.shape is None:
            raise NotReady(f"open patient {patient.patient_id!r} first: the box is checked against the image")
        check_box(roi_slice, box, patient.shape)
        cells = [str(int(v)) for v in (roi_slice, *box)]
        with self._saving:
            self._check_version(patient, version)
            self.manifest.save_roi(patient.line, cells)
            patient.cells, patient.version = cells, patient.version + 1
        return patient



def _cell_text(cell: str) -> str:
    """The text a cell gives (an exclusion reason, a level), as `cohort check` reads it (NA, none...: none)."""
    return "" if is_missing(cell) else cell


def same_patient_id(a: str, b: str) -> bool:
    """Two ids of one patient, compared as `vcpred cohort merge-clinical` matches its keys
    (clinical_table.normalise_key): equal but for case and surrounding spaces, or the same digits
    (normalise: digits: the folder MRN_10231, the DICOM PatientID 10231 and 0010231 are one)."""
    if normalise_key(a, "casefold") == normalise_key(b, "casefold"):
        return True
    digits = normalise_key(a, "digits")
    return bool(digits) and digits == normalise_key(b, "digits")


def identity_warning(patient_id: str, identity: dict) -> str:
    """"" when the header (serve.series.identity_of) names the manifest's patient, else the warning the page
    shows. The PatientID decides; the PatientName only where the file has no PatientID (so a real name is
    compared, and shown, only then); a file naming no patient gives none (the viewer says so). The text
    may hold the name: it goes to the page, never into a log."""
    key = "patient_id" if identity.get("patient_id") else "patient_name"
    found = identity.get(key)
    if not found or same_patient_id(patient_id, found):
        return ""
    return (f"DICOM {IDENTITY_TAGS[key]} {found} differs from the manifest's patient id {patient_id}: check this is "
            "the right patient's series")


def checked_reason(text: str) -> str:
    """The reason as it will be written (surrounding spaces dropped; "" includes the patient again);
    ReasonRefused for one `cohort check` would refuse or not read as a reason."""
    reason = text.strip()
    if not reason:
        return ""
    if any(unicodedata.category(c) == "Cc" for c in reason):
        raise ReasonRefused("the reason must be one line of text, without line breaks or tabs")
    if len(reason) > MAX_REASON:
        raise ReasonRefused(f"the reason has {len(reason)} characters; write it in at most {MAX_REASON} characters")
    if reason.lower() in NOT_A_REASON:
        raise ReasonRefused(f"exclude {reason!r} reads as a yes/no mark, not a reason: write why the patient is left "
                            "out (e.g. 'series misses a slice')")
    if is_missing(reason):
        raise ReasonRefused(f"exclude {reason!r} reads as an empty cell, so the patient would stay included: write why "
                            "the patient is left out (e.g. 'series misses a slice')")
    if runs_as_formula(reason):
        raise ReasonRefused(f"exclude {reason!r} {FORMULA_ADVICE}")
    return reason

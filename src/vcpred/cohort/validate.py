"""Validate a manifest row by row, collecting every problem, and build the Cohort."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vcpred.cohort.clinical_policy import clinical_columns, stray_cells_problem, value_refusal
from vcpred.cohort.manifest import (
    DEFAULT_HEIGHT_LOSS,
    EXCLUDE_COLUMN,
    HEIGHT_COLUMNS,
    IMAGE_PREFIX,
    ROI_COLUMNS,
    SERIES_PREFIX,
    SETS,
    Cohort,
    ExcludedPatient,
    PatientRecord,
    Problem,
    Roi,
    image_sequences,
    is_missing,
    is_number,
    parse_float,
    parse_int,
    read_manifest_table,
)
from vcpred.errors import ManifestError
from vcpred.hashing import input_digest, input_sizes


@dataclass
class ManifestCheck:
    """The outcome of checking a manifest: the cohort (when clean), every problem found, and the
    patients its `exclude` column leaves out (listed whether or not there are problems)."""

    table: pd.DataFrame
    problems: list[Problem]
    cohort: Cohort | None
    excluded: list[ExcludedPatient] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _RowChecker:
    """Parses one CSV row into a PatientRecord, appending problems instead of raising."""

    def __init__(self, base_dir: Path, sequences: list[str], clinical: dict[str, str],
                 columns: set[str], height_loss: float, check_files: bool, per_patient_clinical: bool = False):
        self.base_dir = base_dir
        self.per_patient_clinical = per_patient_clinical
        self.sequences = sequences
        self.clinical = clinical
        self.columns = columns
        self.height_loss = height_loss
        self.check_files = check_files
        self.problems: list[Problem] = []
        self.without_roi: list[str] = []  # patients whose ROI cells are all empty (not placed yet)

    def problem(self, row: int, pid: str | None, column: str | None, message: str) -> None:
        self.problems.append(Problem(row, column, message, pid))

    def identity(self, row: int, cells: dict[str, str]) -> tuple[str, str]:
        """The row's patient_id and set, checked (also for an excluded row: the flow counts it per set)."""
        pid = cells.get("patient_id", "")
        if not pid:
            self.problem(row, None, "patient_id", "patient_id is empty")
        set_name = cells.get("set", "")
        if "set" in self.columns and set_name not in SETS:
            self.problem(row, pid, "set", f"unknown set {set_name!r}; use one of {', '.join(SETS)}")
        self.formulas(row, pid, cells)
        return pid, set_name

    def excluded(self, row: int, cells: dict[str, str], reason: str) -> ExcludedPatient | None:
        """A row with a reason in `exclude`: only its id, set and reason are checked; its images, ROI,
        label, heights and clinical values are never read (the image may be the reason)."""
        before = len(self.problems)
        pid, set_name = self.identity(row, cells)
        if reason.lower() in NOT_A_REASON:
            self.problem(row, pid, EXCLUDE_COLUMN, f"exclude {reason!r} reads as a yes/no mark, not a reason: write "
                                                   "why the patient is left out (e.g. 'series misses a slice'), or "
                                                   "empty the cell to include the patient")
        return None if len(self.problems) > before else ExcludedPatient(pid, set_name, reason, row)

    def record(self, row: int, cells: dict[str, str]) -> PatientRecord | None:
        before = len(self.problems)
        pid, set_name = self.identity(row, cells)
        label = self.label(row, pid, cells, set_name)
        images = self.images(row, pid, cells)
        roi = self.roi(row, pid, cells)
        self.numbers(row, pid, cells)
        if len(self.problems) > before or roi is None:
            return None
        series = {s: cells[SERIES_PREFIX + s] for s in self.sequences if cells.get(SERIES_PREFIX + s)}
        return PatientRecord(
            patient_id=pid, set=set_name, label=label, images=images, roi=roi, series=series,
            level=cells.get("level") or None, site=cells.get("site") or None,
            clinical={c: self.clinical_value(c, cells[c], kind) for c, kind in self.clinical.items()},
            row=row,
        )

    def formulas(self, row: int, pid: str, cells: dict[str, str]) -> None:
        """The identifying cells vcpred copies into the CSV files it writes must not run as formulas."""
        for column in COPIED_TEXT_COLUMNS:
            text = cells.get(column, "")
            if runs_as_formula(text):
                self.problem(row, None if column == "patient_id" else pid, column,
                             f"{column} {text!r} {FORMULA_ADVICE}")

    def label(self, row: int, pid: str, cells: dict[str, str], set_name: str) -> int | None:
        text = cells.get("label", "")
        if not is_missing(text):
            value = parse_float(text)
            if value not in (0.0, 1.0):
                self.problem(row, pid, "label", f"label {text!r} is not 0 or 1")
                return None
            return int(value)
        label = self.label_from_heights(row, pid, cells)
        if label is None and set_name == "development" and not self.problems_for(row, "height"):
            self.problem(row, pid, "label", "development patient without a label "
                         "(give label 0/1, or height_initial and height_followup)")
        return label

    def problems_for(self, row: int, column_prefix: str) -> bool:
        return any(p.row == row and (p.column or "").startswith(column_prefix) for p in self.problems)

    def label_from_heights(self, row: int, pid: str, cells: dict[str, str]) -> int | None:
        texts = [cells.get(c, "") for c in HEIGHT_COLUMNS]
        if all(is_missing(t) for t in texts):
            return None
        heights: list[float] = []
        for column, text in zip(HEIGHT_COLUMNS, texts):
            value = parse_float(text)
            if value is None or value <= 0:
                self.problem(row, pid, column, f"{text!r} is not a positive height in mm")
            else:
                heights.append(value)
        if len(heights) < len(HEIGHT_COLUMNS):
            return None
        initial, followup = heights
        return int((initial - followup) / initial >= self.height_loss)

    def images(self, row: int, pid: str, cells: dict[str, str]) -> dict[str, Path]:
        images = {}
        for sequence in self.sequences:
            column = IMAGE_PREFIX + sequence
            text = cells.get(column, "")
            if not text:
                self.problem(row, pid, column, f"no {sequence} image given")
                continue
            try:
                path = (self.base_dir / text).resolve()
            except (RuntimeError, OSError):  # a loop of links: RuntimeError before Python 3.13, ELOOP after
                self.problem(row, pid, column, f"{text} is a loop of symbolic links (looked for "
                                               f"{self.base_dir / text}); point it at the image file")
                continue
            if self.check_files and not path.exists():
                self.problem(row, pid, column, f"file not found: {text} (looked for {path})")
            elif self.check_files:
                self.image_format(row, pid, column, text, path)
            images[sequence] = path
        return images

    def image_format(self, row: int, pid: str, column: str, text: str, path: Path) -> None:
        """The path is something `prepare` reads (the same judgement, vcpred.imaging.formats)."""
        from vcpred.imaging.formats import image_kind

        try:
            image_kind(path)
        except ValueError as exc:
            self.problem(row, pid, column, f"{text}: {exc}")

    def roi(self, row: int, pid: str, cells: dict[str, str]) -> Roi | None:
        if all(c in self.columns for c in ROI_COLUMNS) and all(is_missing(cells[c]) for c in ROI_COLUMNS):
            self.without_roi.append(pid or f"row {row}")  # reported once for all such patients
            return None
        values = {}
        for column in ROI_COLUMNS:
            if column not in self.columns:
                continue
            value = parse_int(cells[column])
            if value is None:
                self.problem(row, pid, column, f"{cells[column]!r} is not a whole number")
            elif value < 0:
                self.problem(row, pid, column, f"{value} is negative (coordinates are 0-based)")
            else:
                values[column] = value
        if len(values) < len(ROI_COLUMNS):
            return None
        roi: Roi | None = Roi(*(values[c] for c in ROI_COLUMNS))
        for lo, hi in (("roi_row_min", "roi_row_max"), ("roi_col_min", "roi_col_max")):
            if values[lo] >= values[hi]:
                self.problem(row, pid, hi, f"{hi} {values[hi]} must be greater than {lo} {values[lo]}")
                roi = None
        return roi

    def numbers(self, row: int, pid: str, cells: dict[str, str]) -> None:
        """Numeric clinical cells under the clinical-value policy (vcpred.cohort.clinical_policy): finite
        (`inf`, `1e400` are not), within the limits of the columns vcpred knows (age 500 is impossible).
        A cell that is not a number at all is its column's problem (stray_cells_problem)."""
        if self.per_patient_clinical:
            return
        for column, kind in self.clinical.items():
            text = cells.get(column, "")
            if kind != "numeric" or is_missing(text) or not is_number(text):
                continue
            value = parse_float(text)
            refusal = f"{text!r} is not a finite number" if value is None else value_refusal(column, value)
            if refusal:
                self.problem(row, pid, column, f"{refusal}; correct the value, or leave the cell empty when it "
                                               "is unknown")

    @staticmethod
    def clinical_value(column: str, text: str, kind: str) -> float | str | None:
        """The typed value; a cell the policy refuses (kept only with per_patient_clinical) as written,
        for the caller to refuse that patient (predict's check_clinical names it)."""
        if is_missing(text):
            return None
        if kind != "numeric":
            return text
        value = parse_float(text)
        return value if value is not None and value_refusal(column, value) is None else text


# A cell beginning with one of these is a formula to spreadsheet software (OWASP, "CSV injection"):
# `=HYPERLINK(...)` as a patient id would run when predictions.csv is opened in Excel or LibreOffice.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The manifest's text that reaches the CSV files vcpred writes (predictions, evaluations, per-site
# tables). Refused here rather than altered on writing: vcpred reads its own CSV files back and joins
# them on patient_id, and the manifest itself is edited in spreadsheets.
COPIED_TEXT_COLUMNS = ("patient_id", "site", "level", EXCLUDE_COLUMN)
# An `exclude` cell holding one of these is a mark, not a reason: refused rather than guessed at
# ("no" read as a reason would leave the patient out).
NOT_A_REASON = {"0", "1", "yes", "no", "y", "n", "true", "false", "x", "-"}
FORMULA_ADVICE = ("begins with a character that makes spreadsheet software run it as a formula (= + - @, a tab "
                  "or a carriage return) when it opens the CSV files vcpred writes; rename it")


def runs_as_formula(text: str) -> bool:
    """Whether spreadsheet software would treat the cell as a formula; a number such as -2.5 is a number."""
    return text.startswith(FORMULA_STARTS) and not is_number(text)


def _column_problems(columns: list[str], sequences: list[str]) -> list[Problem]:
    problems = [Problem(None, column, f"the column name {FORMULA_ADVICE}") for column in columns
                if runs_as_formula(column)]
    for column in ("patient_id", "set", *ROI_COLUMNS):
        if column not in columns:
            problems.append(Problem(None, column, "required column is missing"))
    if not sequences:
        problems.append(Problem(None, None, "no image column: add at least one image_<sequence> "
                                            "column, e.g. image_t2"))
    for column in columns:
        if column.startswith(SERIES_PREFIX) and column[len(SERIES_PREFIX):] not in sequences:
            problems.append(Problem(None, column, f"a series column without its image column "
                                                  f"{IMAGE_PREFIX}{column[len(SERIES_PREFIX):]}"))
    has_heights = all(c in columns for c in HEIGHT_COLUMNS)
    if "label" not in columns and not has_heights:
        problems.append(Problem(None, "label", "no label column, and no height_initial + "
                                               "height_followup to derive it from"))
    return problems


def file_name_key(pid: str) -> str:
    """What a case-insensitive, normalisation-insensitive file system (macOS, Windows) makes of an id
    used as a file name: EXT0001 and ext0001, NFC and NFD café, are one name there."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", pid).lower())


def _duplicate_problems(table: pd.DataFrame) -> list[Problem]:
    """Repeated ids, and ids that differ only in case or Unicode normalisation (the store and runs
    write one file per patient named by its id: on macOS or Windows one would replace the other)."""
    problems: list[Problem] = []
    first_row: dict[str, int] = {}
    first_of_name: dict[str, tuple[int, str]] = {}
    for row, pid in zip(table.index, table.get("patient_id", [])):
        if pid and pid in first_row:
            problems.append(Problem(row, "patient_id", f"duplicate patient_id, first on row "
                                                       f"{first_row[pid]}", pid))
        elif pid and file_name_key(pid) in first_of_name:
            other_row, other = first_of_name[file_name_key(pid)]
            problems.append(Problem(row, "patient_id", f"patient_id {pid!r} and {other!r} on row {other_row} differ "
                                                       "only in upper/lower case or Unicode normalisation; vcpred "
                                                       "names each patient's files by its id, and macOS and Windows "
                                                       "take these as one name: rename one", pid))
        first_row.setdefault(pid, row)
        if pid:
            first_of_name.setdefault(file_name_key(pid), (row, pid))
    return problems


def _same_image_problems(records: list[PatientRecord]) -> list[Problem]:
    """A problem on each row whose image input (with its series choice) is, byte for byte, another
    patient's: one patient under two ids, or an image filed under the wrong patient."""
    return [_same_image_problem(record, sequence, same) for same in same_image_groups(records)
            for record, sequence in same]


def same_image_groups(records: list[PatientRecord]) -> list[list[tuple[PatientRecord, str]]]:
    """The image inputs (record, sequence) that are, byte for byte (with their series choice), those
    of another patient, grouped by identical content, in the records' order; `vcpred validate` leaves
    all but the first patient of a group unscored. Only inputs of equal sizes
    (vcpred.hashing.input_sizes, from stat) are hashed; empty or missing ones never match."""
    by_size: dict[tuple, list[tuple[PatientRecord, str]]] = {}
    for record in records:
        for sequence, path in record.images.items():
            sizes = input_sizes(path)
            if sizes is not None:
                by_size.setdefault((sizes, record.series.get(sequence)), []).append((record, sequence))
    groups = []
    for candidates in by_size.values():
        if len({record.patient_id for record, _ in candidates}) < 2:
            continue
        by_digest: dict[str, list[tuple[PatientRecord, str]]] = {}
        for record, sequence in candidates:
            if digest := input_digest(record.images[sequence]):
                by_digest.setdefault(digest, []).append((record, sequence))
        groups += [same for same in by_digest.values() if len({record.patient_id for record, _ in same}) > 1]
    return groups


def _same_image_problem(record: PatientRecord, sequence: str, same: list[tuple[PatientRecord, str]]) -> Problem:
    others = list({other.patient_id: other for other, _ in same if other.patient_id != record.patient_id}.values())
    named = " and ".join(f"patient {o.patient_id!r} (row {o.row}, label {_label_text(o.label)})" for o in others)
    opposite = next((o for o in others if None not in (o.label, record.label) and o.label != record.label), None)
    labels = (f"; the labels are opposite ({record.label} here, {opposite.label} on row {opposite.row}), so one of "
              "them is wrong" if opposite else "")
    other = "the other" if len(others) == 1 else "each other"
    return Problem(record.row, IMAGE_PREFIX + sequence, f"the same image files as {named}: one patient under "
                   f"{len(others) + 1} ids, or an image filed under the wrong patient{labels}; if they are one patient, "
                   f"keep one row and write a reason into {other}'s exclude cell (e.g. 'duplicate of "
                   f"{record.patient_id}'), otherwise point each row at its own images", record.patient_id)


def _label_text(label: int | None) -> str:
    return "unknown" if label is None else str(label)


def _roi_problems(without_roi: list[str]) -> list[Problem]:
    """One problem naming every patient whose ROI is not placed yet (a manifest from `cohort init`)."""
    if not without_roi:
        return []
    return [Problem(None, None, f"{len(without_roi)} patient(s) without ROI (roi_slice and box empty): "
                                f"{', '.join(without_roi)}; place each box on the canonical sagittal display "
                                "(docs/manifest.md) and fill the roi_ columns")]


def _stray_problems(strays: dict[str, list[tuple[int, str]]], ragged: set[int]) -> list[Problem]:
    """One problem per numeric column naming its cells that are not numbers (`24,5`, `=1+2`): the
    column stays numeric (rows with the wrong cell count are reported for that alone)."""
    problems = []
    for column, cells in strays.items():
        cells = [(row, text) for row, text in cells if row not in ragged]
        if cells:
            problems.append(Problem(None, column, stray_cells_problem(column, cells)))
    return problems


def check_manifest(path: str | Path, *, height_loss_threshold: float = DEFAULT_HEIGHT_LOSS,
                   check_files: bool = True, per_patient_clinical: bool = False,
                   compare_images: bool = True) -> ManifestCheck:
    """Check a manifest and collect every problem with its CSV row (header = row 1).

    Never raises for problems inside the file; raises ManifestError only when the file itself
    cannot be read as comma-separated CSV (also when it is separated by semicolons or tabs).
    per_patient_clinical: a clinical value the policy refuses (impossible, not finite, text in a numeric
    column) is no problem of the manifest's but kept as written in its record, for a command that
    predicts patient by patient to refuse that patient alone (predict --manifest).
    compare_images (with check_files): two included patients with identical image files are a problem on
    each one's row (False for a command that predicts patient by patient, where they are harmless).
    """
    if not 0 < height_loss_threshold < 1:
        raise ManifestError(f"height-loss threshold must be between 0 and 1, got {height_loss_threshold}")
    path = Path(path)
    parsed = read_manifest_table(path)
    table = parsed.frame
    columns = list(table.columns)
    sequences = image_sequences(columns)
    problems = parsed.problems + _column_problems(columns, sequences)
    if len(table) == 0:
        problems.append(Problem(None, None, "the manifest has no patient rows"))
    reasons = exclusions(table, parsed.ragged)
    # excluded rows neither decide a column's kind nor raise clinical-value problems
    clinical = clinical_columns(table.drop(index=list(reasons)))
    if not per_patient_clinical:
        problems += _stray_problems(clinical.strays, parsed.ragged)
    checker = _RowChecker(path.parent.resolve(), sequences, clinical.kinds, set(columns),
                          height_loss_threshold, check_files, per_patient_clinical)
    records, excluded = [], []
    for row, cells in zip(table.index, table.to_dict("records")):
        if row in parsed.ragged:  # its cells may sit in the wrong columns: only the cell count is reported
            continue
        if row in reasons:
            patient = checker.excluded(int(row), cells, reasons[row])
            excluded += [patient] if patient else []
            continue
        record = checker.record(int(row), cells)
        if record is not None:
            records.append(record)
    problems += checker.problems + _duplicate_problems(table) + _roi_problems(checker.without_roi)
    if check_files and compare_images:
        problems += _same_image_problems(records)
    problems.sort(key=lambda p: (p.row or 0))
    derived = "label" not in columns or any(is_missing(v) for row, v in zip(table.index, table.get("label", []))
                                             if row not in reasons)
    cohort = None if problems else Cohort(
        path.resolve(), records, sequences, clinical.kinds,
        height_loss_threshold if derived and all(c in columns for c in HEIGHT_COLUMNS) else None, excluded)
    return ManifestCheck(table, problems, cohort, excluded)


def exclusions(table: pd.DataFrame, ragged: set[int]) -> dict[int, str]:
    """{CSV row: reason} of the rows whose `exclude` cell is not empty (NA, none: empty); a ragged row's
    cells may sit in the wrong columns, so it is never taken as excluded."""
    return {int(row): text for row, text in zip(table.index, table.get(EXCLUDE_COLUMN, []))
            if not is_missing(text) and row not in ragged}


def load_manifest(path: str | Path, *, height_loss_threshold: float = DEFAULT_HEIGHT_LOSS,
                  check_files: bool = True, per_patient_clinical: bool = False, compare_images: bool = True) -> Cohort:
    """Read a manifest into a Cohort; ManifestError listing every problem when it is not clean
    (per_patient_clinical, compare_images: see check_manifest)."""
    result = check_manifest(path, height_loss_threshold=height_loss_threshold, check_files=check_files,
                            per_patient_clinical=per_patient_clinical, compare_images=compare_images)
    if result.problems:
        listing = "\n  ".join(str(p) for p in result.problems)
        raise ManifestError(f"{path}: {len(result.problems)} problem(s); run `vcpred cohort check "
                            f"{path}`\n  {listing}")
    assert result.cohort is not None  # a manifest without problems always gives a cohort
    return result.cohort

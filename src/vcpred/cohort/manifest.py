"""The cohort manifest: one CSV row per patient (schema in docs/manifest.md).

Reading never stops at the first problem: every problem is collected with its CSV row so a user
can fix the whole file in one pass.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vcpred.errors import ManifestError

if TYPE_CHECKING:  # the records are read without pandas (vcpred predict's first seconds)
    import pandas as pd

SETS = ("development", "external")
ROI_COLUMNS = ("roi_slice", "roi_row_min", "roi_col_min", "roi_row_max", "roi_col_max")
IMAGE_PREFIX = "image_"
SERIES_PREFIX = "series_"  # series_<sequence>: this patient's SeriesInstanceUID or SeriesDescription
HEIGHT_COLUMNS = ("height_initial", "height_followup")
EXCLUDE_COLUMN = "exclude"  # a non-empty cell is why the patient is left out of every step
RESERVED = {"patient_id", "set", "label", "level", "site", EXCLUDE_COLUMN, *ROI_COLUMNS, *HEIGHT_COLUMNS}
MISSING_TOKENS = {"", "na", "nan", "n/a", "none", "null"}
DEFAULT_HEIGHT_LOSS = 0.15


@dataclass(frozen=True)
class Roi:
    """Box around the fractured vertebral body on its central sagittal slice.

    Canonical sagittal display, 0-based, max exclusive: slice runs patient right -> left,
    rows superior -> inferior, columns anterior -> posterior.
    """

    slice: int
    row_min: int
    col_min: int
    row_max: int
    col_max: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.row_min, self.col_min, self.row_max, self.col_max)


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    set: str
    label: int | None
    images: dict[str, Path]  # sequence name (e.g. "t2") -> absolute path
    roi: Roi
    level: str | None = None
    site: str | None = None
    clinical: dict[str, float | str | None] = field(default_factory=dict)
    row: int = 0  # line in the CSV file (header = line 1)
    series: dict[str, str] = field(default_factory=dict)  # sequence -> series UID or description (DICOM)


@dataclass(frozen=True)
class ExcludedPatient:
    """A manifest row whose `exclude` cell gives a reason: kept aside, with that reason, for the
    summaries and the participant flow; no command reads its images, label or clinical values."""

    patient_id: str
    set: str
    reason: str
    row: int = 0  # line in the CSV file (header = line 1)

    def __str__(self) -> str:
        return f"{self.patient_id} (row {self.row}, {self.set or 'no set'}): {self.reason}"


@dataclass
class Cohort:
    manifest_path: Path
    records: list[PatientRecord]  # the included patients: every command works on these alone
    sequences: list[str]
    clinical_columns: dict[str, str]  # column -> "numeric" | "categorical"
    height_loss_threshold: float | None = None  # set when labels were derived from heights
    excluded: list[ExcludedPatient] = field(default_factory=list)  # rows with a reason in `exclude`

    def __post_init__(self) -> None:
        self._by_id = {r.patient_id: r for r in self.records}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, patient_id: str) -> PatientRecord:
        try:
            return self._by_id[patient_id]
        except KeyError:
            excluded = next((e for e in self.excluded if e.patient_id == patient_id), None)
            if excluded is not None:
                raise ManifestError(f"patient {patient_id!r} is excluded in {self.manifest_path} (row {excluded.row}, "
                                    f"exclude: {excluded.reason!r}); empty its exclude cell to include it") from None
            raise ManifestError(f"patient {patient_id!r} is not in {self.manifest_path}") from None

    def ids(self, set_name: str | None = None) -> list[str]:
        """Patient ids in manifest order, optionally only those of one set."""
        return [r.patient_id for r in self.records if set_name in (None, r.set)]

    def subset(self, set_name: str) -> list[PatientRecord]:
        return [r for r in self.records if r.set == set_name]


@dataclass(frozen=True)
class Problem:
    row: int | None  # CSV line, None for whole-file problems
    column: str | None
    message: str
    patient_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.patient_id:
            where.append(f"patient {self.patient_id!r}")
        if self.column:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where) or 'manifest'}: {self.message}"


DELIMITER_NAMES = {";": "semicolon", "\t": "tab", "|": "vertical bar"}


@dataclass
class Table:
    """A manifest as read: `frame` holds text cells (empty cells stay empty strings), indexed by CSV
    row (header = row 1); `problems` are file-level and row-level layout problems (duplicate column
    names, rows with more or fewer cells than the header); `ragged` the rows with the wrong cell count,
    whose cells cannot be trusted to sit in their columns."""

    frame: pd.DataFrame
    problems: list[Problem]
    ragged: set[int]


def _delimiter_problem(path: Path, header_line: str) -> str | None:
    """A message when the header is clearly separated by something other than commas."""
    counts = {d: header_line.count(d) for d in DELIMITER_NAMES}
    found = max(counts, key=counts.__getitem__)
    if counts[found] == 0 or counts[found] <= header_line.count(","):
        return None
    name = DELIMITER_NAMES[found]
    return (f"manifest {path} is separated by {name}s, not commas (its header line has {counts[found]} "
            f"{name}s and {header_line.count(',')} commas); vcpred reads comma-separated CSV: save it again as "
            "CSV with commas as separators (Excel: 'CSV UTF-8 (Comma delimited)'; LibreOffice: field "
            "delimiter ',')")


def _header_problems(header: list[str], columns: list[list[str]]) -> tuple[list[int], list[Problem]]:
    """Positions of the columns to keep and problems: duplicate names; unnamed columns holding values
    (an unnamed column that is empty everywhere, e.g. from a trailing comma, is dropped silently)."""
    keep, problems = [], []
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(header):
        positions.setdefault(name, []).append(index)
    for index, name in enumerate(header):
        if not name:
            if any(column[index] for column in columns):
                problems.append(Problem(None, None, f"column {index + 1} holds values but has no name in the "
                                                    "header; name it or remove it"))
            continue
        where = positions[name]
        if where[0] == index:
            keep.append(index)
            if len(where) > 1:
                numbers = [str(i + 1) for i in where]
                listing = f"{', '.join(numbers[:-1])} and {numbers[-1]}"
                times = "twice" if len(where) == 2 else f"{len(where)} times"
                problems.append(Problem(None, name, f"the header names this column {times} (columns "
                                                    f"{listing}); rename or remove one"))
    return keep, problems


def read_manifest_table(path: str | Path) -> Table:
    """Read the manifest CSV with its layout problems (see Table); ManifestError when the file cannot
    be read as a comma-separated table at all."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {path} is not a readable CSV file: {exc}; save it as UTF-8 CSV") from None
    except OSError as exc:
        raise ManifestError(f"manifest {path} cannot be read: {exc.strerror or exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    records: list[tuple[int, list[str]]] = []
    try:
        start = 1
        for cells in reader:
            if any(c.strip() for c in cells):  # blank lines and rows of empty cells are skipped
                records.append((start, [c.strip() for c in cells]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ManifestError(f"manifest {path} is not a readable CSV file: line {reader.line_num}: {exc}") from None
    if not records:
        raise ManifestError(f"manifest {path} is not a readable CSV file: it is empty (no header row)")
    (_, header), body = records[0], records[1:]
    delimiter = _delimiter_problem(path, text.lstrip().splitlines()[0] if text.strip() else "")
    if delimiter:
        raise ManifestError(delimiter)
    width, problems, ragged, rows = len(header), [], set(), []
    pid_at = header.index("patient_id") if "patient_id" in header else None
    for row, cells in body:
        if len(cells) != width:
            ragged.add(row)
            hint = ("a comma inside a value? quote the value or remove the comma" if len(cells) > width
                    else "a missing comma?")
            pid = cells[pid_at] if pid_at is not None and pid_at < len(cells) else None
            problems.append(Problem(row, None, f"{len(cells)} cells but the header has {width} columns; {hint}",
                                    pid or None))
        rows.append((cells + [""] * width)[:width])
    keep, header_problems = _header_problems(header, [list(c) for c in zip(*rows)] if rows else
                                             [[] for _ in header])
    frame = pd.DataFrame([[r[i] for i in keep] for r in rows], columns=[header[i] for i in keep],
                         index=[row for row, _ in body], dtype=object)
    if not rows:
        frame = pd.DataFrame({header[i]: pd.Series(dtype=object) for i in keep})
    return Table(frame, header_problems + problems, ragged)


def read_table(path: str | Path) -> pd.DataFrame:
    """The manifest as strings indexed by CSV row (layout problems: read_manifest_table)."""
    return read_manifest_table(path).frame


def is_missing(value: str) -> bool:
    return value.strip().lower() in MISSING_TOKENS


def parse_float(value: str) -> float | None:
    """A finite float, or None when the text is not one."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def is_number(value: str) -> bool:
    """True for any text Python reads as a float, finite or not ('inf', '1e400')."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def parse_int(value: str) -> int | None:
    """An integer (also written as 12.0), or None."""
    number = parse_float(value)
    if number is None or number != int(number):
        return None
    return int(number)


def image_sequences(columns: list[str]) -> list[str]:
    return [c[len(IMAGE_PREFIX):] for c in columns if c.startswith(IMAGE_PREFIX) and len(c) > len(IMAGE_PREFIX)]

"""The cohort manifest: one CSV row per patient (schema in docs/manifest.md).

Reading never stops at the first problem: every problem is collected with its CSV row so a user
can fix the whole file in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vcpred.errors import ManifestError

SETS = ("development", "external")
ROI_COLUMNS = ("roi_slice", "roi_row_min", "roi_col_min", "roi_row_max", "roi_col_max")
IMAGE_PREFIX = "image_"
HEIGHT_COLUMNS = ("height_initial", "height_followup")
RESERVED = {"patient_id", "set", "label", "level", "site", *ROI_COLUMNS, *HEIGHT_COLUMNS}
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


@dataclass
class Cohort:
    manifest_path: Path
    records: list[PatientRecord]
    sequences: list[str]
    clinical_columns: dict[str, str]  # column -> "numeric" | "categorical"
    height_loss_threshold: float | None = None  # set when labels were derived from heights

    def __post_init__(self) -> None:
        self._by_id = {r.patient_id: r for r in self.records}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, patient_id: str) -> PatientRecord:
        try:
            return self._by_id[patient_id]
        except KeyError:
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


def read_table(path: str | Path) -> pd.DataFrame:
    """The manifest as strings, untouched (empty cells stay empty strings)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist or is not a file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {path} is not a readable CSV file: {exc}") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.map(str.strip)


def is_missing(value: str) -> bool:
    return value.strip().lower() in MISSING_TOKENS


def parse_float(value: str) -> float | None:
    """A finite float, or None when the text is not one."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_int(value: str) -> int | None:
    """An integer (also written as 12.0), or None."""
    number = parse_float(value)
    if number is None or number != int(number):
        return None
    return int(number)


def image_sequences(columns: list[str]) -> list[str]:
    return [c[len(IMAGE_PREFIX):] for c in columns if c.startswith(IMAGE_PREFIX) and len(c) > len(IMAGE_PREFIX)]


def clinical_kinds(table: pd.DataFrame) -> dict[str, str]:
    """Every non-reserved column is clinical; numeric when all its non-missing cells are numbers."""
    kinds = {}
    for column in table.columns:
        if column in RESERVED or column.startswith(IMAGE_PREFIX):
            continue
        present = [v for v in table[column] if not is_missing(v)]
        numeric = all(parse_float(v) is not None for v in present)
        kinds[column] = "numeric" if numeric else "categorical"
    return kinds

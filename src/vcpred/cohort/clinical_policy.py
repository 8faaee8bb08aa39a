"""The one clinical-value policy of vcpred, wherever a clinical value is read: the manifest (`cohort
check`, so every command that loads a manifest: training, prepare, export, ...), the clinical features
training fits (`models.clinical`), `vcpred predict` and the viewer (`predict.clinical_input`, whose form
carries these limits to the page's own checks).

- A numeric value is a finite number: `inf`, `NaN`, `1e400` are not.
- The columns vcpred knows have physical limits (LIMITS): age above 0 and at most 125 years, BMI 7-150
  kg/m², days from fracture to MRI 0-36500, BMD T-score -10 to +10, steroid and diabetes 0 or 1. A value
  outside them is impossible (a typo, another unit, another column's value): refused, never used.
- A manifest column is numeric when at least half of its non-empty cells are numbers, or when vcpred
  knows it (LIMITS) and any cell is a number; a number written with a decimal comma (`24,5`) counts as
  one. Its other cells (`24,5`, a formula `=1+2`, a word) are one problem naming their rows, not a
  reason to read the whole column as categories. Empty cells and the missing tokens stay missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vcpred.cohort.manifest import IMAGE_PREFIX, RESERVED, SERIES_PREFIX, is_missing, is_number

if TYPE_CHECKING:
    import pandas as pd

# Display units for the clinical columns vcpred's own cohorts use (docs/synthetic.md).
UNITS = {"age": "years", "bmi": "kg/m²", "bmd_tscore": "T-score", "days_to_mri": "days from fracture to MRI",
         "steroid": "1 = yes, 0 = no", "diabetes": "1 = yes, 0 = no", "sex": ""}


@dataclass(frozen=True)
class Limit:
    """Physical limits of a numeric column: low < value (low_open) or low <= value, value <= high."""

    low: float
    high: float
    low_open: bool = False
    why: str = ""
    values: tuple[float, ...] | None = None  # only these (a 0/1 flag)

    def holds(self, value: float) -> bool:
        if self.values is not None:
            return value in self.values
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high

    def text(self) -> str:
        if self.values is not None:
            return " or ".join(f"{v:g}" for v in self.values)
        return f"{'above' if self.low_open else 'from'} {self.low:g} {'and at most' if self.low_open else 'to'} " \
               f"{self.high:g}"

    def refusal(self, name: str, value: float) -> str | None:
        """Why value is impossible for column name ('age=500 years is impossible: ...'), or None."""
        if self.holds(value):
            return None
        unit = f" {UNITS[name]}" if UNITS.get(name) and self.values is None else ""
        return f"{name}={value:g}{unit} is impossible: {name} must be {self.text()} ({self.why})"


FLAG = Limit(0, 1, values=(0.0, 1.0), why="a yes/no flag is 1 or 0")
LIMITS = {
    "age": Limit(0, 125, low_open=True, why="an age is above 0 and no one has lived past 125 years"),
    "bmi": Limit(7, 150, why="a BMI below 7 kg/m² is not compatible with life, above 150 is beyond recorded adults "
                             "(a typo, e.g. the weight)"),
    "days_to_mri": Limit(0, 36500, why="the MRI cannot come before the fracture, nor 100 years after it"),
    "bmd_tscore": Limit(-10, 10, why="densitometers report T-scores within about -7 to +7"),
    "steroid": FLAG, "diabetes": FLAG,
}


def value_refusal(name: str, value) -> str | None:
    """Why a numeric column's typed value is refused ('age=inf is not a finite number'), or None. The
    limits of LIMITS apply to the columns vcpred knows; any finite number to the others."""
    if isinstance(value, (str, bool)):
        return f"{name}={value!r} is not a number"
    if not math.isfinite(value):
        return f"{name}={value:g} is not a finite number"
    limit = LIMITS.get(name)
    return limit.refusal(name, value) if limit else None


def _number_with_decimal_comma(text: str) -> bool:
    return "," in text and is_number(text.replace(",", ".", 1))


def is_numeric_column(name: str, present: list[str]) -> bool:
    """Whether a manifest column is numeric, from its non-empty cells (see the module's rule)."""
    numbers = sum(is_number(v) or _number_with_decimal_comma(v) for v in present)
    return numbers * 2 >= len(present) or (name in LIMITS and numbers > 0)


def stray_cells_problem(name: str, strays: list[tuple[int, str]]) -> str:
    """The problem of a numeric column's cells that are not numbers: (CSV row, text) each."""
    shown = [f"row {row} ({text!r})" for row, text in strays[:5]]
    listing = ", ".join(shown[:-1]) + f" and {shown[-1]}" if len(shown) > 1 else shown[0]
    if len(strays) > 5:
        listing = f"{', '.join(shown)} and {len(strays) - 5} more"
    comma = next((text for _, text in strays if _number_with_decimal_comma(text)), None)
    how = f" ({comma.replace(',', '.', 1)}, not {comma})" if comma else ""
    return (f"column {name} is numeric except {listing}: write each as a number with a point as decimal "
            f"separator{how}, without formulas, units or words, or leave the cell empty when the value is unknown")


@dataclass
class ClinicalColumns:
    """The manifest's clinical columns: kinds (column -> "numeric" | "categorical") and, for a numeric
    column, its cells that are not numbers (column -> [(CSV row, text)])."""

    kinds: dict[str, str]
    strays: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


def clinical_columns(table: pd.DataFrame) -> ClinicalColumns:
    """Every non-reserved column is clinical; numeric or categorical by is_numeric_column (an infinite
    number such as `inf` or `1e400` is a number here; the row checks report it as not finite)."""
    columns = ClinicalColumns({})
    for column in table.columns:
        if column in RESERVED or column.startswith((IMAGE_PREFIX, SERIES_PREFIX)):
            continue
        present = [(int(row), text) for row, text in zip(table.index, table[column]) if not is_missing(text)]
        numeric = is_numeric_column(column, [text for _, text in present])
        columns.kinds[column] = "numeric" if numeric else "categorical"
        strays = [(row, text) for row, text in present if not is_number(text)]
        if numeric and strays:
            columns.strays[column] = strays
    return columns

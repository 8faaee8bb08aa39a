"""A hospital's clinical table merged into the manifest by a mapping file (`vcpred cohort merge-clinical`;
the mapping: vcpred.cohort.clinical_mapping; the rules for users: docs/manifest.md, "Merging a clinical
table").

Nothing is guessed: a date that is neither ISO nor the mapping's `date_format`, a yes/no cell that is no
answer, a code the mapping does not list, a patient without the value its set is ruled by, two table rows
for one patient, a value the clinical-value policy refuses (vcpred.cohort.clinical_policy) or a filled
manifest cell the table contradicts is a problem naming its row, and nothing is written while there is one.
Unknown stays missing, never "no"; an unknown set is never development.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vcpred.cohort.clinical_mapping import HEIGHT_UNITS, WEIGHT_UNITS, ColumnSpec, Mapping
from vcpred.cohort.clinical_policy import LIMITS, is_numeric_column, value_refusal
from vcpred.cohort.manifest import (
    EXCLUDE_COLUMN,
    HEIGHT_COLUMNS,
    IMAGE_PREFIX,
    ROI_COLUMNS,
    is_missing,
    is_number,
    parse_float,
    read_manifest_table,
)
from vcpred.cohort.validate import FORMULA_ADVICE, runs_as_formula
from vcpred.errors import ConfigError, ManifestError, VcpredError

if TYPE_CHECKING:
    import pandas as pd

UNKNOWN_WORDS = {"unknown", "unk", "?"}  # beside the manifest's missing tokens (empty, NA, n/a, ...)
YES_WORDS = ("y", "yes", "true", "1")
NO_WORDS = ("n", "no", "false", "0")
DELIMITERS = (",", ";", "\t")
SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?$")
LOOKS_LIKE_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$")
# words of the column names of a clinical table (for cohort check's hint)
CLINICAL_WORDS = ("age", "sex", "gender", "birth", "dob", "bmi", "weight", "height", "date", "mrn", "steroid",
                  "diabetes", "fracture", "bmd", "score", "smok", "collapse")
MERGE_DOC = 'docs/manifest.md, "Merging a clinical table"'


@dataclass
class ClinicalTable:
    """A clinical table as read: text cells (stripped), each row with its line in the file (header = 1)."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]
    ragged: list[tuple[int, int]] = field(default_factory=list)  # (row, cells) of rows of another width
    repeated: set[str] = field(default_factory=set)  # column names the header holds more than once


def read_clinical_table(path: str | Path) -> ClinicalTable:
    """Read a CSV file separated by commas, semicolons or tabs (whichever the header line holds most of);
    ManifestError for a spreadsheet file or a file that is not UTF-8 CSV."""
    path = Path(path)
    if path.suffix.lower() in SPREADSHEETS:
        raise ManifestError(f"clinical table {path} is a spreadsheet file ({path.suffix}); merge-clinical reads "
                            "CSV: save the sheet as CSV (Excel: 'CSV UTF-8 (Comma delimited)'; LibreOffice: "
                            "Text CSV, UTF-8) and pass the .csv file")
    if not path.is_file():
        raise ManifestError(f"clinical table {path} does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"clinical table {path} is not UTF-8 text; save it as CSV UTF-8 "
                            "(Excel: 'CSV UTF-8 (Comma delimited)')") from None
    except OSError as exc:
        raise ManifestError(f"clinical table {path} cannot be read: {exc.strerror or exc}") from None
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(DELIMITERS, key=header_line.count)  # ties (none of them): a comma, the first
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    records: list[tuple[int, list[str]]] = []
    try:
        start = 1
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((start, [c.strip() for c in cells]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ManifestError(f"clinical table {path} is not a readable CSV file: line {reader.line_num}: "
                            f"{exc}") from None
    if not records:
        raise ManifestError(f"clinical table {path} is empty (no header row)")
    (_, header), body = records[0], records[1:]
    counts = Counter(header)
    table = ClinicalTable(path, header, [], repeated={name for name, n in counts.items() if n > 1 and name})
    for row, cells in body:
        if len(cells) != len(header):
            table.ragged.append((row, len(cells)))
            continue
        table.rows.append((row, dict(zip(header, cells))))
    return table


def normalise_key(text: str, how: str) -> str:
    """The key a patient is matched by. Surrounding spaces never count. exact: the text as it is;
    casefold: upper and lower case are one; digits: the digits alone, in order, leading zeros dropped
    ('MRN_10231', '10231' and '0010231' are 10231; text without digits has no key)."""
    text = text.strip()
    if how == "casefold":
        return text.casefold()
    if how == "digits":
        digits = "".join(c for c in text if c in "0123456789")
        return (digits.lstrip("0") or "0") if digits else ""
    return text


def parse_date(text: str, date_format: str | None) -> date:
    """An ISO 8601 date (2024-01-05, also with a time after it) or one in date_format; ValueError saying
    why otherwise (never a guess at the order of day and month)."""
    if ISO_DATE.match(text):
        try:
            return datetime.fromisoformat(text).date()
        except ValueError:
            pass
    if date_format:
        try:
            return datetime.strptime(text, date_format).date()
        except ValueError:
            raise ValueError(f"{text!r} is not a date in the format {date_format} (nor ISO, 2024-01-05)") from None
    hint = (" such as '%d.%m.%Y' for 31.12.1950 (day first) or '%m/%d/%Y' for 12/31/1950 (month first)"
            if LOOKS_LIKE_DATE.match(text) else "")
    raise ValueError(f"{text!r} is not an ISO date (2024-01-05); for dates written another way add "
                     f"date_format to the mapping{hint}")


def is_unknown(text: str, extra: tuple[str, ...] = ()) -> bool:
    """Empty, a missing token (NA, n/a, ...) or a word that means unknown: the value stays missing."""
    word = text.strip().casefold()
    return is_missing(text) or word in UNKNOWN_WORDS or word in extra


def yes_no(text: str) -> int:
    """1 for yes, 0 for no; ValueError for anything else (unknown words are the caller's: missing)."""
    word = text.strip().casefold()
    if word in YES_WORDS:
        return 1
    if word in NO_WORDS:
        return 0
    raise ValueError(f"{text!r} is not a yes/no answer (yes: {', '.join(YES_WORDS)}; no: {', '.join(NO_WORDS)}; "
                     f"unknown, left empty: an empty cell, unknown, unk, ?, NA); correct the cell, or list the "
                     "word under unknown: in the mapping when it means unknown")


def parse_number(text: str, decimal: str) -> float:
    """A finite number written with the mapping's decimal separator; ValueError otherwise."""
    written = text.strip()
    if decimal == "," and written.count(",") == 1 and "." not in written:
        written = written.replace(",", ".")
    value = parse_float(written)
    if value is None:
        hint = " (the mapping says decimal: '.'; write decimal: ',' for 72,5)" if decimal == "." and \
            is_number(text.replace(",", ".", 1)) else ""
        raise ValueError(f"{text!r} is not a number{hint}")
    return value


def number_text(value: float) -> str:
    """How a number is written into the manifest: 73, 23.4, -2.9."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


class CellProblem(ValueError):
    """A table cell a rule cannot use: column is the table's column."""

    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column


@dataclass
class Derived:
    """A manifest value made from a table row: text (None: missing), whether it is a number, and the
    table cells it came from, for a message ('from DOB '31.12.1950' and MRI_date '05.01.2024'')."""

    text: str | None
    number: float | None = None
    origin: str = ""


def derive(spec: ColumnSpec, cells: dict[str, str], mapping: Mapping) -> Derived:
    """The value spec makes of one table row (CellProblem naming the table's column otherwise)."""
    sources = [cells[name] for name in spec.sources]
    if any(is_unknown(text, mapping.unknown) for text in sources):
        return Derived(None)
    origin = "from " + " and ".join(f"{name} {text!r}" for name, text in zip(spec.sources, sources))
    if spec.rule == "yes_no":
        value = float(_cell(spec.sources[0], lambda t: yes_no(t), sources[0]))
        return Derived(number_text(value), value, origin)
    if spec.rule in ("years_between", "days_between"):
        start, end = (_cell(name, lambda t: parse_date(t, mapping.date_format), text)
                      for name, text in zip(spec.sources, sources))
        if end < start:  # swapped columns in the mapping, or a typo in the table
            raise CellProblem(spec.sources[1], f"{sources[1]!r} is before {spec.sources[0]} {sources[0]!r}, but "
                                               f"{spec.rule} counts from the first date to the second; correct the "
                                               "table, or the order of the dates in the mapping")
        value = float((end - start).days if spec.rule == "days_between" else _completed_years(start, end))
        return Derived(number_text(value), value, origin)
    if spec.rule == "from_weight_height":
        return _bmi(spec, sources, mapping)
    return _from_column(spec, sources[0], mapping, origin)


def _cell(column: str, parse, text: str):
    try:
        return parse(text)
    except ValueError as exc:
        raise CellProblem(column, str(exc)) from None


def _completed_years(start: date, end: date) -> int:
    """Age as a person states it: years completed on the end date (a birthday on that day counts)."""
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


def _bmi(spec: ColumnSpec, sources: list[str], mapping: Mapping) -> Derived:
    (weight_name, height_name), (weight_text, height_text) = spec.sources, sources
    weight = _cell(weight_name, lambda t: parse_number(t, mapping.decimal), weight_text)
    height = _cell(height_name, lambda t: parse_number(t, mapping.decimal), height_text)
    assert spec.weight_unit is not None and spec.height_unit is not None  # required by the mapping
    metres = height * HEIGHT_UNITS[spec.height_unit]
    if metres <= 0:
        raise CellProblem(height_name, f"{height_text!r} is not a height above 0")
    value = round(weight * WEIGHT_UNITS[spec.weight_unit] / metres ** 2, 1)
    origin = (f"from {weight_name} {weight:g} {spec.weight_unit}, {height_name} {height:g} {spec.height_unit}: "
              "check the units in the mapping")
    return Derived(number_text(value), value, origin)


def _from_column(spec: ColumnSpec, text: str, mapping: Mapping, origin: str) -> Derived:
    column = spec.sources[0]
    if spec.external is not None:  # the set rule: listed values external, every other one development
        listed = any(_same(value, text) for value in spec.external)
        return Derived("external" if listed else "development", None, origin)
    if spec.codes is not None:
        for code, written in spec.codes:
            if _same(code, text):
                return Derived(written, parse_float(written), origin)
        raise CellProblem(column, f"{text!r} is not one of the codes {', '.join(c for c, _ in spec.codes)} of the "
                                  "mapping; add it to codes, or correct the cell")
    if spec.at_least is not None:
        flag = float(_cell(column, lambda t: parse_number(t, mapping.decimal), text) >= spec.at_least)
        return Derived(number_text(flag), flag, origin)
    try:
        number = parse_number(text, mapping.decimal)
    except ValueError as exc:
        if spec.name in LIMITS or spec.name in ("label", *HEIGHT_COLUMNS):  # columns that hold numbers
            raise CellProblem(column, str(exc)) from None
        return Derived(text, None, origin)
    return Derived(number_text(number), number, origin)


def _same(code: str, text: str) -> bool:
    """A cell is a code when it is the code's text (any case), or the same number (2 and 2.0)."""
    if code.casefold() == text.strip().casefold():
        return True
    a, b = parse_float(code), parse_float(text)
    return a is not None and a == b


@dataclass
class Merge:
    """What merging a table into a manifest gives: the manifest's cells with the table's values in,
    which rows matched, which did not (on both sides), the problems, and per column a count of values."""

    frame: pd.DataFrame
    mapping: Mapping
    matched: list[tuple[int, str, int]] = field(default_factory=list)  # (manifest row, patient_id, table row)
    unmatched_manifest: list[tuple[int, str, str]] = field(default_factory=list)  # (row, id, key)
    unmatched_table: list[tuple[int, str, str]] = field(default_factory=list)  # (table row, key cell, key)
    problems: list[str] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=dict)  # column -> Counter of written texts, None: missing


def merge_clinical(manifest: str | Path, table: ClinicalTable, mapping: Mapping) -> Merge:
    """Merge table into the manifest's cells (nothing written; Merge.problems decide whether it may be)."""
    _check_table_columns(table, mapping)
    frame = _manifest_frame(Path(manifest), mapping)
    for name in mapping.columns:
        if name not in frame.columns:
            frame[name] = ""
    merge = Merge(frame, mapping, counts={name: Counter() for name in mapping.columns})
    for row, count in table.ragged:
        merge.problems.append(f"table row {row}: {count} cells but the header has {len(table.columns)} columns "
                              "(a separator inside an unquoted value, or a missing one?); correct the row")
    by_key = _table_keys(table, mapping, merge)
    manifest_rows = _manifest_keys(frame, mapping, merge)
    for key, table_rows in by_key.items():
        if key in manifest_rows and len(table_rows) > 1:
            rows = [str(r) for r, _ in table_rows]
            merge.problems.append(f"table rows {', '.join(rows[:-1])} and {rows[-1]} have the same key {key} "
                                  f"({', '.join(repr(c[mapping.key.table]) for _, c in table_rows)}): keep one row "
                                  "per patient in the table")
    for key, (row, pid) in manifest_rows.items():
        table_rows = by_key.get(key, [])
        if not table_rows:
            merge.unmatched_manifest.append((row, pid, key))
            continue
        merge.matched.append((row, pid, table_rows[0][0]))
        if len(table_rows) == 1:
            _merge_row(merge, row, pid, *table_rows[0])
    for key, table_rows in by_key.items():
        if key not in manifest_rows:
            merge.unmatched_table += [(r, cells[mapping.key.table], key) for r, cells in table_rows]
    _numeric_text_problems(merge)
    merge.unmatched_manifest.sort()
    merge.unmatched_table.sort()
    return merge


def _check_table_columns(table: ClinicalTable, mapping: Mapping) -> None:
    missing = [name for name in mapping.table_columns() if name not in table.columns]
    if missing:
        raise ConfigError(f"mapping {mapping.source}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                          f"not a column of {table.path} (its columns: {', '.join(table.columns)}); the names "
                          "must be the header's, with the same upper and lower case")
    repeated = sorted(set(mapping.table_columns()) & table.repeated)
    if repeated:
        raise ConfigError(f"clinical table {table.path}: the header names {', '.join(repeated)} more than once; "
                          "rename one so the mapping names one column")
    _check_external_values(table, mapping)


def _check_external_values(table: ClinicalTable, mapping: Mapping) -> None:
    """A value of the set rule that no row holds is a typo ('Hospital  C'): with it, every patient of that
    hospital would silently be development."""
    spec = mapping.columns.get("set")
    if spec is None or spec.external is None:
        return
    column = spec.sources[0]
    held = list(dict.fromkeys(cells[column] for _, cells in table.rows if not is_unknown(cells[column])))
    for value in spec.external:
        if not any(_same(value, text) for text in held):
            shown = ", ".join(repr(t) for t in held[:10]) + (", ..." if len(held) > 10 else "")
            raise ConfigError(f"mapping {mapping.source}: columns.set: external lists {value!r}, which no row of "
                              f"{table.path}'s column {column} holds (its values: {shown or 'none'}); write it as "
                              "the table does (upper and lower case do not count)")


def _manifest_frame(path: Path, mapping: Mapping) -> pd.DataFrame:
    parsed = read_manifest_table(path)
    if parsed.problems:
        raise ManifestError(f"manifest {path} has {len(parsed.problems)} layout problem(s) (first: "
                            f"{parsed.problems[0]}); run `vcpred cohort check {path}`, fix them, then merge")
    columns = list(parsed.frame.columns)
    if not any(c.startswith(IMAGE_PREFIX) for c in columns) and not any(c in ROI_COLUMNS for c in columns):
        raise ManifestError(f"{path} has no image_ or roi_ column, so it is not a manifest: is it the clinical "
                            "table? The manifest comes first: vcpred cohort merge-clinical MANIFEST TABLE "
                            "--mapping MAPPING")
    if mapping.key.manifest not in columns:
        raise ConfigError(f"mapping {mapping.source}: key.manifest {mapping.key.manifest!r} is not a column of "
                          f"{path} (its columns: {', '.join(columns)})")
    return parsed.frame


def _table_keys(table: ClinicalTable, mapping: Mapping, merge: Merge) -> dict[str, list[tuple[int, dict]]]:
    """Table rows by key; a row without key is listed among the unmatched ones."""
    by_key: dict[str, list[tuple[int, dict]]] = {}
    for row, cells in table.rows:
        key = normalise_key(cells[mapping.key.table], mapping.key.normalise)
        if not key:
            merge.unmatched_table.append((row, cells[mapping.key.table], "no key"))
            continue
        by_key.setdefault(key, []).append((row, cells))
    return by_key


def _manifest_keys(frame: pd.DataFrame, mapping: Mapping, merge: Merge) -> dict[str, tuple[int, str]]:
    """Manifest rows by key; two rows with one key are a problem (which would get the table's row?)."""
    keys: dict[str, tuple[int, str]] = {}
    for row, cells in zip(frame.index, frame.to_dict("records")):
        key = normalise_key(cells[mapping.key.manifest], mapping.key.normalise)
        pid = cells.get("patient_id", "")
        if not key:
            merge.unmatched_manifest.append((int(row), pid, "no key"))
        elif key in keys:
            first_row, first = keys[key]
            merge.problems.append(f"manifest rows {first_row} and {row} ({first!r}, {pid!r}) have the same key {key} "
                                  f"under normalise: {mapping.key.normalise}; give them different keys, e.g. a "
                                  "column of their hospital numbers named in key.manifest")
        else:
            keys[key] = (int(row), pid)
    return keys


def _merge_row(merge: Merge, row: int, pid: str, table_row: int, cells: dict[str, str]) -> None:
    """Derive the mapping's columns from one table row into manifest row `row`."""
    frame, mapping = merge.frame, merge.mapping
    where = f"table row {table_row} ({mapping.key.table} {cells[mapping.key.table]!r})"
    for name, spec in mapping.columns.items():
        try:
            value = derive(spec, cells, mapping)
        except CellProblem as problem:
            merge.problems.append(f"{where}, column {problem.column!r}: {problem}")
            continue
        place = f"row {row}, patient {pid!r}, column {name!r} (table row {table_row})"
        refusal = _policy_refusal(name, value)
        if refusal:
            merge.problems.append(f"{place}: {refusal}; {value.origin}")
            continue
        held = frame.at[row, name]
        if value.text is None and spec.external is not None:  # a set is never unknown, nor guessed
            cell = cells[spec.sources[0]]
            merge.problems.append(f"{where}, column {spec.sources[0]!r}: {cell!r} gives no set: write the "
                                  f"patient's {spec.sources[0]} into the table (the mapping makes "
                                  f"{_listed(spec.external)} external, every other value development)")
            continue
        if value.text is None:
            merge.counts[name][None] += 1
            continue
        if not is_missing(held) and not _same(held, value.text) and not _replaces_default(name, held):
            merge.problems.append(f"row {row}, patient {pid!r}, column {name!r}: the manifest holds {held!r}, the "
                                  f"table gives {value.text} (table row {table_row}); empty the manifest's cell to "
                                  "take the table's value, or correct the table")
            continue
        frame.at[row, name] = value.text
        merge.counts[name][value.text] += 1


def _replaces_default(name: str, held: str) -> bool:
    """The set rule replaces `development`, what cohort init writes by default; a manifest's `external` is never
    made development (a held-out patient would train the model): that is a conflict like any other."""
    return name == "set" and held.strip() == "development"


def _listed(values: tuple[str, ...]) -> str:
    return " or ".join(repr(v) for v in values)


def _policy_refusal(name: str, value: Derived) -> str | None:
    """The clinical-value policy on a derived value: physical limits of the columns vcpred knows, a label
    of 0 or 1, positive heights, no text that spreadsheet software runs as a formula."""
    if value.text is None:
        return None
    if value.number is not None:
        if name == "label" and value.number not in (0.0, 1.0):
            return f"label {value.text} is not 0 or 1"
        if name in HEIGHT_COLUMNS and value.number <= 0:
            return f"{name} {value.text} is not a positive height in mm"
        return value_refusal(name, value.number)
    if runs_as_formula(value.text):
        return f"{value.text!r} {FORMULA_ADVICE}"
    return None


def _numeric_text_problems(merge: Merge) -> None:
    """A column the policy reads as numeric (most of its cells are numbers) takes no text from the table:
    such a cell would be a stray in `cohort check` (clinical_policy.is_numeric_column)."""
    frame = merge.frame
    included = frame[frame[EXCLUDE_COLUMN].map(is_missing)] if EXCLUDE_COLUMN in frame.columns else frame
    for name, spec in merge.mapping.columns.items():
        if spec.rule != "column" or spec.codes is not None or spec.external is not None or name not in frame.columns:
            continue
        present = [text for text in included[name] if not is_missing(text)]
        if not is_numeric_column(name, present):
            continue
        strays = [f"row {row} ({text!r})" for row, text in zip(frame.index, frame[name])
                  if not is_missing(text) and not is_number(text) and row in included.index]
        if strays:
            merge.problems.append(f"column {name!r} is numeric except {', '.join(strays)} (from "
                                  f"{spec.sources[0]}): correct those cells of the table, or leave them empty when "
                                  "the value is unknown")


def summary_lines(merge: Merge) -> list[str]:
    """One line per manifest column: the rule and how many values it gave."""
    lines = []
    for name, spec in merge.mapping.columns.items():
        counts = merge.counts[name]
        missing = counts[None]
        if spec.rule == "yes_no":
            told = f"{counts['1']} yes, {counts['0']} no, {missing} missing"
        else:
            values = sum(n for text, n in counts.items() if text is not None)
            told = f"{values} value{'s' if values != 1 else ''}" + (f", {missing} missing" if missing else "")
            if spec.codes is not None or spec.at_least is not None or spec.external is not None:
                told += " (" + ", ".join(f"{text}: {n}" for text, n in sorted(counts.items(), key=str)
                                         if text is not None) + ")"
        lines.append(f"{name}: {describe(spec)}: {told}")
    return lines


def describe(spec: ColumnSpec) -> str:
    first = spec.sources[0]
    if spec.rule == "yes_no":
        return f"yes/no from {first}"
    if spec.rule == "years_between":
        return f"completed years from {first} to {spec.sources[1]}"
    if spec.rule == "days_between":
        return f"days from {first} to {spec.sources[1]}"
    if spec.rule == "from_weight_height":
        return f"kg/m² from {first} ({spec.weight_unit}) and {spec.sources[1]} ({spec.height_unit})"
    if spec.codes is not None:
        return f"codes of {first} (" + ", ".join(f"{c} -> {v}" for c, v in spec.codes) + ")"
    if spec.at_least is not None:
        return f"1 when {first} is at least {spec.at_least:g}, else 0"
    if spec.external is not None:
        return f"external when {first} is {_listed(spec.external)}, else development"
    return f"from {first}"


def manifest_text(frame: pd.DataFrame) -> str:
    """The merged manifest as comma-separated text (rows in the manifest's order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(frame.columns))
    writer.writerows(frame.itertuples(index=False, name=None))
    return buffer.getvalue()


def clinical_table_hint(path: str | Path) -> str | None:
    """When a file given as a manifest is a clinical table (no image_ or ROI column, and at least two
    columns of clinical kind: named like age, sex, weight, dates..., or holding dates), what to do."""
    try:
        table = read_clinical_table(path)
    except VcpredError:
        return None
    if any(c.startswith(IMAGE_PREFIX) or c in ROI_COLUMNS for c in table.columns):
        return None
    clinical = [c for c in table.columns if any(word in c.casefold() for word in CLINICAL_WORDS)
                or _holds_dates(c, table)]
    if len(clinical) < 2:
        return None
    return (f"{path} looks like a clinical table, not a manifest: no image_ or roi_ column, and clinical columns "
            f"({', '.join(clinical[:4])}{', ...' if len(clinical) > 4 else ''}); a manifest has one row per patient "
            "with its images (start one with `vcpred cohort init DICOM_ROOT --out manifest.csv`); bring this table "
            f"into it with `vcpred cohort merge-clinical manifest.csv {path} --mapping mapping.yaml` ({MERGE_DOC})")


def _holds_dates(column: str, table: ClinicalTable) -> bool:
    present = [cells[column] for _, cells in table.rows if not is_unknown(cells[column])]
    dates = sum(bool(ISO_DATE.match(t) or LOOKS_LIKE_DATE.match(t)) for t in present)
    return bool(present) and dates * 2 >= len(present)

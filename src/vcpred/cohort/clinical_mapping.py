"""The mapping file of `vcpred cohort merge-clinical`: which manifest column comes from which column(s) of
a hospital's clinical table, and by which rule (docs/manifest.md, "Merging a clinical table").

It is typed and checked before the table is read: an unknown key, a missing unit or a two-digit year is
one error naming where it is in the file, e.g. `mapping m.yaml: columns.bmi: height_unit is required`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from vcpred.cohort.manifest import EXCLUDE_COLUMN, IMAGE_PREFIX, ROI_COLUMNS, SERIES_PREFIX
from vcpred.errors import ConfigError

NORMALISE = ("exact", "casefold", "digits")
# rule -> how many table columns it reads
RULES = {"column": 1, "yes_no": 1, "years_between": 2, "days_between": 2, "from_weight_height": 2}
OPTIONS = {"column": ("codes", "at_least"), "from_weight_height": ("weight_unit", "height_unit")}
WEIGHT_UNITS = {"kg": 1.0, "lb": 0.45359237}  # -> kg
HEIGHT_UNITS = {"cm": 0.01, "m": 1.0, "in": 0.0254}  # -> m
TOP_KEYS = ("key", "columns", "date_format", "decimal", "unknown")
KEY_KEYS = ("table", "manifest", "normalise")
# vcpred's own columns: written by cohort init, annotate or the user, never by a clinical table
NOT_FROM_TABLE = ("patient_id", EXCLUDE_COLUMN, *ROI_COLUMNS)
# `set` only by its own rule: the table values of the external patients, every other value development
SET_KEYS = ("column", "external")
SET_EXAMPLE = "{column: Hospital, external: [C]}"


@dataclass(frozen=True)
class KeySpec:
    """Which table column identifies the patient, which manifest column it is matched against, and how
    both are normalised before they are compared (clinical_table.normalise_key)."""

    table: str
    manifest: str = "patient_id"
    normalise: str = "exact"


@dataclass(frozen=True)
class ColumnSpec:
    """One manifest column: its rule (a key of RULES), the table columns it reads, and the rule's options."""

    name: str
    rule: str
    sources: tuple[str, ...]
    codes: tuple[tuple[str, str], ...] | None = None  # (table text, manifest text), in the file's order
    at_least: float | None = None  # 1 when the number is at least this, else 0
    weight_unit: str | None = None
    height_unit: str | None = None
    external: tuple[str, ...] | None = None  # set: the table values that make a patient external


@dataclass(frozen=True)
class Mapping:
    source: Path
    key: KeySpec
    columns: dict[str, ColumnSpec]  # manifest column -> its rule, in the file's order
    date_format: str | None = None  # strptime format of the dates that are not ISO 8601
    decimal: str = "."
    unknown: tuple[str, ...] = ()  # words that mean "unknown" in this table, beside the default ones

    def table_columns(self) -> list[str]:
        """Every table column the mapping reads, the key first, each once."""
        names = [self.key.table] + [s for spec in self.columns.values() for s in spec.sources]
        return list(dict.fromkeys(names))


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file (ConfigError, one line, naming the place of the mistake)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"mapping {path} not found; write one as in docs/manifest.md, "
                          "\"Merging a clinical table\"") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"mapping {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or "a syntax error"
        raise ConfigError(f"mapping {path} is not valid YAML{where}: {what}") from None
    return parse_mapping(data, path)


def parse_mapping(data: object, path: Path) -> Mapping:
    def fail(where: str, message: str) -> ConfigError:
        return ConfigError(f"mapping {path}: {where}{': ' if where else ''}{message}")

    if not isinstance(data, dict):
        raise fail("", "must hold a mapping with key: and columns: (docs/manifest.md, \"Merging a clinical table\")")
    _known_keys(data, TOP_KEYS, "", fail)
    for required in ("key", "columns"):
        if required not in data:
            raise fail("", f"{required}: is required")
    columns = data["columns"]
    if not isinstance(columns, dict) or not columns:
        raise fail("columns", "must map each manifest column to its rule, e.g. age: {years_between: [DOB, MRI]}")
    return Mapping(
        source=path, key=_key(data["key"], fail),
        columns={str(name): _column(str(name), spec, fail) for name, spec in columns.items()},
        date_format=_date_format(data.get("date_format"), fail), decimal=_decimal(data.get("decimal", "."), fail),
        unknown=_unknown(data.get("unknown", []), fail))


def _known_keys(data: dict, known: tuple[str, ...], where: str, fail) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise fail(where, f"unknown key {str(key)!r}{hint} (known: {', '.join(known)})")


def _text(value: object, where: str, fail) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(where, f"must be a column name (text), not {value!r}")
    return value.strip()


def _key(data: object, fail) -> KeySpec:
    if not isinstance(data, dict):
        raise fail("key", "must be a mapping such as {table: MRN, manifest: patient_id, normalise: digits}")
    _known_keys(data, KEY_KEYS, "key", fail)
    if "table" not in data:
        raise fail("key", "table: is required (the table's column that identifies the patient, e.g. MRN)")
    normalise = data.get("normalise", "exact")
    if normalise not in NORMALISE:
        raise fail("", f"key.normalise {normalise!r} is not one of {', '.join(NORMALISE)}")
    return KeySpec(_text(data["table"], "key.table", fail), _text(data.get("manifest", "patient_id"),
                                                                   "key.manifest", fail), normalise)


def _column(name: str, spec: object, fail) -> ColumnSpec:
    where = f"columns.{name}"
    if name in NOT_FROM_TABLE or name.startswith((IMAGE_PREFIX, SERIES_PREFIX)):
        raise fail(where, "a column vcpred fills itself (cohort init, annotate), not filled from a clinical table")
    if name == "set":
        return _set_column(spec, fail)
    if isinstance(spec, str):  # `age: Age` is a rename
        spec = {"column": spec}
    if not isinstance(spec, dict):
        raise fail(where, f"must be a rule such as {{column: NAME}}, not {spec!r}")
    rules = [key for key in spec if key in RULES]
    if not rules:  # a misspelt rule: name it, not "none found"
        _known_keys(spec, (*RULES, *(o for options in OPTIONS.values() for o in options)), where, fail)
    if len(rules) != 1:
        raise fail(where, f"give one of {', '.join(RULES)} (found {', '.join(rules) or 'none'})")
    rule = rules[0]
    _known_keys(spec, (rule, *OPTIONS.get(rule, ())), where, fail)
    sources = _sources(spec[rule], RULES[rule], f"{where}.{rule}", fail)
    column = ColumnSpec(name, rule, sources)
    if rule == "column":
        column = _column_options(column, spec, where, fail)
    if rule == "from_weight_height":
        units = {}
        for option, known in (("weight_unit", WEIGHT_UNITS), ("height_unit", HEIGHT_UNITS)):
            unit = spec.get(option)
            if unit is None:
                raise fail(where, f"{option} is required ({' or '.join(known)}): say the unit of the table's column")
            if unit not in known:
                raise fail(where, f"{option} {unit!r} is not one of {', '.join(known)}")
            units[option] = unit
        column = ColumnSpec(name, rule, sources, **units)
    if name == "label" and rule not in ("column", "yes_no"):
        raise fail(where, "the label comes from a column with a rule (yes_no, codes or at_least)")
    return column


def _sources(value: object, count: int, where: str, fail) -> tuple[str, ...]:
    if count == 1:
        return (_text(value, where, fail),)
    if not isinstance(value, list) or len(value) != count:
        raise fail(where, f"must list {count} table columns, e.g. [DOB, MRI_date]")
    return tuple(_text(v, where, fail) for v in value)


def _column_options(column: ColumnSpec, spec: dict, where: str, fail) -> ColumnSpec:
    if "codes" in spec and "at_least" in spec:
        raise fail(where, "give codes or at_least, not both")
    if "at_least" in spec:
        threshold = spec["at_least"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise fail(where, f"at_least must be a number, not {threshold!r}")
        return ColumnSpec(column.name, column.rule, column.sources, at_least=float(threshold))
    if "codes" not in spec:
        return column
    codes = spec["codes"]
    if not isinstance(codes, dict) or not codes:
        raise fail(where, "codes must map each table value to the manifest's, e.g. {1: M, 2: F}")
    if any(isinstance(v, bool) for v in (*codes, *codes.values())):
        raise fail(where, "codes: YAML reads unquoted yes, no, on, off, true and false as true/false; quote them "
                          "('yes': 1), or use yes_no: for a yes/no column")
    if any(v is None or isinstance(v, (dict, list)) for v in (*codes, *codes.values())):
        raise fail(where, "codes: each table value and manifest value is one word or number")
    pairs = tuple((_code_text(k), _code_text(v)) for k, v in codes.items())
    if column.name == "label" and any(v not in ("0", "1") for _, v in pairs):
        raise fail(where, "codes: the label is 1 (VC progression) or 0 (none)")
    return ColumnSpec(column.name, column.rule, column.sources, codes=pairs)


def _set_column(spec: object, fail) -> ColumnSpec:
    """`set: {column: Hospital, external: [C]}`: no rename (every value would need to be a set's name) and no
    guess: the values listed are external, every other one development."""
    where = "columns.set"
    if isinstance(spec, dict) and "column" not in spec and any(key in RULES for key in spec):
        raise fail(where, f"the set comes from {{column: NAME, external: [VALUES]}}, e.g. {SET_EXAMPLE}: the values "
                          "listed make a patient external, every other value development")
    if not isinstance(spec, dict) or spec.get("external") in (None, "", []):
        raise fail(where, f"external must list the table values of the external patients, e.g. {SET_EXAMPLE} "
                          "(every other value is development)")
    _known_keys(spec, SET_KEYS, where, fail)
    values = spec["external"] if isinstance(spec["external"], list) else [spec["external"]]
    if any(isinstance(v, bool) for v in values):
        raise fail(where, "external: YAML reads unquoted yes, no, on, off, true and false as true/false; quote them")
    if any(v is None or isinstance(v, (dict, list)) for v in values):
        raise fail(where, "external: each value is one word or number of the table's column")
    return ColumnSpec("set", "column", (_text(spec.get("column"), f"{where}.column", fail),),
                      external=tuple(_code_text(v) for v in values))


def _code_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).strip()


def _date_format(value: object, fail) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "%" not in value:
        raise fail("date_format", f"{value!r} is not a date format; write e.g. '%d.%m.%Y' for 31.12.1950")
    if "%y" in value:
        raise fail("date_format", f"{value!r} has a two-digit year (%y), which cannot tell 1950 from 2050; "
                                  "export the table with four-digit years (%Y)")
    if "%d" not in value or "%Y" not in value or not any(m in value for m in ("%m", "%b", "%B")):
        raise fail("date_format", f"{value!r} must hold the day (%d), month (%m) and year (%Y)")
    return value


def _decimal(value: object, fail) -> str:
    if value not in (".", ","):
        raise fail("decimal", f"{value!r} must be '.' or ','")
    return str(value)


def _unknown(value: object, fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise fail("unknown", "must list the words that mean 'unknown' in the table, e.g. ['-', 'k.A.']")
    return tuple(str(v).strip().casefold() for v in value)

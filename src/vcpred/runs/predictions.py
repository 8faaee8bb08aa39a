"""predictions.csv, the contract every evaluation rests on: one row per (patient, frame) of a run.

patient_id, set (validation | external), split, frame_offset (0 = the ROI slice), probability,
label (0, 1, or empty for an unlabelled external patient). Read back validated row by row.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from vcpred.errors import RunError

PREDICTION_COLUMNS = ["patient_id", "set", "split", "frame_offset", "probability", "label"]
SETS = ("validation", "external")
MAX_LISTED = 8  # problems listed in one error message


def write_predictions(table: pd.DataFrame, path: Path) -> None:
    """The contract's columns of `table`, in order, as CSV."""
    table[PREDICTION_COLUMNS].to_csv(path, index=False)


def read_predictions(path: Path, *, split: int) -> pd.DataFrame:
    """predictions.csv validated: columns, sets, numbers, labels, one label per patient."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not a readable CSV table ({exc})") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in raw.columns]
    if missing:
        raise RunError(f"{path}: missing column(s) {missing}; a predictions table needs {PREDICTION_COLUMNS}")
    if raw.empty:
        raise RunError(f"{path} has no rows")
    problems: list[str] = []
    table = _parse_rows(raw, split, problems)
    if not problems:
        _check_patients(table, problems)
    if problems:
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise RunError(f"{path}: {len(problems)} problem(s)\n  " +
                              "\n  ".join(problems[:MAX_LISTED]) + more)
    return table


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _parse_rows(raw: pd.DataFrame, split: int, problems: list[str]) -> pd.DataFrame:
    """Typed columns; each bad cell adds 'row N: ...' (N = CSV line, header = 1), in row order."""
    rows = raw.index.to_numpy() + 2
    pid = raw["patient_id"].str.strip()
    sets = raw["set"].str.strip().str.lower()
    split_col = raw["split"].map(_number)
    offset = raw["frame_offset"].map(_number)
    prob = raw["probability"].map(_number)
    label_text = raw["label"].str.strip()
    label = label_text.map(lambda t: math.nan if t == "" else _number(t))
    checks = [  # (bad mask, message for one row i)
        (pid == "", lambda i: "empty patient_id"),
        (~sets.isin(SETS), lambda i: f"set {raw['set'].iat[i]!r} must be 'validation' or 'external'"),
        (split_col != split, lambda i: f"split {raw['split'].iat[i]!r} differs from the run's split {split}"),
        (~(np.isfinite(offset) & (offset == offset.round())),
         lambda i: f"frame_offset {raw['frame_offset'].iat[i]!r} must be an integer"),
        (~prob.between(0.0, 1.0), lambda i: f"probability {raw['probability'].iat[i]!r} must be a number in [0, 1]"),
        ((label_text == "") & (sets == "validation"), lambda i: f"validation patient {pid.iat[i]!r} has no label"),
        ((label_text != "") & ~label.isin((0.0, 1.0)),
         lambda i: f"label {label_text.iat[i]!r} must be 0, 1 or empty (unlabelled external)"),
    ]
    found = [(i, message(i)) for mask, message in checks for i in np.flatnonzero(mask.to_numpy())]
    problems.extend(f"row {rows[i]}: {text}" for i, text in sorted(found, key=lambda f: f[0]))
    if problems:
        return raw
    return pd.DataFrame({"patient_id": pid, "set": sets, "split": split, "frame_offset": offset.astype(int),
                         "probability": prob.astype(float), "label": label.astype(float), "row": rows})


def _check_patients(table: pd.DataFrame, problems: list[str]) -> None:
    """One label and one set per patient, one row per frame, and the main frame present."""
    grouped = table.assign(label_key=table["label"].fillna(-1), main=table["frame_offset"] == 0
                           ).groupby("patient_id", sort=False)
    per_patient = grouped.agg(sets=("set", "nunique"), labels=("label_key", "nunique"), main=("main", "any"),
                              first_row=("row", "min"))
    rows_of = grouped["row"].agg(lambda r: r.tolist()[:4])
    for pid in per_patient.index[per_patient["sets"] > 1]:
        problems.append(f"rows {rows_of[pid]}: patient {pid!r} is in both validation and external; "
                        "a patient belongs to one set")
    for pid in per_patient.index[per_patient["labels"] > 1]:
        problems.append(f"rows {rows_of[pid]}: patient {pid!r} has different labels across rows")
    for pid in per_patient.index[~per_patient["main"]]:
        problems.append(f"rows {rows_of[pid]}: patient {pid!r} has no frame_offset 0 (the main frame)")
    duplicated = table[table.duplicated(["patient_id", "frame_offset"])]
    for _, row in duplicated.iterrows():
        problems.append(f"row {row['row']}: patient {row['patient_id']!r} has frame_offset "
                        f"{row['frame_offset']} twice")

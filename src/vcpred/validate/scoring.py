"""Predicting every labelled patient of a cohort with an exported model, exactly as `vcpred predict`
does (vcpred.predict.predict_patient, without heat maps), keeping going past patients that fail.

A patient whose images cannot be read (or whose clinical values the model cannot use, or whose
prediction is not a number) is excluded with its reason and the others are scored; an OS error
such as a full disk concerns every patient and stops the run, as in `predict --manifest`.
Patients without a label are not predicted: their outcome is unknown, so they cannot be scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vcpred import console
from vcpred.errors import ConfigError, VcpredError
from vcpred.os_errors import is_user_os_error


@dataclass
class Scored:
    """table: one row per scored patient (patient_id, set, label, probability, sd, low, high,
    threshold, category, borderline, imputed, p_split_KK per split model); excluded: patients not
    scored, each {patient_id, set, reason}; development: scored patients the manifest marks as
    development patients."""

    table: pd.DataFrame
    excluded: list[dict] = field(default_factory=list)
    manifest: Path | None = None
    set_name: str | None = None
    total: int = 0  # manifest rows of the chosen set(s)

    @property
    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy(int)

    @property
    def probabilities(self) -> np.ndarray:
        return self.table["probability"].to_numpy(float)

    def split_columns(self) -> list[str]:
        return [c for c in self.table.columns if c.startswith("p_split_")]


def select_records(cohort, set_name: str | None) -> list:
    """The manifest's patients of one set ('development', 'external'), or all of them (None)."""
    if set_name is None:
        return list(cohort.records)
    records = [r for r in cohort.records if r.set == set_name]
    if not records:
        sets = sorted({r.set for r in cohort.records})
        raise ConfigError(f"{cohort.manifest_path} has no {set_name} patients (its sets: {', '.join(sets)})")
    return records


def _row(record, result: dict) -> dict:
    row = {"patient_id": record.patient_id, "set": record.set, "label": int(record.label),
           "probability": result["probability"], "sd": result["sd"], "low": result["interval"]["low"],
           "high": result["interval"]["high"], "threshold": result["threshold"], "category": result["category"],
           "borderline": bool(result.get("borderline", False)), "imputed": ";".join(result.get("imputed") or [])}
    for model in result["per_model"]:
        row[f"p_split_{int(model['split']):02d}"] = model["probability"]
    return row


def _exclude(record, reason: str) -> dict:
    console.warn(f"patient {record.patient_id!r} excluded: {reason}")
    return {"patient_id": record.patient_id, "set": record.set, "reason": reason}


def read_records(manifest: str | Path, *, set_name: str | None = None, height_loss: float | None = None) -> list:
    """The manifest's patients of `set_name` (or all). height_loss: the height-loss fraction that makes
    label 1 where labels come from heights (the manifest default)."""
    from vcpred.cohort import load_manifest
    from vcpred.cohort.manifest import DEFAULT_HEIGHT_LOSS

    # Files are not checked here: a missing image is that patient's read error, not the cohort's.
    cohort = load_manifest(manifest, check_files=False,
                           height_loss_threshold=DEFAULT_HEIGHT_LOSS if height_loss is None else height_loss)
    return select_records(cohort, set_name)


def score_cohort(bundle, manifest: str | Path, records: list, *, set_name: str | None = None,
                 allow_missing: bool = False, left_out: dict[str, str] | None = None) -> Scored:
    """Predict every labelled patient of `records` (read_records of the manifest) but those in
    left_out (patient id -> why it is not scored: the model's own patients, said once by the caller)."""
    from vcpred.predict import predict_patient
    from vcpred.predict.batch import Rate, prepared_ahead

    left_out = left_out or {}
    rows, excluded = [], []
    for record in records:
        if record.label is None:
            excluded.append(_exclude(record, "no label (outcome unknown): not scored"))
        elif record.patient_id in left_out:
            excluded.append({"patient_id": record.patient_id, "set": record.set, "reason": left_out[record.patient_id]})
    labelled = [r for r in records if r.label is not None and r.patient_id not in left_out]
    rate = Rate()
    for record, prepared in prepared_ahead(bundle, labelled, desc="validate"):
        try:
            prediction = predict_patient(bundle, record, explain=False, allow_missing=allow_missing,
                                         prepared=prepared, strict_keys=False)
        except VcpredError as exc:
            excluded.append(_exclude(record, str(exc)))
            continue
        except Exception as exc:  # a bug must not cost the other patients their score
            if is_user_os_error(exc):  # a full disk or missing permissions concern every patient: stop
                raise
            excluded.append(_exclude(record, f"internal error (a bug in vcpred): {type(exc).__name__}: {exc}"))
            continue
        rows.append(_row(record, prediction.result))
    rate.say("scored", len(labelled))
    order = {record.patient_id: index for index, record in enumerate(records)}
    excluded.sort(key=lambda entry: order[entry["patient_id"]])  # in manifest order, whatever the reason
    columns = ["patient_id", "set", "label", "probability", "sd", "low", "high", "threshold", "category",
               "borderline", "imputed"]
    table = pd.DataFrame(rows, columns=None if rows else columns)
    return Scored(table, excluded, Path(manifest), set_name, len(records))

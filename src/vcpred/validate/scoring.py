"""Predicting every labelled patient of a cohort with an exported model, exactly as `vcpred predict`
does (vcpred.predict.predict_patient, without heat maps), keeping going past patients that fail.

A patient whose images cannot be read (or whose clinical values the model cannot use, or whose
prediction is not a number) is excluded with its reason and the others are scored; an OS error
such as a full disk concerns every patient and stops the run, as in `predict --manifest`.
Patients without a label are not predicted: their outcome is unknown, so they cannot be scored.
Patients excluded in the manifest (its `exclude` column) are never read, only listed with the reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vcpred import console
from vcpred.errors import ConfigError, VcpredError
from vcpred.os_errors import is_user_os_error
from vcpred.predict.risk import BORDERLINE, CATEGORIES, risk_of


@dataclass
class Chosen:
    """The manifest's patients of the chosen set(s): `records` the included ones, to score;
    `excluded` those whose `exclude` cell gives a reason (vcpred.cohort.manifest.ExcludedPatient),
    never read but listed with that reason."""

    records: list
    excluded: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.records) + len(self.excluded)


@dataclass
class Scored:
    """table: one row per scored patient (patient_id, set, label, probability, sd, low, high,
    threshold, category, borderline, risk, imputed, p_split_KK per split model); excluded: patients not
    scored, each {patient_id, set, reason}, in manifest order; left_out: how many of them per kind
    (KINDS)."""

    table: pd.DataFrame
    excluded: list[dict] = field(default_factory=list)
    manifest: Path | None = None
    set_name: str | None = None
    total: int = 0  # manifest rows of the chosen set(s), those excluded in the manifest included
    left_out: Counter = field(default_factory=Counter)

    @property
    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy(int)

    @property
    def probabilities(self) -> np.ndarray:
        return self.table["probability"].to_numpy(float)

    def split_columns(self) -> list[str]:
        return [c for c in self.table.columns if c.startswith("p_split_")]

    def risks(self) -> dict[str, int]:
        """Scored patients per risk, worded as `vcpred predict` words it (vcpred.predict.risk)."""
        counts = self.table["risk"].value_counts() if len(self.table) else {}
        return {risk: int(counts.get(risk, 0)) for risk in (*CATEGORIES, BORDERLINE)}

    def imputed(self) -> dict:
        """{patients, of, columns: {column: patients}}: the scored patients whose missing clinical values
        were imputed (--allow-missing), and which columns."""
        cells = [text for text in self.table["imputed"].fillna("") if text] if len(self.table) else []
        columns = Counter(column for text in cells for column in text.split(";"))
        return {"patients": len(cells), "of": len(self.table), "columns": dict(sorted(columns.items()))}


# why a manifest patient is not scored, in the order the console line counts them
MANIFEST, OWN, SAME_IMAGES, UNLABELLED, FAILED = "manifest", "own", "same images", "unlabelled", "failed"
KINDS = {MANIFEST: "excluded in the manifest", OWN: "the model's own", SAME_IMAGES: "with another's images",
         UNLABELLED: "without a label", FAILED: "that could not be predicted"}


def select_records(cohort, set_name: str | None) -> Chosen:
    """The manifest's patients of one set ('development', 'external'), or all of them (None), with
    those it excludes; ConfigError when there is none to score."""
    chosen = Chosen([r for r in cohort.records if set_name in (None, r.set)],
                    [e for e in cohort.excluded if set_name in (None, e.set)])
    if chosen.records:
        return chosen
    where = f"{set_name} " if set_name else ""
    if chosen.excluded:
        reasons = "; ".join(f"{e.patient_id} ({e.reason})" for e in chosen.excluded)
        raise ConfigError(f"all {len(chosen.excluded)} {where}patient(s) of {cohort.manifest_path} are excluded in "
                          f"the manifest, so none can be scored: {reasons}; empty a patient's exclude cell to "
                          "include it")
    sets = sorted({r.set for r in (*cohort.records, *cohort.excluded) if r.set})
    raise ConfigError(f"{cohort.manifest_path} has no {set_name} patients (its sets: {', '.join(sets)})")


def _row(record, result: dict) -> dict:
    row = {"patient_id": record.patient_id, "set": record.set, "label": int(record.label),
           "probability": result["probability"], "sd": result["sd"], "low": result["interval"]["low"],
           "high": result["interval"]["high"], "threshold": result["threshold"], "category": result["category"],
           "borderline": bool(result.get("borderline", False)), "risk": risk_of(result),
           "imputed": ";".join(result.get("imputed") or [])}
    for model in result["per_model"]:
        row[f"p_split_{int(model['split']):02d}"] = model["probability"]
    return row


def _exclude(record, reason: str) -> dict:
    console.warn(f"patient {record.patient_id!r} excluded: {reason}")
    return {"patient_id": record.patient_id, "set": record.set, "reason": reason}


def read_records(manifest: str | Path, *, set_name: str | None = None, height_loss: float | None = None) -> Chosen:
    """The manifest's patients of `set_name` (or all), with those it excludes. height_loss: the
    height-loss fraction that makes label 1 where labels come from heights (the manifest default)."""
    from vcpred.cohort import load_manifest
    from vcpred.cohort.manifest import DEFAULT_HEIGHT_LOSS

    # Files are not checked here: a missing image is that patient's read error, not the cohort's. A
    # clinical value the policy refuses (age 500, '24,5') is that patient's reason too (check_clinical
    # in predict_patient), as in `predict --manifest`: the others are scored.
    cohort = load_manifest(manifest, check_files=False, per_patient_clinical=True,
                           height_loss_threshold=DEFAULT_HEIGHT_LOSS if height_loss is None else height_loss)
    return select_records(cohort, set_name)


def left_out_counts(left_out: Counter) -> str:
    """'2 excluded in the manifest, 1 that could not be predicted': Scored.left_out in words."""
    return ", ".join(f"{left_out[kind]} {words}" for kind, words in KINDS.items() if left_out[kind])


def score_cohort(bundle, manifest: str | Path, chosen: Chosen, *, set_name: str | None = None,
                 allow_missing: bool = False, left_out: dict[str, str] | None = None,
                 same_images: dict[str, str] | None = None) -> Scored:
    """Predict every labelled patient of `chosen` (read_records of the manifest) but those in
    left_out (patient id -> why it is not scored: the model's own patients, said once by the caller)
    and in same_images (those whose images are an earlier patient's: vcpred.validate.same_images);
    those the manifest excludes are listed with its reason."""
    from vcpred.predict import predict_patient
    from vcpred.predict.batch import Rate, prepared_ahead

    left_out, same_images = left_out or {}, same_images or {}
    rows, excluded, kinds = [], [], Counter()

    def leave_out(entry: dict, kind: str) -> None:
        excluded.append(entry)
        kinds[kind] += 1

    for patient in chosen.excluded:
        leave_out({"patient_id": patient.patient_id, "set": patient.set,
                   "reason": f"excluded in the manifest: {patient.reason}"}, MANIFEST)
    for record in chosen.records:
        if record.label is None:
            leave_out(_exclude(record, "no label (outcome unknown): not scored"), UNLABELLED)
        elif record.patient_id in left_out:
            leave_out({"patient_id": record.patient_id, "set": record.set, "reason": left_out[record.patient_id]}, OWN)
        elif record.patient_id in same_images:
            leave_out({"patient_id": record.patient_id, "set": record.set,
                       "reason": same_images[record.patient_id]}, SAME_IMAGES)
    labelled = [r for r in chosen.records
                if r.label is not None and r.patient_id not in left_out and r.patient_id not in same_images]
    rate = Rate()
    for record, prepared in prepared_ahead(bundle, labelled, desc="validate"):
        try:
            prediction = predict_patient(bundle, record, explain=False, allow_missing=allow_missing,
                                         prepared=prepared, strict_keys=False)
        except VcpredError as exc:
            leave_out(_exclude(record, str(exc)), FAILED)
            continue
        except Exception as exc:  # a bug must not cost the other patients their score
            if is_user_os_error(exc):  # a full disk or missing permissions concern every patient: stop
                raise
            leave_out(_exclude(record, f"internal error (a bug in vcpred): {type(exc).__name__}: {exc}"), FAILED)
            continue
        rows.append(_row(record, prediction.result))
    left = f"; {len(excluded)} left out: {left_out_counts(kinds)} (listed below)" if excluded else ""
    console.say(f"scored {len(rows)} patient(s) in {rate.seconds():.1f} s{left}")
    order = {patient.patient_id: patient.row for patient in (*chosen.records, *chosen.excluded)}
    excluded.sort(key=lambda entry: order[entry["patient_id"]])  # in manifest order, whatever the reason
    columns = ["patient_id", "set", "label", "probability", "sd", "low", "high", "threshold", "category",
               "borderline", "risk", "imputed"]
    table = pd.DataFrame(rows, columns=None if rows else columns)
    return Scored(table, excluded, Path(manifest), set_name, chosen.total, kinds)

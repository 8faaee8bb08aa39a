"""The split ensemble: the mean of the split models' external probabilities per patient, scored at
the median of the finite split thresholds (`per_split.development_threshold`, the rule exported
models use too; the median, so one split with an extreme threshold cannot drag it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.per_split import (
    calibration_summary,
    development_threshold,
    discrimination,
    scored,
    undefined_threshold_note,
)
from vcpred.evaluate.variants import Variant


@dataclass
class Ensemble:
    variant: Variant
    predictions: pd.DataFrame  # index patient_id; columns label (NaN = unlabelled), probability
    threshold: float  # NaN: undefined (threshold_note says why)
    metrics: dict
    threshold_note: str = ""  # why the threshold is undefined ('' when it is a number)

    @property
    def labelled(self) -> pd.DataFrame:
        return self.predictions[self.predictions["label"].notna()]


def two_per_class(ensemble: Ensemble) -> bool:
    """Whether its labelled patients hold at least 2 cases and 2 controls (a calibration or decision
    curve needs them)."""
    y = ensemble.labelled["label"]
    return min((y == 1).sum(), (y == 0).sum()) >= 2


def check_same_labels(a: pd.Series, b: pd.Series, where: str) -> None:
    """The same label (or none) for every patient in two tables indexed by patient_id."""
    differ = a.fillna(-1) != b.loc[a.index].fillna(-1)
    if differ.any():
        raise EvaluationError(f"{where} give patient {differ.idxmax()!r} different labels; "
                              "every run must carry the same labels")


def build_ensemble(variant: Variant, tables: dict[int, pd.DataFrame], thresholds: dict[int, float]
                   ) -> Ensemble | None:
    """Ensemble of one variant over its splits; None when no split predicts external patients.

    tables: split -> aggregated table (aggregate.aggregate); thresholds: split -> Youden threshold.
    """
    external = {k: t[t["set"] == "external"] for k, t in tables.items()}
    if all(t.empty for t in external.values()):
        return None
    reference_split, reference = next(iter(external.items()))
    for split, table in external.items():
        if set(table.index) != set(reference.index):
            raise EvaluationError(f"{variant.configuration}: split {split} predicts different external "
                                  f"patients than split {reference_split}; every split must predict "
                                  "the same external set")
        check_same_labels(table["label"], reference["label"],
                          f"{variant.configuration}: splits {split} and {reference_split}")
    probs = pd.concat({k: t["probability"] for k, t in external.items()}, axis=1)
    frame = pd.DataFrame({"label": reference["label"], "probability": probs.mean(axis=1)})
    threshold = development_threshold(thresholds.values())
    note = undefined_threshold_note([scored(t, "validation")["probability"].to_numpy() for t in tables.values()]
                                    ) if math.isnan(threshold) else ""
    known = frame[frame["label"].notna()]
    y, p = known["label"].to_numpy(int), known["probability"].to_numpy()
    metrics = discrimination(y, p, threshold) | calibration_summary(y, p)
    metrics["n_splits"] = len(tables)
    metrics["unlabelled"] = int(frame["label"].isna().sum())
    return Ensemble(variant, frame.sort_index(), threshold, metrics, note)

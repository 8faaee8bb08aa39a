"""Per-split metrics: validation AUC, the Youden threshold chosen on validation only, and the
external AUC, sensitivity and specificity at that threshold."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.runs import Run
from vcpred.evaluate.variants import Variant
from vcpred.stats import calibration, delong_ci, youden_threshold
from vcpred.stats.metrics import sensitivity_specificity

NAN = math.nan


def class_counts(labels: pd.Series) -> tuple[int, int]:
    """(cases, controls) among labelled rows."""
    known = labels.dropna()
    return int((known == 1).sum()), int((known == 0).sum())


def scored(table: pd.DataFrame, set_name: str) -> pd.DataFrame:
    """Labelled patients of one set (unlabelled external patients are predicted, never scored)."""
    return table[(table["set"] == set_name) & table["label"].notna()]


def missing_reason(cases: int, controls: int, need: int = 2) -> str | None:
    """Why a metric needing `need` labelled patients of each class is not computed (None when it is):
    the counts it has, so 'n/a' never claims a class is absent when it is only too small."""
    if cases >= need and controls >= need:
        return None
    if cases == 0 and controls == 0:
        return "no labelled patients"

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return f"needs at least {count(need, 'labelled case')} and {count(need, 'control')}; has {count(cases, 'case')} " \
           f"and {count(controls, 'control')}"


def ensemble_reason(metrics: dict | None, need: int = 2) -> str:
    """Why a number of a split ensemble (evaluation.json `ensembles`, with its n and n_cases) that needs
    `need` labelled patients of each class is n/a."""
    metrics = metrics or {}
    n, cases = metrics.get("n"), metrics.get("n_cases")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (n, cases)):
        return "not scored"
    return missing_reason(int(cases), int(n) - int(cases), need) or "not computed"


def external_reason(metrics: dict | None, need: int = 2) -> str:
    """ensemble_reason in words about the external set: 'the external set needs at least 2 labelled
    cases and 2 controls; has 1 case and 2 controls'."""
    reason = ensemble_reason(metrics, need)
    if reason.startswith("needs"):
        return f"the external set {reason}"
    if reason == "no labelled patients":
        return "the external set has no labelled patients"
    return f"external set {reason}"


def discrimination(labels: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC with DeLong CI (>= 2 per class) and sensitivity/specificity (>= 1 per class, and a threshold:
    NaN is an ensemble's undefined one, see undefined_threshold_note); NaN otherwise."""
    cases, controls = int((labels == 1).sum()), int((labels == 0).sum())
    out = {"n": len(labels), "n_cases": cases, "auc": NAN, "auc_ci_low": NAN, "auc_ci_high": NAN,
           "sensitivity": NAN, "specificity": NAN}
    if min(cases, controls) >= 2:
        out["auc"], out["auc_ci_low"], out["auc_ci_high"] = delong_ci(labels, prob)
    if min(cases, controls) >= 1 and not math.isnan(threshold):
        out["sensitivity"], out["specificity"] = sensitivity_specificity(labels, prob, threshold)
    return out


def calibration_summary(labels: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Slope, intercept (CITL) and Brier; NaN where the classes are too few to fit."""
    if min((labels == 1).sum(), (labels == 0).sum()) < 2:
        return {"calibration_slope": NAN, "calibration_intercept": NAN, "brier": NAN}
    result = calibration(labels, prob)
    return {"calibration_slope": result.slope, "calibration_intercept": result.intercept,
            "brier": result.brier}


def validation_threshold(table: pd.DataFrame, source: Path) -> tuple[float, np.ndarray, np.ndarray]:
    """Youden's threshold from the validation patients of one aggregated run table, never external.

    Returns (threshold, validation labels, validation probabilities). Also used by `vcpred export`.
    """
    val = scored(table, "validation")
    cases, controls = class_counts(val["label"])
    if min(cases, controls) < 2:
        raise EvaluationError(f"{source}: the validation set has {cases} case(s) and {controls} control(s); "
                              "choosing a threshold needs at least 2 of each")
    y_val, p_val = val["label"].to_numpy(int), val["probability"].to_numpy()
    return youden_threshold(y_val, p_val)[0], y_val, p_val


def development_threshold(thresholds) -> float:
    """A split ensemble's threshold: the median of the finite split thresholds (NaN when none is).

    A split whose Youden threshold is infinite (it never calls a patient positive; an exported
    model stores it as null) is left out rather than counted, so evaluation and `vcpred export`
    give the ensemble the same threshold."""
    finite = [float(t) for t in thresholds if t is not None and math.isfinite(t)]
    return float(np.median(finite)) if finite else math.nan


def undefined_threshold_note(validation: list[np.ndarray]) -> str:
    """What evaluate writes for a split ensemble whose threshold is undefined (development_threshold
    found no finite split threshold), from each split's validation probabilities. A split's Youden
    threshold is -inf exactly when no cut-off does better than calling every patient positive, which
    constant predictions always give."""
    consequence = ("which leaves no finite split threshold for the ensemble's median; its sensitivity, specificity "
                   "and risk categories are not computed (`vcpred export` refuses it)")
    if all(np.unique(probabilities).size == 1 for probabilities in validation):
        return ("undefined: the model's validation predictions are constant (one probability for every patient "
                f"of a split): Youden's threshold is -inf in every split (every patient positive), {consequence}")
    return ("undefined: no split has a finite Youden threshold (in each, no cut-off of the validation predictions "
            f"does better than calling every patient positive), {consequence}")


def split_row(variant: Variant, run: Run, table: pd.DataFrame) -> dict:
    """One per_split.csv row; table = aggregate(run.predictions, ap=variant.ap)."""
    threshold, y_val, p_val = validation_threshold(table, run.path / "predictions.csv")
    row = {"configuration": variant.configuration, "ap": variant.ap, "clinical": variant.clinical,
           "variant": variant.label, "split": run.split}
    if run.held_out_site is not None:  # leave-one-site-out: the split is a held-out development site
        row["held_out_site"] = run.held_out_site
    row.update({"n_train": run.n_train, "threshold": threshold})
    row.update({f"validation_{k}": v for k, v in discrimination(y_val, p_val, threshold).items()})
    ext = scored(table, "external")
    y_ext, p_ext = ext["label"].to_numpy(int), ext["probability"].to_numpy()
    row.update({f"external_{k}": v for k, v in discrimination(y_ext, p_ext, threshold).items()})
    row.update({f"external_{k}": v for k, v in calibration_summary(y_ext, p_ext).items()})
    row["external_unlabelled"] = int(((table["set"] == "external") & table["label"].isna()).sum())
    return row

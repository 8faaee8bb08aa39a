"""The numbers of an external validation, computed by the code `vcpred evaluate` uses for its split
ensembles (nothing is re-implemented here):

- AUC with its DeLong 95 % CI, sensitivity and specificity at the bundle's own threshold:
  vcpred.evaluate.per_split.discrimination (vcpred.stats.delong_ci, sensitivity_specificity);
- calibration intercept (calibration-in-the-large), slope and Brier score:
  vcpred.evaluate.per_split.calibration_summary (vcpred.stats.calibration); the slope's Wald 95 %
  interval: vcpred.evaluate.calibration.slope_ci;
- the binned calibration curve and the decision curve: vcpred.evaluate.calibration.calibration_curves
  and vcpred.evaluate.decision.decision_curves (typed records, written to metrics.json as evaluate
  writes them to evaluation.json), over the same threshold probabilities as evaluate (0.05-0.95);
- each split model's own AUC (the spread of the ensemble's members): vcpred.stats.roc_auc.

A number that cannot be computed is null in metrics.json with its reason under `not_computed`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vcpred.evaluate.calibration import VariantCalibration, calibration_curves, slope_ci
from vcpred.evaluate.core import DEFAULT_THRESHOLDS
from vcpred.evaluate.decision import DecisionCurves, decision_curves
from vcpred.evaluate.ensemble import Ensemble
from vcpred.evaluate.per_split import calibration_summary, discrimination, missing_reason
from vcpred.evaluate.variants import Variant
from vcpred.stats import roc_auc

NAN = math.nan
# metrics.json names -> the evaluate functions' keys
RENAMED = {"n_cases": "events"}


def as_ensemble(bundle, table: pd.DataFrame, probabilities=None, label: str | None = None) -> Ensemble:
    """The scored cohort as evaluate's Ensemble of the bundle's variant (probabilities: other values
    for the same patients, e.g. recalibrated ones)."""
    variant = Variant(label or bundle.meta.configuration, bool(bundle.meta.ap))
    p = table["probability"] if probabilities is None else probabilities
    frame = pd.DataFrame({"label": table["label"].to_numpy(float), "probability": np.asarray(p, float)},
                         index=pd.Index(table["patient_id"], name="patient_id"))
    return Ensemble(variant, frame, bundle.threshold, {})


def headline(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> tuple[dict, dict]:
    """(metrics, not_computed): discrimination at the threshold and calibration, with reasons."""
    labels = np.asarray(labels, dtype=int)
    cases, controls = int((labels == 1).sum()), int((labels == 0).sum())
    found = discrimination(labels, probabilities, threshold) | calibration_summary(labels, probabilities)
    metrics = {RENAMED.get(k, k): v for k, v in found.items()}
    metrics["calibration_slope_ci_low"], metrics["calibration_slope_ci_high"] = (
        slope_ci(labels, probabilities) if _finite(metrics.get("calibration_slope")) else (NAN, NAN))
    metrics["controls"] = controls
    metrics["threshold"] = threshold
    reasons = {}
    two = missing_reason(cases, controls, 2)
    one = missing_reason(cases, controls, 1)
    for key in ("auc", "auc_ci_low", "auc_ci_high", "calibration_intercept", "calibration_slope",
                "calibration_slope_ci_low", "calibration_slope_ci_high", "brier"):
        if not _finite(metrics.get(key)):
            reasons[key] = two or "the calibration model does not converge (the probabilities separate cases from " \
                                  "controls, or nearly)"
    for key in ("sensitivity", "specificity"):
        if not _finite(metrics.get(key)):
            reasons[key] = one or "not computed"
    return metrics, reasons


def _finite(value) -> bool:
    return isinstance(value, (int, float, np.floating)) and math.isfinite(value)


def split_model_aucs(scored) -> list[dict]:
    """Each split model's AUC on the cohort ({split, auc}); empty with fewer than 2 of a class."""
    labels = scored.labels
    if missing_reason(int((labels == 1).sum()), int((labels == 0).sum())):
        return []
    return [{"split": int(column.removeprefix("p_split_")), "auc": roc_auc(labels, scored.table[column].to_numpy())}
            for column in scored.split_columns()]


def curves(ensembles: dict) -> tuple[dict[str, VariantCalibration], DecisionCurves | None]:
    """(calibration per variant label, decision curves) of {Variant: Ensemble}, as evaluate computes them."""
    return calibration_curves(ensembles), decision_curves(ensembles, DEFAULT_THRESHOLDS)

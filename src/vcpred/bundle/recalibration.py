"""Logistic recalibration of a bundle's probabilities, and how prediction applies it.

The update: p' = expit(a + b * logit(p)), with p the model's ensemble probability (the mean over
split models) and (a, b) the intercept and slope of the logistic calibration model fitted on
labelled patients (vcpred.stats.calibration: logit P(y = 1) = a + b * logit(p), the slope model).
It is monotone (b > 0 is required), so the ranking of patients, every AUC and the patients called
high risk are unchanged when every threshold t is mapped to expit(a + b * logit(t)).

Two places fit one: `vcpred export` on the development patients' out-of-split probabilities
(vcpred.bundle.export_calibration), and `vcpred validate --recalibrate` on a labelled cohort
(vcpred.validate.recalibration). Both record it as bundle.json `recalibration`; `predict_patient`
applies it (`recalibrate_result`). Kept here, in the bundle layer, so export and prediction reach it
without importing `validate`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from vcpred.errors import VcpredError
from vcpred.stats.calibration import EPS

METHOD = ("logistic recalibration: p' = expit(a + b * logit(p)), p = the ensemble probability (mean over "
          "split models), a and b fitted on the cohort by maximum likelihood")


class RecalibrationError(VcpredError):
    """The cohort cannot support a recalibration (too few patients of a class, separation, slope <= 0)."""


def linear_predictor(probability) -> np.ndarray:
    """logit(p) with p clipped to [EPS, 1 - EPS] (vcpred.stats.calibration's clip)."""
    return logit(np.clip(np.asarray(probability, dtype=float), EPS, 1 - EPS))


def apply(probability, intercept: float, slope: float):
    """expit(a + b * logit(p)); a float for a float, an array for an array."""
    value = expit(intercept + slope * linear_predictor(probability))
    return float(value) if np.ndim(value) == 0 else value


def fit(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """(a, b) of the calibration slope model on these patients; RecalibrationError when it cannot be fitted."""
    from vcpred.evaluate.per_split import missing_reason
    from vcpred.stats import calibration

    labels = np.asarray(labels, dtype=int)
    cases, controls = int((labels == 1).sum()), int((labels == 0).sum())
    reason = missing_reason(cases, controls)
    if reason:
        raise RecalibrationError(f"cannot recalibrate: the calibration model {reason}")
    result = calibration(labels, probabilities)
    if not result.converged or not np.isfinite([result.slope, result.slope_fit_intercept]).all():
        raise RecalibrationError("cannot recalibrate: the calibration model does not converge on this cohort (the "
                                 "probabilities separate cases from controls, or nearly)")
    if result.slope <= 0:
        raise RecalibrationError(f"cannot recalibrate: the calibration slope on this cohort is {result.slope:.3f} "
                                 "(<= 0: the model ranks these patients the wrong way round); recalibration keeps "
                                 "the ranking, so it cannot repair that")
    return float(result.slope_fit_intercept), float(result.slope)


def composed(previous: dict | None, intercept: float, slope: float) -> tuple[float, float]:
    """(a, b) on the original models' probabilities of this update after an earlier one (or none)."""
    if not previous:
        return intercept, slope
    return intercept + slope * float(previous["intercept"]), slope * float(previous["slope"])


def recalibrate_result(result: dict, record: dict) -> dict:
    """A `predict_patient` result of a recalibrated bundle, with the probability, the split models'
    probabilities, their spread, category, borderline flag and risk on the recalibrated scale (the
    threshold in `result` is already the bundle's, on that scale), by the one rule of vcpred.predict.risk."""
    from vcpred.predict.risk import risk_fields

    a, b = float(record["intercept"]), float(record["slope"])
    raw = np.array([m["probability"] for m in result["per_model"]], dtype=float)
    before = float(raw.mean())
    models = apply(raw, a, b)
    probability, low, high = apply(before, a, b), float(models.min()), float(models.max())
    threshold = float(result["threshold"])
    out = dict(result)
    out.update(probability=probability, sd=float(models.std(ddof=1)) if len(models) > 1 else 0.0,
               interval={**result["interval"], "low": low, "high": high},
               **risk_fields(probability, low, high, threshold),
               per_model=[{**m, "probability": float(p)} for m, p in zip(result["per_model"], models)])
    out["recalibration"] = {
        "intercept": a, "slope": b, "probability_before": before, "cohort": record.get("cohort"),
        **({"fitted_at": record["fitted_at"]} if record.get("fitted_at") else {}),
        "note": "probability, split-model probabilities and thresholds recalibrated; per-frame probabilities are "
                "the split models' own"}
    return out

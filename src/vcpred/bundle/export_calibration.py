"""`vcpred export`'s recalibration: fitted on the development patients' out-of-split probabilities,
its calibration measured by cross-fitting, recorded in bundle.json.

The split models' probabilities are often too compressed (calibration slope 2 on the synthetic
cohorts, 4-8 for fine-tuned backbones), so the "probability of collapse" a bundle gives overstates
low risks and understates high ones. Export pools each development patient's probability from the
split models that did not train on it (vcpred.evaluate.out_of_split; AP-aggregated as the bundle
predicts) and fits the logistic recalibration p' = expit(a + b * logit(p)) on it
(vcpred.bundle.recalibration.fit, the same fit as `vcpred validate --recalibrate`).

Its calibration is never measured on the patients it was fitted on: the pooled patients are cut
into FOLDS stratified folds (seed SEED); each fold's probabilities are recalibrated by a fit on the
other folds, and the calibration (mean probability minus prevalence, slope, intercept, Brier) of
these cross-fitted probabilities is compared with that of the raw ones. The external set, when
labelled, is scored before and after too; it fits and chooses nothing.

Recalibration needs at least MIN_PER_CLASS cases and MIN_PER_CLASS controls among the pooled
patients (a two-parameter fit on fewer is too noisy to improve on the raw probabilities), and a fit
that converges with a positive slope on all patients and on every fold; otherwise the bundle is
exported without, and says why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vcpred import __version__
from vcpred.bundle.recalibration import METHOD, RecalibrationError, apply, fit
from vcpred.evaluate.out_of_split import out_of_split
# cases and controls among the pooled development patients: the one small-sample minimum, which
# `vcpred validate --recalibrate` requires too
from vcpred.evaluate.small_sample import MIN_PER_CLASS
FOLDS = 5
SEED = 0
SOURCE = ("out-of-split: each development patient's mean probability over the split models that validated it "
          "(none of them trained on it), AP-aggregated as the bundle predicts")
CROSS_FITTING = (f"{FOLDS}-fold cross-fitting over patients, stratified by label (seed {SEED}): each fold's "
                 "probabilities recalibrated by a fit on the other folds, so no patient is scored by a fit it was "
                 "part of")


@dataclass
class ExportCalibration:
    """record: bundle.json `recalibration` (None: not recalibrated); validation: bundle.json
    `validation_calibration`; line: the one line export prints about it."""

    record: dict | None
    validation: dict
    line: str


def measures(labels: np.ndarray, probabilities: np.ndarray) -> dict | None:
    """Calibration of probabilities on labelled patients: n, events, prevalence, mean probability and
    its difference from the prevalence, slope, intercept (calibration-in-the-large), Brier; None with
    fewer than 2 of a class (the slope cannot be fitted)."""
    from vcpred.evaluate.per_split import calibration_summary

    labels, probabilities = np.asarray(labels, dtype=int), np.asarray(probabilities, dtype=float)
    if min((labels == 1).sum(), (labels == 0).sum()) < 2:
        return None
    prevalence, mean = float(labels.mean()), float(probabilities.mean())
    return {"n": len(labels), "events": int(labels.sum()), "prevalence": prevalence, "mean_probability": mean,
            "mean_minus_prevalence": mean - prevalence, **calibration_summary(labels, probabilities)}


def cross_fitted(labels: np.ndarray, probabilities: np.ndarray, *, folds: int = FOLDS, seed: int = SEED
                 ) -> np.ndarray:
    """Each patient's probability recalibrated by a fit on the other folds (stratified, shuffled with
    seed); RecalibrationError when a fold's fit fails."""
    from sklearn.model_selection import StratifiedKFold

    labels, probabilities = np.asarray(labels, dtype=int), np.asarray(probabilities, dtype=float)
    out = np.empty_like(probabilities)
    for k, (train, held_out) in enumerate(
            StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(probabilities, labels)):
        try:
            intercept, slope = fit(labels[train], probabilities[train])
        except RecalibrationError as exc:
            raise RecalibrationError(f"{exc} (cross-fitting fold {k + 1} of {folds})") from None
        out[held_out] = apply(probabilities[held_out], intercept, slope)
    return out


def external_ensemble(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """The labelled external patients' split-ensemble probability (the mean over split models, as the
    bundle predicts): index patient_id, columns label, probability."""
    external = {k: t[(t["set"] == "external") & t["label"].notna()] for k, t in tables.items()}
    if not external or any(t.empty for t in external.values()):
        return pd.DataFrame(columns=["label", "probability"])
    probabilities = pd.concat({k: t["probability"] for k, t in external.items()}, axis=1).mean(axis=1)
    labels = next(iter(external.values()))["label"].astype(int)
    return pd.DataFrame({"label": labels.loc[probabilities.index], "probability": probabilities})


def _refusal(pooled: pd.DataFrame, enabled: bool) -> str | None:
    """Why export does not recalibrate (None: it does)."""
    if not enabled:
        return "turned off (--no-recalibrate)"
    cases = int(pooled["label"].sum())
    controls = len(pooled) - cases
    if min(cases, controls) < MIN_PER_CLASS:
        return (f"the {len(pooled)} development patients with out-of-split predictions hold {cases} case(s) and "
                f"{controls} control(s); recalibration needs at least {MIN_PER_CLASS} of each")
    return None


def _external(tables: dict[int, pd.DataFrame], intercept: float | None, slope: float | None) -> dict | None:
    table = external_ensemble(tables)
    y, p = table["label"].to_numpy(int), table["probability"].to_numpy(float)
    before = measures(y, p)
    if before is None:
        return None
    after = measures(y, apply(p, intercept, slope)) if intercept is not None else None
    return {"before": before, "after": after,
            "note": "the split ensemble on the labelled external patients, which fit and choose nothing"}


def export_calibration(tables: dict[int, pd.DataFrame], *, enabled: bool, cohort: dict) -> ExportCalibration:
    """The export's recalibration of the split models' tables (split -> aggregate table of the
    exported variant). cohort: manifest, manifest_sha256, synthetic (of the training manifest)."""
    pooled = out_of_split(tables)
    y, p = pooled["label"].to_numpy(int), pooled["probability"].to_numpy(float)
    validation = {"source": SOURCE, "patients": len(pooled), "events": int(y.sum()),
                  "minimum_per_class": MIN_PER_CLASS, "cross_fitting": CROSS_FITTING, "folds": FOLDS, "seed": SEED,
                  "before": measures(y, p), "after": None, "recalibrated": False, "reason": _refusal(pooled, enabled)}
    intercept = slope = None
    if validation["reason"] is None:
        try:
            intercept, slope = fit(y, p)
            validation["after"] = measures(y, cross_fitted(y, p))
        except RecalibrationError as exc:
            intercept = slope = None
            validation["reason"] = str(exc).removeprefix("cannot recalibrate: ")
    validation["external"] = _external(tables, intercept, slope)
    if intercept is None:
        return ExportCalibration(None, validation, f"not recalibrated: {validation['reason']}; the probabilities "
                                                   "are the split models' own")
    validation["recalibrated"] = True
    record = {"method": METHOD, "fitted_at": "export", "intercept": intercept, "slope": slope,
              "fit": {"intercept": intercept, "slope": slope},
              "cohort": {**cohort, "set": "development", "n": len(pooled), "events": int(y.sum()),
                         "patients": [str(i) for i in pooled.index], "predictions": SOURCE},
              "recalibrated_from": None, "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
              "vcpred_version": __version__}
    return ExportCalibration(record, validation, _summary_line(validation, intercept, slope))


def _summary_line(validation: dict, intercept: float, slope: float) -> str:
    before, after = validation["before"], validation["after"]
    return (f"recalibrated on the out-of-split probabilities of {validation['patients']} development patients "
            f"({validation['events']} events): p' = expit({intercept:.3f} + {slope:.3f} × logit(p)); cross-fitted "
            f"validation calibration: slope {before['calibration_slope']:.2f} -> {after['calibration_slope']:.2f}, "
            f"mean probability - prevalence {before['mean_minus_prevalence']:+.3f} -> "
            f"{after['mean_minus_prevalence']:+.3f}")

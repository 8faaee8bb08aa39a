"""The one small-sample rule of vcpred (docs/evaluation.md, "Small samples"), and what follows from it
for calibration curves. evaluate, export's card, validate, its recalibration and the report all read it
from here, so a set is "small" in the same words everywhere.

- A set of labelled patients is **small** when it has fewer than MIN_PER_CLASS cases or fewer than
  MIN_PER_CLASS controls. Its AUC, sensitivity, specificity and calibration are then rough (read
  their confidence intervals), and a "best" variant or a p-value resting on it is not reliable. It is
  a floor, not a sufficient size: validation guidance (Collins et al. 2016; Riley et al. 2021) asks for
  100 events or more.
- The same MIN_PER_CLASS is the least a logistic recalibration is fitted on: `vcpred export` does not
  recalibrate below it and `vcpred validate --recalibrate` refuses below it unless --force-small.
- A binned calibration curve uses quantile bins of at least PATIENTS_PER_BIN patients: at most
  n // PATIENTS_PER_BIN bins (MAX_BINS at the most, MIN_BINS at the least), so 10 patients give 2 bins
  of 5, not 10 bins of one patient each that zig-zag between 0 and 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

MIN_PER_CLASS = 10  # cases and controls a set needs not to be "small"; also the recalibration minimum
PATIENTS_PER_BIN = 10
MIN_BINS, MAX_BINS = 2, 10
LEVEL = 0.95  # of the calibration slope's Wald interval
EPS = 1e-6  # the clip before logit, as in vcpred.stats.calibration


@dataclass(frozen=True)
class SampleSize:
    """The labelled patients of one set: `where` names it in a sentence ("the external set")."""

    where: str
    cases: int
    controls: int

    @property
    def small(self) -> bool:
        return 0 < self.cases + self.controls and min(self.cases, self.controls) < MIN_PER_CLASS

    def warning(self, consequence: str = "its AUC and calibration are imprecise") -> str | None:
        """'small sample: the external set has 3 case(s) and 7 control(s), fewer than 10 of each; ...'
        (None when the set is not small)."""
        if not self.small:
            return None
        return (f"small sample: {self.where} has {self.cases} case(s) and {self.controls} control(s), fewer than "
                f"{MIN_PER_CLASS} of each; {consequence}")

    def record(self, consequence: str = "its AUC and calibration are imprecise") -> dict:
        """The JSON record (metrics.json, evaluation.json, bundle.json): counts, the rule and the warning."""
        return {"where": self.where, "cases": self.cases, "controls": self.controls,
                "minimum_per_class": MIN_PER_CLASS, "small": self.small, "warning": self.warning(consequence)}


def as_sentence(warning: str) -> str:
    """A warning as a sentence on a page: 'Small sample: ... .'"""
    return warning[0].upper() + warning[1:].rstrip(".") + "."


def sample_size(labels, where: str) -> SampleSize:
    """The SampleSize of 0/1 labels (missing labels not counted)."""
    labels = np.asarray(labels, dtype=float)
    labels = labels[~np.isnan(labels)]
    cases = int((labels == 1).sum())
    return SampleSize(where, cases, len(labels) - cases)


def calibration_bins(n: int) -> int:
    """How many quantile bins a calibration curve of n patients gets (at least PATIENTS_PER_BIN each)."""
    return max(MIN_BINS, min(MAX_BINS, n // PATIENTS_PER_BIN))


def slope_interval(probabilities, slope: float, intercept: float) -> tuple[float, float]:
    """Wald 95 % interval of the calibration slope b in logit P(y = 1) = a + b * logit(p), at the
    fitted (a, b): b -/+ z * SE(b), SE from the inverse Fisher information X'WX (which, for a logistic
    model, does not depend on the labels). (NaN, NaN) when the fit has no slope or the information is
    singular."""
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        return math.nan, math.nan
    lp = logit(np.clip(np.asarray(probabilities, dtype=float), EPS, 1 - EPS))
    x = np.column_stack([np.ones_like(lp), lp])
    fitted = expit(intercept + slope * lp)
    information = x.T @ (x * (fitted * (1 - fitted))[:, None])
    try:
        variance = float(np.linalg.inv(information)[1, 1])
    except np.linalg.LinAlgError:
        return math.nan, math.nan
    if not (math.isfinite(variance) and variance > 0):
        return math.nan, math.nan
    half = norm.ppf(0.5 + LEVEL / 2) * math.sqrt(variance)
    return slope - half, slope + half


INTERNAL_CONSEQUENCE = ("the per-split validation AUCs, the internal p-values and the choice of the best variant rest "
                        "on very few patients: treat them as exploratory, not as evidence that one variant is better")
EXTERNAL_CONSEQUENCE = ("the external AUC, calibration and p-values are imprecise: read their confidence intervals, "
                        "and a p-value above or below 0.05 decides nothing")


def evaluation_sizes(per_split, ensembles: dict) -> dict:
    """evaluation.json `small_sample`: the smallest split's validation patients (internal) and the
    labelled external patients (external; None when there are none), each with the rule's record, and
    `warnings`, the sentences of the small ones. per_split: evaluate's per_split.csv rows."""
    internal = None
    if len(per_split):
        counts = per_split.groupby("split")[["validation_n", "validation_n_cases"]].min()
        controls = counts["validation_n"] - counts["validation_n_cases"]
        smallest = int(np.minimum(counts["validation_n_cases"], controls).idxmin())
        where = (f"the validation set of split {smallest} (the smallest of {len(counts)} splits)" if len(counts) > 1
                 else f"the validation set of split {smallest}")
        internal = SampleSize(where, int(counts.loc[smallest, "validation_n_cases"]),
                              int(controls.loc[smallest])).record(INTERNAL_CONSEQUENCE)
    labelled = [(int(e.metrics.get("n", 0) or 0), int(e.metrics.get("n_cases", 0) or 0)) for e in ensembles.values()]
    n, cases = max(labelled, default=(0, 0))
    external = SampleSize("the external set", cases, n - cases).record(EXTERNAL_CONSEQUENCE) if n else None
    warnings = [r["warning"] for r in (internal, external) if r and r["warning"]]
    return {"minimum_per_class": MIN_PER_CLASS, "internal": internal, "external": external, "warnings": warnings}

"""Calibration of each split ensemble on the external set (evaluation.json `calibration`): slope with
its Wald 95 % interval, intercept (calibration-in-the-large), Brier and the binned curve
(vcpred.stats.calibration), one `VariantCalibration` per variant label. The curve's quantile bins
adapt to n (vcpred.evaluate.small_sample.calibration_bins: at least 10 patients a bin). `vcpred
validate` computes its curves with the same code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from vcpred.evaluate.ensemble import Ensemble, two_per_class
from vcpred.evaluate.small_sample import calibration_bins, slope_interval
from vcpred.jsonio import from_dict, to_dict
from vcpred.stats import calibration


@dataclass(frozen=True)
class BinnedCurve:
    """The reliability curve: one entry per non-empty bin (vcpred.stats.CalibrationCurve as JSON lists)."""

    bin_low: tuple[float, ...]
    bin_high: tuple[float, ...]
    mean_predicted: tuple[float, ...]
    observed_fraction: tuple[float, ...]
    count: tuple[int, ...]


@dataclass(frozen=True)
class VariantCalibration:
    """One variant's ensemble calibration; slope and intercept are NaN (null in JSON) when the
    logistic fit does not converge (converged False)."""

    slope: float
    intercept: float
    brier: float
    converged: bool
    n: int
    curve: BinnedCurve
    slope_ci_low: float = math.nan  # Wald 95 % interval (small_sample.slope_interval); NaN in older files
    slope_ci_high: float = math.nan

    @property
    def has_slope(self) -> bool:
        """Whether the slope is a number (a plot's legend quotes it)."""
        return math.isfinite(self.slope)

    def bin_intervals(self) -> tuple[list[float], list[float]]:
        """Wilson 95 % interval of each bin's observed fraction (lows, highs): the curve's uncertainty."""
        from scipy.stats import binomtest

        lows, highs = [], []
        for fraction, count in zip(self.curve.observed_fraction, self.curve.count):
            interval = binomtest(round(fraction * count), count).proportion_ci(confidence_level=0.95, method="wilson")
            lows.append(float(interval.low))
            highs.append(float(interval.high))
        return lows, highs


def calibration_curves(ensembles: Mapping[object, Ensemble]) -> dict[str, VariantCalibration]:
    """Per variant label, the calibration of its ensemble's labelled probabilities, the curve in
    calibration_bins(n) quantile bins (variants with fewer than 2 patients of a class are left out)."""
    out = {}
    for variant, ens in ensembles.items():
        if not two_per_class(ens):
            continue
        probabilities = ens.labelled["probability"].to_numpy()
        r = calibration(ens.labelled["label"].to_numpy(int), probabilities,
                        n_bins=calibration_bins(len(probabilities)), strategy="quantile")
        c = r.curve
        curve = BinnedCurve(tuple(map(float, c.bin_low)), tuple(map(float, c.bin_high)),
                            tuple(map(float, c.mean_predicted)), tuple(map(float, c.observed_fraction)),
                            tuple(map(int, c.count)))
        low, high = slope_interval(probabilities, r.slope, r.slope_fit_intercept)
        out[variant.label] = VariantCalibration(float(r.slope), float(r.intercept), float(r.brier),
                                                bool(r.converged), int(r.n), curve, low, high)
    return out


def slope_ci(labels, probabilities) -> tuple[float, float]:
    """The calibration slope's Wald 95 % interval on these patients (NaN, NaN when it cannot be fitted:
    fewer than 2 of a class, or no convergence)."""
    labels = np.asarray(labels, dtype=int)
    if min((labels == 1).sum(), (labels == 0).sum()) < 2:
        return math.nan, math.nan
    result = calibration(labels, probabilities)
    return slope_interval(probabilities, result.slope, result.slope_fit_intercept)


def calibration_json(curves: Mapping[str, VariantCalibration]) -> dict:
    """evaluation.json `calibration` (and validate's metrics.json `calibration_curve`)."""
    return {label: to_dict(record) for label, record in curves.items()}


def read_calibration(data: Mapping | None) -> dict[str, VariantCalibration]:
    """`calibration_json` read back (None or {}: none); ValueError when it is not one."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"calibration: expected an object, got {type(data).__name__}")
    return {label: from_dict(VariantCalibration, value, f"calibration[{label!r}]") for label, value in data.items()}

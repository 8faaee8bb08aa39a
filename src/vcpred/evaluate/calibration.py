"""Calibration of each split ensemble on the external set (evaluation.json `calibration`): slope,
intercept (calibration-in-the-large), Brier and the binned curve (vcpred.stats.calibration), one
`VariantCalibration` per variant label. `vcpred validate` computes its curves with the same code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from vcpred.evaluate.ensemble import Ensemble, two_per_class
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

    @property
    def has_slope(self) -> bool:
        """Whether the slope is a number (a plot's legend quotes it)."""
        return math.isfinite(self.slope)


def calibration_curves(ensembles: Mapping[object, Ensemble], n_bins: int = 10) -> dict[str, VariantCalibration]:
    """Per variant label, the calibration of its ensemble's labelled probabilities (variants with
    fewer than 2 patients of a class are left out)."""
    out = {}
    for variant, ens in ensembles.items():
        if not two_per_class(ens):
            continue
        r = calibration(ens.labelled["label"].to_numpy(int), ens.labelled["probability"].to_numpy(), n_bins=n_bins)
        c = r.curve
        curve = BinnedCurve(tuple(map(float, c.bin_low)), tuple(map(float, c.bin_high)),
                            tuple(map(float, c.mean_predicted)), tuple(map(float, c.observed_fraction)),
                            tuple(map(int, c.count)))
        out[variant.label] = VariantCalibration(float(r.slope), float(r.intercept), float(r.brier),
                                                bool(r.converged), int(r.n), curve)
    return out


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

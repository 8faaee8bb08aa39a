"""Calibration of predicted probabilities: slope, intercept (calibration-in-the-large), Brier, curve.

Definitions (TRIPOD; Van Calster et al. 2016), with lp = logit(prob):
- slope: b in logit P(y = 1) = a + b * lp (ideal 1; < 1 means predictions too extreme);
- intercept, calibration-in-the-large (CITL): c in logit P(y = 1) = c + offset(lp), i.e. the
  slope fixed at 1 (ideal 0; > 0 means predictions too low on average);
- Brier score: mean((prob - y)^2);
- curve: observed fraction of cases against mean predicted probability per bin.
The logistic fits use our own Newton-Raphson (IRLS) below, since statsmodels is not a dependency.
Probabilities of exactly 0 or 1 are clipped to [EPS, 1 - EPS] before the logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, logit

from vcpred.stats._checks import as_labels, as_probabilities
from vcpred.stats.errors import StatsError

EPS = 1e-6  # clip for logit(0) and logit(1); logit(1e-6) ~ -13.8
MAX_ITER = 50


@dataclass(frozen=True)
class CalibrationCurve:
    """Binned reliability curve; every array has one entry per non-empty bin, shape (k,)."""

    bin_low: np.ndarray
    bin_high: np.ndarray
    mean_predicted: np.ndarray
    observed_fraction: np.ndarray
    count: np.ndarray


@dataclass(frozen=True)
class CalibrationResult:
    """Calibration of probabilities; slope/intercept are NaN when the fit does not converge
    (e.g. the probabilities separate the classes perfectly), with converged = False."""

    slope: float
    intercept: float
    slope_fit_intercept: float  # a in the slope model, reported for completeness
    brier: float
    curve: CalibrationCurve
    converged: bool
    n: int


def _newton_logistic(x: np.ndarray, y: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, bool]:
    """Maximum-likelihood beta of logit P(y=1) = x @ beta + offset; x (n, p). Returns (beta, converged)."""
    beta = np.zeros(x.shape[1])
    for _ in range(MAX_ITER):
        p = expit(x @ beta + offset)
        w = p * (1 - p)
        hessian = x.T @ (x * w[:, None])
        try:
            step = np.linalg.solve(hessian, x.T @ (y - p))
        except np.linalg.LinAlgError:
            return np.full(x.shape[1], np.nan), False
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.abs(beta).max() > 1e6:
            return np.full(x.shape[1], np.nan), False
        if np.abs(step).max() < 1e-10:
            return beta, True
    return np.full(x.shape[1], np.nan), False  # no convergence: separation or near it


def calibration_curve(y: np.ndarray, prob: np.ndarray, n_bins: int = 10,
                      strategy: str = "uniform") -> CalibrationCurve:
    """Bins of equal width on [0, 1] ("uniform") or of equal count ("quantile"); empty bins dropped."""
    if strategy == "uniform":
        edges = np.round(np.linspace(0.0, 1.0, n_bins + 1), 12)  # 0.6, not 0.6000000000000001
    elif strategy == "quantile":  # tied probabilities merge bins (one bin when all are equal)
        inner = np.quantile(prob, np.linspace(0, 1, n_bins + 1)[1:-1])
        edges = np.unique(np.concatenate(([0.0], inner, [1.0])))
    else:
        raise StatsError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    index = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, len(edges) - 2)
    count = np.bincount(index, minlength=len(edges) - 1)
    keep = count > 0
    sum_p = np.bincount(index, weights=prob, minlength=len(edges) - 1)
    sum_y = np.bincount(index, weights=y, minlength=len(edges) - 1)
    return CalibrationCurve(edges[:-1][keep], edges[1:][keep], sum_p[keep] / count[keep],
                            sum_y[keep] / count[keep], count[keep])


def calibration(y_true: ArrayLike, prob: ArrayLike, *, n_bins: int = 10,
                strategy: str = "uniform") -> CalibrationResult:
    """Calibration slope, intercept (CITL), Brier score and binned curve.

    y_true: (n,) 0/1 labels (>= 2 per class); prob: (n,) predicted probabilities in [0, 1].
    """
    y = as_labels(y_true).astype(float)
    p = as_probabilities(prob)
    if len(p) != len(y):
        raise StatsError(f"prob has {len(p)} values but y_true has {len(y)}; they must be the same length")
    if n_bins < 1:
        raise StatsError(f"n_bins must be >= 1, got {n_bins}")
    lp = logit(np.clip(p, EPS, 1 - EPS))
    ones = np.ones((len(y), 1))
    (a, b), ok_slope = _newton_logistic(np.hstack((ones, lp[:, None])), y, np.zeros(len(y)))
    (c,), ok_citl = _newton_logistic(ones, y, lp)
    brier = float(np.mean((p - y) ** 2))
    curve = calibration_curve(y, p, n_bins, strategy)
    return CalibrationResult(float(b), float(c), float(a), brier, curve, ok_slope and ok_citl, len(y))

"""Decision-curve analysis (Vickers & Elkin 2006): net benefit of acting on predictions.

At threshold probability pt a patient is treated when prob >= pt, and
net benefit = TP/n - FP/n * pt / (1 - pt). Treat-none has net benefit 0 at every pt;
treat-all has prevalence - (1 - prevalence) * pt / (1 - pt).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vcpred.stats._checks import as_labels, as_probabilities, as_scores
from vcpred.stats.errors import StatsError


def _as_thresholds(thresholds: ArrayLike) -> np.ndarray:
    pt = np.atleast_1d(as_scores(np.atleast_1d(thresholds), "thresholds"))
    if ((pt <= 0) | (pt >= 1)).any():
        raise StatsError("thresholds must lie strictly between 0 and 1 (threshold probabilities), "
                         f"got min {pt.min()!r}, max {pt.max()!r}")
    return pt


def net_benefit(y_true: ArrayLike, prob: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """Net benefit of treating when prob >= pt, for each threshold probability pt.

    y_true: (n,) 0/1 labels (>= 2 per class); prob: (n,) probabilities in [0, 1];
    thresholds: (k,) values in (0, 1). Returns shape (k,).
    """
    y = as_labels(y_true)
    p = as_probabilities(prob)
    if len(p) != len(y):
        raise StatsError(f"prob has {len(p)} values but y_true has {len(y)}; they must be the same length")
    pt = _as_thresholds(thresholds)
    treated = p[None, :] >= pt[:, None]  # (k, n)
    tp = (treated & (y == 1)).sum(axis=1)
    fp = (treated & (y == 0)).sum(axis=1)
    return tp / len(y) - fp / len(y) * pt / (1 - pt)


def net_benefit_treat_all(y_true: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """Net benefit of treating everyone, for each threshold probability; shape (k,)."""
    y = as_labels(y_true)
    pt = _as_thresholds(thresholds)
    prevalence = y.mean()
    return prevalence - (1 - prevalence) * pt / (1 - pt)

"""DeLong's variance of the AUC and the paired test of two correlated AUCs.

DeLong, DeLong & Clarke-Pearson (1988), computed with the fast algorithm of Sun & Xu (2014):
structural components ("placements") from midranks, O(n log n) per score. Matches R's pROC
(`ci.auc(method = "delong")`, `roc.test(method = "delong", paired = TRUE)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, rankdata

from vcpred.stats._checks import as_scores, check_level, check_pair
from vcpred.stats.errors import StatsError


@dataclass(frozen=True)
class DeLongResult:
    """Paired DeLong test of AUC(a) - AUC(b); z is signed like the difference, p is two-sided."""

    auc_a: float
    auc_b: float
    z: float
    p_value: float
    diff_ci_low: float
    diff_ci_high: float
    level: float = 0.95

    @property
    def difference(self) -> float:
        return self.auc_a - self.auc_b


def placements(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sun & Xu structural components for k scores on the same cases and controls.

    labels: (n,) 0/1; scores: (k, n). Returns (auc (k,), v10 (k, m), v01 (k, l)) for m cases and
    l controls: v10[i] is the share of controls below case i (ties 1/2), v01[j] the share of cases
    above control j. auc = v10.mean(axis=1).
    """
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    m, n = pos.shape[1], neg.shape[1]
    both = rankdata(np.concatenate((pos, neg), axis=1), axis=1)  # midranks within the pooled sample
    v10 = (both[:, :m] - rankdata(pos, axis=1)) / n
    v01 = 1.0 - (both[:, m:] - rankdata(neg, axis=1)) / m
    return v10.mean(axis=1), v10, v01


def delong_covariance(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(auc (k,), covariance of the AUC estimates (k, k)): S10/m + S01/n with n-1 denominators."""
    auc, v10, v01 = placements(labels, scores)
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return auc, s10 / v10.shape[1] + s01 / v01.shape[1]


def delong_ci(y_true: ArrayLike, y_score: ArrayLike, level: float = 0.95) -> tuple[float, float, float]:
    """(auc, low, high): the AUC and its DeLong confidence interval, clipped to [0, 1] as pROC does.

    y_true: (n,) 0/1 labels with >= 2 of each class; y_score: (n,) scores; level in (0, 1).
    A zero variance (e.g. perfect separation, constant scores) gives low = high = auc.
    """
    level = check_level(level)
    labels, scores = check_pair(y_true, y_score)
    auc, cov = delong_covariance(labels, scores[None, :])
    half = norm.ppf(0.5 + level / 2) * np.sqrt(max(float(cov[0, 0]), 0.0))
    a = float(auc[0])
    return a, float(max(a - half, 0.0)), float(min(a + half, 1.0))


def delong_test(y_true: ArrayLike, score_a: ArrayLike, score_b: ArrayLike,
                level: float = 0.95) -> DeLongResult:
    """Paired DeLong test of two scores on the same patients (pROC's `roc.test(paired = TRUE)`).

    y_true: (n,) 0/1 labels (>= 2 per class); score_a, score_b: (n,) scores of the same patients
    in the same order. z = (AUC_a - AUC_b) / sd, p = 2 * Phi(-|z|), and the difference's
    confidence interval is (AUC_a - AUC_b) +- Phi^-1(0.5 + level/2) * sd (not clipped).
    When the difference has zero variance (identical rankings, or both AUCs 1) z = 0 and p = 1
    if the AUCs are equal, as pROC reports; otherwise z = +-inf and p = 0.
    """
    level = check_level(level)
    labels, a = check_pair(y_true, score_a, "score_a")
    b = as_scores(score_b, "score_b")
    if len(b) != len(a):
        raise StatsError(f"score_b has {len(b)} values but score_a has {len(a)}; "
                         "a paired test needs both scores for the same patients")
    auc, cov = delong_covariance(labels, np.vstack((a, b)))
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    sd = np.sqrt(var) if var > 1e-15 else 0.0  # rounding can leave a tiny negative variance
    if sd == 0.0:
        z = 0.0 if abs(diff) < 1e-15 else float(np.sign(diff) * np.inf)
    else:
        z = diff / sd
    p = float(2 * norm.sf(abs(z)))
    half = float(norm.ppf(0.5 + level / 2) * sd)
    return DeLongResult(float(auc[0]), float(auc[1]), float(z), p, diff - half, diff + half, level)

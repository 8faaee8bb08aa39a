"""Discrimination: ROC AUC, Youden's threshold, sensitivity and specificity.

Conventions (those of R's pROC with `direction = "<"`): label 1 is a case, higher scores mean
"more likely a case", and a case is called positive when `score >= threshold`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from vcpred.stats._checks import as_labels, as_scores, check_pair
from vcpred.stats.errors import StatsError


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve, P(case score > control score) + 0.5 P(tie).

    y_true: (n,) 0/1 labels with at least two of each class; y_score: (n,) finite scores.
    Ties count one half (midranks, the Mann-Whitney statistic); constant scores give 0.5.
    """
    labels, scores = check_pair(y_true, y_score)
    return _auc_from_ranks(labels, scores)


def _auc_from_ranks(labels: np.ndarray, scores: np.ndarray) -> float:
    ranks = rankdata(scores)  # midranks for ties
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    rank_sum = float(ranks[labels == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def roc_thresholds(y_score: np.ndarray) -> np.ndarray:
    """Candidate thresholds exactly as pROC builds them; shape (n_unique + 1,), ascending.

    -inf, the midpoints between adjacent distinct scores, +inf. Where a midpoint rounds onto the
    lower score (adjacent floats) pROC moves it to the upper score, so `>=` still splits the pair.
    """
    unique = np.unique(y_score)
    low = np.concatenate(([-np.inf], unique))
    high = np.concatenate((unique, [np.inf]))
    with np.errstate(over="ignore", invalid="ignore"):
        mid = (low + high) / 2
        mid_safe = low / 2 + high / 2  # pROC's fallback when (a + b) overflows
    thresholds = np.where(np.abs(mid) > 1e100, mid_safe, mid)
    onto_lower = thresholds[1:-1] == unique[:-1]
    thresholds[1:-1][onto_lower] = unique[1:][onto_lower]
    return thresholds


def _sens_spec_at(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and specificity at each threshold (positive when score >= t); shapes (k,)."""
    cases = np.sort(scores[labels == 1])
    controls = np.sort(scores[labels == 0])
    tp = len(cases) - np.searchsorted(cases, thresholds, side="left")
    tn = np.searchsorted(controls, thresholds, side="left")
    return tp / len(cases), tn / len(controls)


def youden_threshold(y_true: ArrayLike, y_score: ArrayLike) -> tuple[float, float, float]:
    """Threshold maximising Youden's J = sensitivity + specificity - 1, as pROC reports it.

    y_true: (n,) 0/1 labels (>= 2 per class); y_score: (n,) scores.
    Returns (threshold, sensitivity, specificity). The threshold is a midpoint between adjacent
    distinct scores (or -inf/+inf). J is compared with exact float equality, like pROC; when
    several thresholds share the maximum, pROC lists them all in ascending order and this returns
    the first (the lowest threshold, i.e. the most sensitive). Constant scores give -inf (all
    positive: sensitivity 1, specificity 0).
    """
    labels, scores = check_pair(y_true, y_score)
    thresholds = roc_thresholds(scores)
    sens, spec = _sens_spec_at(labels, scores, thresholds)
    criterion = sens + spec  # pROC's se + r * sp with r = 1 for Youden
    best = int(np.flatnonzero(criterion == criterion.max())[0])
    return float(thresholds[best]), float(sens[best]), float(spec[best])


def sensitivity_specificity(y_true: ArrayLike, y_score: ArrayLike, threshold: float
                            ) -> tuple[float, float]:
    """(sensitivity, specificity) with a case positive when score >= threshold.

    y_true: (n,) 0/1 labels with at least one of each class; y_score: (n,) scores;
    threshold: a float (-inf and +inf allowed).
    """
    labels = as_labels(y_true, min_per_class=1)
    scores = as_scores(y_score, "y_score")
    if len(scores) != len(labels):
        raise StatsError(f"y_score has {len(scores)} values but y_true has {len(labels)}; "
                         "they must be the same length")
    if np.isnan(threshold):
        raise StatsError("threshold is NaN; pass a number (e.g. from youden_threshold)")
    sens, spec = _sens_spec_at(labels, scores, np.array([float(threshold)]))
    return float(sens[0]), float(spec[0])

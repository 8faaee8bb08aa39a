"""Argument validation shared by the statistics; every message names the argument."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vcpred.stats.errors import StatsError

MIN_PER_CLASS = 2  # DeLong's variance needs >= 2 cases and >= 2 controls (sample variances)


def as_scores(values: ArrayLike, name: str) -> np.ndarray:
    """A 1-D float array without NaN or infinities; shape (n,)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise StatsError(f"{name} must be numeric") from None
    if arr.ndim != 1:
        raise StatsError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise StatsError(f"{name} holds {int(bad.sum())} NaN or infinite value(s) "
                         f"(first at index {int(np.argmax(bad))}); drop or impute them first")
    return arr


def as_labels(values: ArrayLike, name: str = "y_true", *, min_per_class: int = MIN_PER_CLASS) -> np.ndarray:
    """0/1 labels as an int array of shape (n,), with at least min_per_class of each class."""
    raw = np.asarray(values)
    if raw.ndim != 1:
        raise StatsError(f"{name} must be one-dimensional, got shape {raw.shape}")
    try:
        arr = raw.astype(float)
    except (TypeError, ValueError):
        raise StatsError(f"{name} must hold 0/1 labels (1 = case), got non-numeric values") from None
    if np.isnan(arr).any():
        raise StatsError(f"{name} holds NaN; every label must be 0 or 1")
    if not np.isin(arr, (0.0, 1.0)).all():
        others = sorted(set(arr[~np.isin(arr, (0.0, 1.0))].tolist()))[:5]
        raise StatsError(f"{name} must hold only 0 (control) and 1 (case), found {others}")
    labels = arr.astype(int)
    n_pos, n_neg = int(labels.sum()), int(len(labels) - labels.sum())
    if min(n_pos, n_neg) < min_per_class:
        raise StatsError(f"{name} has {n_pos} case(s) and {n_neg} control(s); at least {min_per_class} "
                         "of each are needed (one-class input has no ROC curve)")
    return labels


def check_pair(y_true: ArrayLike, y_score: ArrayLike, score_name: str = "y_score"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels, scores), both shape (n,)."""
    labels = as_labels(y_true)
    scores = as_scores(y_score, score_name)
    if len(scores) != len(labels):
        raise StatsError(f"{score_name} has {len(scores)} values but y_true has {len(labels)}; "
                         "they must be the same length")
    return labels, scores


def as_probabilities(values: ArrayLike, name: str = "prob") -> np.ndarray:
    """Probabilities in [0, 1]; shape (n,)."""
    arr = as_scores(values, name)
    outside = (arr < 0) | (arr > 1)
    if outside.any():
        raise StatsError(f"{name} must lie in [0, 1]; {int(outside.sum())} value(s) outside "
                         f"(first {arr[outside][0]!r} at index {int(np.argmax(outside))})")
    return arr


def check_level(level: float) -> float:
    if not 0 < level < 1:
        raise StatsError(f"level must be in (0, 1), got {level!r} (e.g. 0.95 for a 95 % interval)")
    return float(level)

"""Augmented prediction (AP) as an aggregation over frame_offset of one predictions table.

no AP: the main frame (frame_offset 0) only. AP: one probability per patient from all its frames,
by the mean (default), the median, or the mean of the logits mapped back through the logistic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vcpred.evaluate.errors import EvaluationError

if TYPE_CHECKING:  # prediction uses combine_probabilities; pandas and scipy cost a new process 0.3 s
    import pandas as pd

AGGREGATES = ("mean", "median", "logit_mean")
EPS = 1e-6  # clip before logit so 0/1 probabilities stay finite


def combine_probabilities(probabilities: np.ndarray, rule: str = "mean") -> float:
    """One probability from a patient's frame probabilities [F]: mean, median or mean logit.

    The AP rule shared by evaluation (here) and prediction for a new patient (vcpred.predict).
    """
    if rule not in AGGREGATES:
        raise EvaluationError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {rule!r}")
    probabilities = np.asarray(probabilities, dtype=float)
    if rule == "median":
        return float(np.median(probabilities))
    if rule == "logit_mean":
        from scipy.special import expit, logit

        return float(expit(np.mean(logit(np.clip(probabilities, EPS, 1 - EPS)))))
    return float(np.mean(probabilities))


def aggregate(predictions: pd.DataFrame, *, ap: bool, rule: str = "mean") -> pd.DataFrame:
    """One row per patient: patient_id (index), set, label (NaN = unlabelled), probability, n_frames.

    predictions: a validated table (runs.read_predictions), one row per (patient, frame).
    """
    if rule not in AGGREGATES:
        raise EvaluationError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {rule!r}")
    rows = predictions if ap else predictions[predictions["frame_offset"] == 0]
    grouped = rows.groupby("patient_id", sort=True)
    rule = rule if ap else "mean"  # one main frame per patient: nothing to combine
    prob = grouped["probability"].agg(lambda p: combine_probabilities(p.to_numpy(), rule))
    first = grouped[["set", "label"]].first()
    return first.assign(probability=prob, n_frames=grouped.size())

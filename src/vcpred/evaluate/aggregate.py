"""Augmented prediction (AP) as an aggregation over frame_offset of one predictions table.

no AP: the main frame (frame_offset 0) only. AP: one probability per patient from all its frames,
by the mean (default), the median, or the mean of the logits mapped back through the logistic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from vcpred.evaluate.errors import EvaluationError

METHODS = ("mean", "median", "logit_mean")
EPS = 1e-6  # clip before logit so 0/1 probabilities stay finite


def aggregate(predictions: pd.DataFrame, *, ap: bool, method: str = "mean") -> pd.DataFrame:
    """One row per patient: patient_id (index), set, label (NaN = unlabelled), probability, n_frames.

    predictions: a validated table (runs.read_predictions), one row per (patient, frame).
    """
    if method not in METHODS:
        raise EvaluationError(f"aggregate must be one of {', '.join(METHODS)}, got {method!r}")
    rows = predictions if ap else predictions[predictions["frame_offset"] == 0]
    grouped = rows.groupby("patient_id", sort=True)
    if method == "logit_mean" and ap:
        prob = grouped["probability"].agg(lambda p: float(expit(np.mean(logit(np.clip(p, EPS, 1 - EPS))))))
    else:
        prob = grouped["probability"].agg("median" if method == "median" else "mean")
    first = grouped[["set", "label"]].first()
    return first.assign(probability=prob, n_frames=grouped.size())

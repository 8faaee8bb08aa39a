"""Out-of-split predictions: each development patient's probability from the split models that did
not train on it (the splits where it was a validation patient), averaged over those splits.

With random splits a patient is in validation in about val_fraction of the splits; with leave-one-
site-out splits exactly once. The pooled table is what per-site validation AUCs, the selection rule
and a recalibration fitted on validation data are computed from: no model scores a patient it saw.
"""

from __future__ import annotations

import pandas as pd

from vcpred.evaluate.errors import EvaluationError


def out_of_split(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per development patient that was validated at least once: index patient_id; columns
    label, probability (mean over the splits that validated it), n_splits.

    tables: split -> aggregated table of one variant (aggregate.aggregate: index patient_id, columns
    set, label, probability)."""
    return pool(validation_rows(tables))


def validation_rows(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """The labelled validation rows of every split, stacked: index patient_id; label, probability, split."""
    parts = [t.loc[t["set"] == "validation", ["label", "probability"]].assign(split=k) for k, t in tables.items()]
    rows = pd.concat(parts) if parts else pd.DataFrame(columns=["label", "probability", "split"])
    return rows[rows["label"].notna()]


def pool(rows: pd.DataFrame) -> pd.DataFrame:
    """validation_rows (or a subset of them: the selection rule's nested estimate leaves a split out)
    pooled per patient: label, mean probability, n_splits; a patient with two labels is refused."""
    grouped = rows.groupby(level=0, sort=True)
    labels = grouped["label"].agg(["min", "max"])
    differ = labels.index[labels["min"] != labels["max"]]
    if len(differ):
        raise EvaluationError(f"patient {differ[0]!r} has different labels in different splits; every run must "
                              "carry the same labels")
    pooled = pd.DataFrame({"label": labels["min"].astype(int), "probability": grouped["probability"].mean(),
                           "n_splits": grouped.size()})
    pooled.index.name = "patient_id"
    return pooled

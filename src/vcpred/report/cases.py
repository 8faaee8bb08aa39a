"""External patients of a variant's ensemble (the chosen one unless named) sorted into
TP / FP / FN / TN at its development threshold (ensemble_predictions.csv), and the most
confident wrong predictions."""

from __future__ import annotations

import pandas as pd

from vcpred.report.inputs import ReportInputs

OUTCOMES = ("true positive", "false positive", "false negative", "true negative")


def classified(inputs: ReportInputs, variant: str | None = None) -> pd.DataFrame:
    """Labelled external patients of the ensemble of variant (default: the chosen one) with
    `predicted` (0/1, at that ensemble's own development threshold), `outcome` and `error`
    (|label - probability|: how far the probability lies from the truth)."""
    variant = inputs.chosen if variant is None else variant
    table = inputs.ensembles[(inputs.ensembles["variant"] == variant) & inputs.ensembles["label"].notna()]
    table = table.assign(label=table["label"].astype(int))
    predicted = (table["probability"] >= table["threshold"]).astype(int)
    names = {(1, 1): OUTCOMES[0], (0, 1): OUTCOMES[1], (1, 0): OUTCOMES[2], (0, 0): OUTCOMES[3]}
    outcome = [names[(y, p)] for y, p in zip(table["label"], predicted)]
    return table.assign(predicted=predicted, outcome=outcome,
                        error=(table["label"] - table["probability"]).abs()).reset_index(drop=True)


def examples(table: pd.DataFrame, per_cell: int) -> dict[str, pd.DataFrame]:
    """The clearest cases of each outcome: the highest probabilities among positives predicted, the
    lowest among negatives predicted (so the wrong ones are the most confidently wrong)."""
    out = {}
    for outcome in OUTCOMES:
        mine = table[table["outcome"] == outcome]
        ascending = outcome in ("false negative", "true negative")
        out[outcome] = mine.sort_values(["probability", "patient_id"], ascending=[ascending, True]).head(per_cell)
    return out


def most_confident_wrong(table: pd.DataFrame, count: int) -> pd.DataFrame:
    wrong = table[table["predicted"] != table["label"]]
    return wrong.sort_values(["error", "patient_id"], ascending=[False, True]).head(count)

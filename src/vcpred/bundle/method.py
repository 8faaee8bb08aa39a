"""What the runs did, in words for the model card and the report: the loss (from the runs'
metrics.json) and what validation data chose (from evaluation.json and summary.csv).

Every sentence is built from what was recorded, so the card and the report claim only what was
done: a run that recorded no loss is said to record none, a best variant given with --best is not
said to be chosen by the data.
"""

from __future__ import annotations

import math

import pandas as pd

UNWEIGHTED = "unweighted binary cross-entropy"  # how vcpred.training.run.LOSS starts
DATA_RULE = "highest mean internal AUC"  # evaluate's best_rule when validation data chose the best (--select mean-auc)
USER_RULE = "chosen with --best"  # evaluate's best_rule when the user chose it
CLINICAL_SUFFIX = "-cf"  # `vcpred demo` names the best image configuration trained with clinical features so
NOT_RECORDED = "not recorded"


def loss_text(losses: list[str | None], *, image: bool) -> str:
    """One phrase for the losses of a configuration's runs (or of several configurations)."""
    distinct = sorted({loss or NOT_RECORDED for loss in losses})
    if not distinct or distinct == [NOT_RECORDED]:
        return ("not recorded in the runs' metrics.json (trained by an earlier vcpred, which may have weighted "
                "the classes); no recalibration")
    if len(distinct) > 1:
        return "the runs differ: " + " | ".join(distinct) + "; no recalibration"
    if not distinct[0].startswith(UNWEIGHTED):
        return distinct[0] + "; no recalibration"
    how = ("unweighted binary cross-entropy; output bias initialised at the training prevalence" if image
           else "unweighted logistic regression (L2 penalty, log-loss)")
    return how + "; no resampling; no recalibration"


def clinical_step(summary: pd.DataFrame) -> str | None:
    """The demo's step, when summary.csv shows it: NAME-cf is NAME with clinical features, and NAME
    is the configuration without clinical features that has the highest mean internal AUC (so
    validation data chose which configuration got clinical features). None otherwise."""
    internal = summary[summary["set"] == "internal"]
    clinical = internal["clinical"].astype(str).str.lower().eq("true")
    without = internal[~clinical]
    if without.empty or internal["auc_mean"].isna().all():
        return None
    top = str(without.sort_values("auc_mean", ascending=False).iloc[0]["configuration"])
    names = set(internal.loc[clinical, "configuration"].astype(str))
    if top + CLINICAL_SUFFIX not in names:
        return None
    return (f"which image configuration was trained again with clinical features: {top} (highest mean internal "
            f"AUC among configurations without clinical features) became {top}{CLINICAL_SUFFIX}, the step "
            "`vcpred demo` takes")


def validation_uses(*, early_stopping: bool, best: str | None = None, rule: str | None = None,
                    step: str | None = None, recalibrated: bool = False,
                    external: bool = True) -> tuple[list[str], list[str]]:
    """(what validation data chose, as list items; other choices and the external set's role).
    recalibrated: the exported model's probabilities were recalibrated at export; external: whether
    the cohort has external patients at all."""
    uses, others = [], []
    if early_stopping:
        uses.append("early stopping: each image run keeps its epoch with the highest validation AUC")
    uses.append("risk thresholds: Youden's J on each split's validation predictions (an ensemble uses their median)")
    if recalibrated:
        uses.append("the recalibration of the probabilities: fitted at export on each development patient's "
                    "out-of-split (validation) probabilities")
    if best and rule and rule != USER_RULE:  # evaluate's rules (DATA_RULE, or the margin rule) read validation data
        uses.append(f"the best variant: {best} ({rule}, i.e. on validation patients)")
    elif best:
        others.append(f"The best variant {best} was {rule or 'chosen by a rule not recorded'}, not by the data.")
    if step:
        uses.append(step)
    others.append("The external set chose nothing: it was used only to measure performance." if external else
                  "There is no external set: no patient outside the development set was scored, so every number "
                  "here comes from development patients.")
    return uses, others


def finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))

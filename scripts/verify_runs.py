"""Recompute what a RUNS folder and its evaluation claim, independently of how they were written.

Usage: .venv/bin/python scripts/verify_runs.py RUNS EVAL
1. Every image run: the saved model, reloaded and scored in fp32 on the run's validation patients
   the way training scores them (per-patient mean over the frames it trained on), gives the
   validation AUC that metrics.json records as best_val_auc.
2. Every internal p-value in EVAL/summary.csv is the Nadeau-Bengio corrected resampled t-test,
   recomputed here from per_split.csv with scipy's one-sample t statistic rescaled by
   sqrt((1/J) / (1/J + n_val/n_train)).
Prints the largest deviation of each check; exits 1 when one exceeds 1e-6.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from vcpred.cohort import load_manifest
from vcpred.models import ClinicalPreprocessor, load_model
from vcpred.runs import read_record, run_dirs
from vcpred.training.data import load_frames
from vcpred.training.loop import Trainer

TOLERANCE = 1e-6


def saved_model_validation_auc(run_dir: Path) -> tuple[float, float]:
    """(recomputed validation AUC of the saved model, metrics.json best_val_auc)."""
    config = read_record(run_dir).trained
    table = pd.read_csv(run_dir / "predictions.csv")
    cohort = load_manifest(config.manifest)
    records = [cohort[p] for p in dict.fromkeys(table.loc[table["set"] == "validation", "patient_id"])]
    clinical = None
    if (run_dir / "model" / "clinical.json").is_file():
        clinical = ClinicalPreprocessor.from_dict(json.loads((run_dir / "model" / "clinical.json").read_text())
                                                  ["preprocessor"])
    frames = load_frames(config.store, records, ["validation"] * len(records),
                         main_only=config.training.frames == "main", preprocessor=clinical)
    probabilities = Trainer(load_model(run_dir / "model"), config.training, torch.device("cpu"),
                            "fp32").predict(frames.frames, frames.clinical)
    per_patient = pd.DataFrame({"p": frames.patient_ids, "y": frames.labels, "prob": probabilities}
                               ).groupby("p").agg(y=("y", "first"), prob=("prob", "mean"))
    recorded = json.loads((run_dir / "metrics.json").read_text())["best_val_auc"]
    return float(roc_auc_score(per_patient["y"], per_patient["prob"])), float(recorded)


def check_runs(runs: Path) -> float:
    worst, rows = 0.0, []
    for run_dir in run_dirs(runs):
        if json.loads((run_dir / "metrics.json").read_text()).get("kind") != "image":
            continue
        recomputed, recorded = saved_model_validation_auc(run_dir)
        worst = max(worst, abs(recomputed - recorded))
        rows.append((run_dir.parent.name, run_dir.name, recomputed, recorded))
    table = pd.DataFrame(rows, columns=["configuration", "split", "recomputed", "best_val_auc"])
    table["deviation"] = (table["recomputed"] - table["best_val_auc"]).abs()
    print(table.groupby("configuration")["deviation"].agg(["count", "max"]).to_string())
    print(f"saved models vs best_val_auc: {len(table)} image runs, largest deviation {worst:.2e}")
    return worst


def check_internal_p(eval_dir: Path) -> float:
    per_split = pd.read_csv(eval_dir / "per_split.csv")
    summary = pd.read_csv(eval_dir / "summary.csv")
    internal = summary[summary["set"] == "internal"]
    best = internal.loc[internal["best"].astype(str).str.lower() == "true", "variant"].item()
    auc = per_split.pivot(index="split", columns="variant", values="validation_auc")
    worst = 0.0
    for _, row in internal[internal["variant"] != best].iterrows():
        pairs = pd.concat([auc[best], auc[row["variant"]]], axis=1).dropna()
        d = pairs.iloc[:, 0] - pairs.iloc[:, 1]
        mine = per_split[per_split["variant"].isin([best, row["variant"]]) & per_split["split"].isin(pairs.index)]
        ratio = (mine["validation_n"] / mine["n_train"]).mean()
        j = len(d)
        t = stats.ttest_1samp(d, 0.0).statistic * np.sqrt((1 / j) / (1 / j + ratio))
        worst = max(worst, abs(2 * stats.t.sf(abs(t), j - 1) - row["p_value"]))
    print(f"internal p-values vs the corrected resampled t-test: {len(internal) - 1} comparisons, "
          f"largest deviation {worst:.2e}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("eval", type=Path)
    args = parser.parse_args()
    worst = max(check_runs(args.runs), check_internal_p(args.eval))
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()

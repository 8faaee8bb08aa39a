"""Learning quality on synthetic cohorts: the demo over several cohort seeds, next to the Bayes AUCs.

Usage: .venv/bin/python benchmarks/bench_learning.py [--root /tmp/vcpred-learning] [--seeds 0 1 2]
Runs `vcpred demo --out ROOT/seed-S --seed S` for each seed (reusing whatever is already done
there) and rewrites the "learning" section of BENCHMARKS.md. Per seed: the best configuration
(chosen by mean validation AUC), its external AUC next to the Bayes AUC (AUC of the true
probabilities) and the image-only Bayes AUC (AUC of the true logit's image part: what the images
alone carry), and calibration: mean predicted probability minus prevalence on the validation
patients (mean over splits) and on the external set (the split ensemble).
Everything is recomputed here from the runs' predictions.csv and the cohort's truth.csv with pandas
and scikit-learn, not read from vcpred's own summary, except the name of the chosen variant.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402

from vcpred.cli import main as vcpred  # noqa: E402


def truth_table(out: Path) -> pd.DataFrame:
    truth = pd.read_csv(out / "cohort" / "truth.csv").drop(columns=["set"], errors="ignore")
    labels = pd.read_csv(out / "cohort" / "manifest.csv")[["patient_id", "set", "label"]]
    return truth.merge(labels, on="patient_id")


def bayes(out: Path, set_name: str, column: str = "true_probability") -> float:
    rows = truth_table(out).query("set == @set_name")
    return float(roc_auc_score(rows["label"], rows[column]))


def patient_probabilities(run_dir: Path, ap: bool) -> pd.DataFrame:
    """One row per patient of a run: set, label, probability (mean over frames with AP, frame 0 without)."""
    table = pd.read_csv(run_dir / "predictions.csv")
    if not ap:
        table = table[table["frame_offset"] == 0]
    return table.groupby("patient_id").agg(set=("set", "first"), label=("label", "first"),
                                           probability=("probability", "mean"))


def variant_numbers(out: Path, configuration: str, ap: bool) -> dict:
    """External AUC per split model and of the ensemble; validation and external calibration-in-the-large."""
    runs = sorted((out / "runs" / configuration).glob("split-*"))
    tables = [patient_probabilities(run, ap) for run in runs]
    aucs, val_gaps = [], []
    for table in tables:
        ext, val = table[table["set"] == "external"], table[table["set"] == "validation"]
        aucs.append(roc_auc_score(ext["label"], ext["probability"]))
        val_gaps.append(val["probability"].mean() - val["label"].mean())
    ensemble = pd.concat([t.loc[t["set"] == "external", "probability"] for t in tables], axis=1).mean(axis=1)
    labels = tables[0].loc[ensemble.index, "label"]
    return {"auc_mean": float(np.mean(aucs)), "auc_sd": float(np.std(aucs, ddof=1)),
            "ensemble_auc": float(roc_auc_score(labels, ensemble)), "val_gap": float(np.mean(val_gaps)),
            "val_gap_worst": float(np.max(np.abs(val_gaps))), "ext_gap": float(ensemble.mean() - labels.mean())}


def chosen_variant(out: Path) -> tuple[str, bool]:
    summary = pd.read_csv(out / "eval" / "summary.csv")
    best = summary[summary["best"].astype(str).str.lower().eq("true")].iloc[0]
    return str(best["configuration"]), str(best["ap"]).lower() == "true"


def seed_rows(out: Path, seed: int) -> tuple[list, list]:
    configuration, ap = chosen_variant(out)
    best = variant_numbers(out, configuration, ap)
    full, image = bayes(out, "external"), bayes(out, "external", "image_logit")
    clinical = variant_numbers(out, "clinical-only", ap=False)["ensemble_auc"]
    headline = [seed, configuration + (" + AP" if ap else ""), f"{best['auc_mean']:.3f} ({best['auc_sd']:.3f})",
                f"{best['ensemble_auc']:.3f}", f"{clinical:.3f}", f"{full:.3f}", f"{image:.3f}",
                f"{full - best['ensemble_auc']:+.3f}", f"{image - best['ensemble_auc']:+.3f}",
                f"{bayes(out, 'development'):.3f}"]
    calibration = []
    for name in sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()):
        numbers = variant_numbers(out, name, ap=True)
        frames = pd.read_csv(next((out / "runs" / name).glob("split-*/predictions.csv")))["frame_offset"].nunique()
        calibration.append([seed, name + (" + AP" if frames > 1 else ""), f"{numbers['val_gap']:+.3f}", f"{numbers['val_gap_worst']:.3f}",
                            f"{numbers['ext_gap']:+.3f}", f"{numbers['ensemble_auc']:.3f}"])
    return headline, calibration


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="/tmp/vcpred-learning")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-run", action="store_true", help="read finished demo folders, run nothing")
    args = parser.parse_args()
    headlines, calibration, minutes, below = [], [], [], []
    for seed in args.seeds:
        out = Path(args.root) / f"seed-{seed}"
        start = time.perf_counter()
        if not args.no_run and vcpred(["--quiet", "demo", "--out", str(out), "--seed", str(seed)]) != 0:
            raise SystemExit(f"the demo failed for seed {seed}")
        minutes.append((time.perf_counter() - start) / 60)
        headline, rows = seed_rows(out, seed)
        if float(headline[3]) < float(headline[4]):
            below.append(str(seed))
        headlines.append(headline)
        calibration += rows
    body = "\n".join([
        "## Learning quality on synthetic cohorts (`vcpred demo`, several cohort seeds)", "",
        f"`benchmarks/bench_learning.py --seeds {' '.join(map(str, args.seeds))}` — per seed a new cohort of 200 "
        "development + 45 external patients, the demo's grid over 10 splits, fp32. Best = highest mean validation "
        "AUC (the external set chooses nothing). Bayes AUC = AUC of the true probabilities; image-only Bayes = AUC "
        "of the image part of the true logit. Gap = Bayes minus the ensemble's external AUC (positive: the model is "
        "below what the data allow). " + ("Read from finished demo folders (`--no-run`)." if args.no_run else
                                          "Demo wall time per seed (min, reruns reuse finished runs): "
                                          f"{', '.join(f'{m:.1f}' for m in minutes)}."), "",
        markdown_table(["seed", "best variant", "external AUC, split models", "external AUC, ensemble",
                        "clinical-only, external ensemble", "Bayes AUC (external)", "image-only Bayes AUC", "gap to Bayes", "gap to image-only Bayes",
                        "Bayes AUC (development)"], headlines), "",
        (f"On the unseen external site D, the variant validation chose is below the clinical-only baseline for "
         f"seed(s) {', '.join(below)} (validation patients come from the development sites A-C only, so "
         "validation could not show this)." if below else
         "On every seed the chosen variant is above the clinical-only baseline on the external set."), "",
        "Calibration of every configuration with AP (one-frame models have no AP): mean predicted probability minus prevalence on the validation "
        "patients (mean over the 10 splits, and the largest absolute value of a single split), and on the external "
        "set for the split ensemble (calibration-in-the-large on the probability scale).", "",
        markdown_table(["seed", "variant", "validation: mean p - prevalence", "worst split |mean p - prevalence|",
                        "external ensemble: mean p - prevalence", "external ensemble AUC"], calibration),
        "", f"Machine: {machine_line()}",
    ])
    update_section("learning", body)


if __name__ == "__main__":
    main()

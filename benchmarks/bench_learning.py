"""Learning quality on synthetic cohorts: the demo over several cohort seeds, against what the data allow.

Usage: .venv/bin/python benchmarks/bench_learning.py [--root /tmp/vcpred-learning] [--seeds 0 1 2 3 4] [--no-run]
Runs `vcpred demo --out ROOT/seed-S --seed S` for each seed (reusing whatever is already done there)
and rewrites the "learning" section of BENCHMARKS.md with issue 26's measures, per seed:

- the perfect-feature ceiling: a logistic regression on truth.csv's lesion columns (the terms of the
  true risk) and the manifest's clinical columns, trained on the same splits, scored like vcpred's
  variants (mean validation AUC over splits; external AUC of the split ensemble);
- every variant's mean internal AUC, its out-of-split AUC per development site (each patient's mean
  probability over the splits that validated it) and the worst of them, its external ensemble AUC;
- the variant vcpred's evaluate chose (the only number read from vcpred: the `best` row of summary.csv);
- the chosen variant's validation calibration on the pooled out-of-split probabilities: raw, and after a
  logistic recalibration cross-fitted over patients (5 folds; what an exported bundle's recalibration does).

Everything but the chosen name is recomputed here from the runs' predictions.csv, splits.json, the
manifest and truth.csv with pandas and scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402

from vcpred.cli import main as vcpred  # noqa: E402

LESION = ["cleft", "edema", "compression", "posterior_wall", "tl_junction"]  # the image terms of the true logit
CLINICAL = ["age", "female", "bmi", "bmd_tscore", "steroid", "days_to_mri"]  # the demo's clinical columns
EPS = 1e-6


def cohort_table(out: Path) -> pd.DataFrame:
    """Per patient: set, site, label, the lesion truth and the clinical columns."""
    truth = pd.read_csv(out / "cohort" / "truth.csv").drop(columns=["set", "site"], errors="ignore")
    manifest = pd.read_csv(out / "cohort" / "manifest.csv")
    table = manifest.merge(truth, on="patient_id").set_index("patient_id")
    table["cleft"] = table["cleft"].astype(int)
    table["posterior_wall"] = table["posterior_wall"].astype(int)
    table["female"] = table["sex"].eq("F").astype(int)
    return table


def read_splits(out: Path) -> list[dict]:
    return json.loads((out / "splits.json").read_text())["splits"]


def auc(labels, probabilities) -> float:
    return float(roc_auc_score(np.asarray(labels, int), np.asarray(probabilities, float)))


def ceiling(cohort: pd.DataFrame, splits: list[dict]) -> dict:
    """The perfect-feature logistic regression, trained per split on the split's training patients."""
    features = LESION + CLINICAL
    external = cohort[cohort["set"] == "external"]
    val_aucs, external_probs = [], []
    for split in splits:
        train, val = cohort.loc[split["train"]], cohort.loc[split["val"]]
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1e6, max_iter=5000))
        model.fit(train[features], train["label"])
        val_aucs.append(auc(val["label"], model.predict_proba(val[features])[:, 1]))
        external_probs.append(model.predict_proba(external[features])[:, 1])
    return {"internal": float(np.mean(val_aucs)), "external": auc(external["label"], np.mean(external_probs, axis=0))}


def run_tables(runs: Path, configuration: str, ap: bool) -> list[pd.DataFrame]:
    """Per split (in split order): one row per patient, set, label, probability (AP: mean over frames)."""
    tables = []
    for run in sorted((runs / configuration).glob("split-*")):
        table = pd.read_csv(run / "predictions.csv")
        if not ap:
            table = table[table["frame_offset"] == 0]
        tables.append(table.groupby("patient_id").agg(set=("set", "first"), label=("label", "first"),
                                                      probability=("probability", "mean")))
    return tables


def pooled_out_of_split(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Each validated development patient's label and mean probability over the splits that validated it."""
    rows = pd.concat([t[t["set"] == "validation"] for t in tables])
    return rows.groupby(level=0).agg(label=("label", "first"), probability=("probability", "mean"))


def calibration(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """(mean probability - prevalence, calibration slope: logistic regression of the label on logit p)."""
    x = logit(np.clip(probabilities, EPS, 1 - EPS)).reshape(-1, 1)
    slope = LogisticRegression(C=1e9, max_iter=1000).fit(x, labels).coef_[0, 0]
    return float(probabilities.mean() - labels.mean()), float(slope)


def cross_fitted_recalibration(labels: np.ndarray, probabilities: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each patient's probability recalibrated by a logistic fit on the other folds' patients."""
    x = logit(np.clip(probabilities, EPS, 1 - EPS)).reshape(-1, 1)
    out = np.empty_like(probabilities)
    for fit, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, labels):
        model = LogisticRegression(C=1e9, max_iter=1000).fit(x[fit], labels[fit])
        out[held] = expit(model.intercept_[0] + model.coef_[0, 0] * x[held, 0])
    return out


def variant_numbers(runs: Path, cohort: pd.DataFrame, configuration: str, ap: bool) -> dict:
    tables = run_tables(runs, configuration, ap)
    internal = [auc(t.loc[t["set"] == "validation", "label"], t.loc[t["set"] == "validation", "probability"])
                for t in tables]
    external = pd.concat([t.loc[t["set"] == "external", "probability"] for t in tables], axis=1).mean(axis=1)
    pooled = pooled_out_of_split(tables).join(cohort["site"])
    sites = {site: auc(part["label"], part["probability"]) for site, part in pooled.groupby("site")}
    return {"internal": float(np.mean(internal)), "external": auc(cohort.loc[external.index, "label"], external),
            "sites": sites, "worst_site": min(sites.values()), "pooled": pooled}


def variants_of(out: Path) -> list[tuple[str, bool]]:
    """(configuration, AP) of every variant: AP only where a run predicts several frames."""
    found = []
    for folder in sorted(p for p in (out / "runs").iterdir() if p.is_dir()):
        frames = pd.read_csv(next(folder.glob("split-*/predictions.csv")))["frame_offset"].nunique()
        found += [(folder.name, False)] + ([(folder.name, True)] if frames > 1 else [])
    return found


def chosen_variant(out: Path) -> tuple[str, bool]:
    summary = pd.read_csv(out / "eval" / "summary.csv")
    best = summary[summary["best"].astype(str).str.lower().eq("true")].iloc[0]
    return str(best["configuration"]), str(best["ap"]).lower() == "true"


def name(configuration: str, ap: bool) -> str:
    return configuration + (" + AP" if ap else "")


def seed_numbers(out: Path, seed: int) -> dict:
    cohort = cohort_table(out)
    numbers = {v: variant_numbers(out / "runs", cohort, *v) for v in variants_of(out)}
    chosen = chosen_variant(out)
    pooled = numbers[chosen]["pooled"]
    labels, probabilities = pooled["label"].to_numpy(int), pooled["probability"].to_numpy(float)
    raw = calibration(labels, probabilities)
    recalibrated = calibration(labels, cross_fitted_recalibration(labels, probabilities, seed))
    external = cohort[cohort["set"] == "external"]
    bayes = auc(external["label"], external["true_probability"])
    return {"seed": seed, "numbers": numbers, "chosen": chosen, "ceiling": ceiling(cohort, read_splits(out)),
            "raw": raw, "recalibrated": recalibrated, "bayes": bayes}


def headline_row(s: dict) -> list:
    best, clinical = s["numbers"][s["chosen"]], s["numbers"][("clinical-only", False)]
    highest = max(s["numbers"], key=lambda v: s["numbers"][v]["internal"])  # the rule before issue 26
    return [s["seed"], name(*s["chosen"]), f"{name(*highest)}: {s['numbers'][highest]['external']:.3f}",
            f"{best['internal']:.3f}", f"{s['ceiling']['internal']:.3f}",
            f"{s['ceiling']['internal'] - best['internal']:+.3f}", f"{best['external']:.3f}",
            f"{clinical['external']:.3f}", f"{s['ceiling']['external']:.3f}",
            f"{s['ceiling']['external'] - best['external']:+.3f}", f"{s['bayes']:.3f}",
            f"{s['raw'][0]:+.3f} / {s['raw'][1]:.2f}", f"{s['recalibrated'][0]:+.3f} / {s['recalibrated'][1]:.2f}"]


def variant_rows(s: dict) -> list[list]:
    rows = []
    for variant, n in s["numbers"].items():
        sites = " / ".join(f"{site} {value:.3f}" for site, value in sorted(n["sites"].items()))
        rows.append([s["seed"], name(*variant) + (" (chosen)" if variant == s["chosen"] else ""),
                     f"{n['internal']:.3f}", sites, f"{n['worst_site']:.3f}", f"{n['external']:.3f}"])
    return rows


def verdicts(seeds: list[dict]) -> list[str]:
    """Issue 26's done-when, each line measured on these seeds."""
    below = [s["seed"] for s in seeds if s["numbers"][s["chosen"]]["external"] < s["numbers"][("clinical-only", False)]["external"]]
    external_gap = np.mean([s["ceiling"]["external"] - s["numbers"][s["chosen"]]["external"] for s in seeds])
    internal_gap = np.mean([s["ceiling"]["internal"] - s["numbers"][s["chosen"]]["internal"] for s in seeds])
    calibrated = [s["seed"] for s in seeds if abs(s["recalibrated"][0]) <= 0.05 and 0.8 <= s["recalibrated"][1] <= 1.25]
    return [
        f"- chosen variant's external ensemble AUC at least clinical-only's: "
        f"{'every seed' if not below else 'not on seed(s) ' + ', '.join(map(str, below))} (target: every seed)",
        f"- mean external gap to the perfect-feature ceiling: {external_gap:+.3f} (target: at most 0.05)",
        f"- mean internal gap to the ceiling: {internal_gap:+.3f} (target: at most 0.04)",
        f"- recalibrated (cross-fitted) validation calibration within |mean p - prevalence| <= 0.05 and slope "
        f"0.8-1.25: seeds {', '.join(map(str, calibrated)) or 'none'} of {', '.join(str(s['seed']) for s in seeds)}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="/tmp/vcpred-learning")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--no-run", action="store_true", help="read finished demo folders, run nothing")
    args = parser.parse_args()
    seeds, minutes = [], []
    for seed in args.seeds:
        out = Path(args.root) / f"seed-{seed}"
        start = time.perf_counter()
        if not args.no_run and vcpred(["--quiet", "demo", "--out", str(out), "--seed", str(seed)]) != 0:
            raise SystemExit(f"the demo failed for seed {seed}")
        minutes.append((time.perf_counter() - start) / 60)
        seeds.append(seed_numbers(out, seed))
    body = "\n".join([
        "## Learning quality on synthetic cohorts (`vcpred demo`, several cohort seeds)", "",
        f"`benchmarks/bench_learning.py --seeds {' '.join(map(str, args.seeds))}` — per seed a new cohort of 200 "
        "development patients (sites A-C) + 45 external patients (site D), the demo's grid over 10 splits, fp32. "
        "Chosen = the variant `vcpred evaluate` chose with its default margin rule (docs/evaluation.md; the "
        "external set chooses nothing). Ceiling = a logistic "
        "regression on the true lesion features and the clinical columns (a perfect feature extractor), same "
        "splits, same ensemble. Bayes = AUC of the true probabilities. Calibration: the chosen variant's pooled "
        "out-of-split validation probabilities, raw and after a logistic recalibration cross-fitted over patients "
        "(5 folds). Every number but the chosen name is recomputed by the script with scikit-learn. "
        + ("Read from finished demo folders (`--no-run`)." if args.no_run else
           f"Demo wall time per seed (min, reruns reuse finished runs): {', '.join(f'{m:.1f}' for m in minutes)}."),
        "",
        markdown_table(["seed", "chosen variant", "highest mean internal AUC (the rule before): its external AUC",
                        "internal AUC", "ceiling, internal", "internal gap",
                        "external AUC (ensemble)", "clinical-only, external", "ceiling, external", "external gap",
                        "Bayes AUC (external)", "validation calibration raw: mean p - prevalence / slope",
                        "recalibrated (cross-fitted)"], [headline_row(s) for s in seeds]), "",
        *verdicts(seeds), "",
        "Every variant: mean validation AUC over splits, out-of-split AUC per development site and the worst site, "
        "external AUC of the split ensemble (site D).", "",
        markdown_table(["seed", "variant", "internal AUC", "out-of-split AUC per site", "worst site",
                        "external AUC"], [row for s in seeds for row in variant_rows(s)]),
        "", f"Machine: {machine_line()}",
    ])
    update_section("learning", body)


if __name__ == "__main__":
    main()

"""Learning quality on the synthetic cohort: external AUC of each demo configuration, ± AP, next to
the Bayes AUC (the AUC of the true probabilities), plus the demo's wall time.

Usage: .venv/bin/python benchmarks/bench_learning.py [--out runs/demo]
Runs `vcpred demo --out OUT` (which reuses whatever is already done there) and rewrites the
"learning" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402

from vcpred.cli import main as vcpred  # noqa: E402


def bayes_auc(out: Path, set_name: str) -> float:
    truth = pd.read_csv(out / "cohort" / "truth.csv").drop(columns=["set"], errors="ignore")
    labels = pd.read_csv(out / "cohort" / "manifest.csv")[["patient_id", "set", "label"]]
    merged = truth.merge(labels, on="patient_id")
    merged = merged[merged["set"] == set_name]
    return roc_auc_score(merged["label"], merged["true_probability"])


def headline(summary: pd.DataFrame, bayes_external: float) -> str:
    """The best configuration (evaluate's choice, mean internal AUC) next to the Bayes AUC, and its AP gain."""
    best = summary[summary["best"].astype(str).str.lower().eq("true")].iloc[0]["configuration"]
    rows = summary[summary["configuration"].eq(best) & summary["set"].eq("external")]
    with_ap = rows[rows["ap"].astype(str).str.lower().eq("true")].iloc[0]
    without = rows[~rows["ap"].astype(str).str.lower().eq("true")].iloc[0]
    gap = bayes_external - with_ap["ensemble_auc"]
    table = markdown_table(
        ["best configuration", "external AUC + AP, split models", "+ AP, ensemble (95 % CI)", "without AP, split models",
         "AP gain (split models)", "Bayes AUC", "ensemble gap to Bayes (target <= 0.05)"],
        [[best, f"{with_ap['auc_mean']:.3f} ({with_ap['auc_sd']:.3f})",
          f"{with_ap['ensemble_auc']:.3f} ({with_ap['ensemble_auc_ci_low']:.3f}-{with_ap['ensemble_auc_ci_high']:.3f})",
          f"{without['auc_mean']:.3f} ({without['auc_sd']:.3f})", f"{with_ap['auc_mean'] - without['auc_mean']:+.3f}",
          f"{bayes_external:.3f}", f"{gap:.3f} ({'met' if gap <= 0.05 else 'not met'})"]])
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/demo")
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    if vcpred(["--quiet", "demo", "--out", str(out)]) != 0:
        raise SystemExit("the demo failed")
    minutes = (time.perf_counter() - start) / 60
    summary = pd.read_csv(out / "eval" / "summary.csv")
    rows = []
    for (name, ap), group in summary.groupby(["configuration", "ap"], sort=False):
        internal = group[group["set"] == "internal"].iloc[0]
        external = group[group["set"] == "external"].iloc[0]
        rows.append([name, "yes" if str(ap).lower() == "true" else "no",
                     f"{internal['auc_mean']:.3f} ({internal['auc_sd']:.3f})",
                     f"{external['auc_mean']:.3f} ({external['auc_sd']:.3f})",
                     f"{external.get('ensemble_auc', float('nan')):.3f}",
                     f"{external['sensitivity_mean']:.2f} / {external['specificity_mean']:.2f}"])
    rows.sort(key=lambda r: r[3], reverse=True)
    body = "\n".join([
        "## Learning quality on the synthetic cohort (`vcpred demo`)", "",
        f"`benchmarks/bench_learning.py --out {out}` — 200 development + 45 external patients (seed 0), "
        "10 splits, mean (SD) over the split models; ensemble = mean of the 10 split models' probabilities.",
        f"Bayes AUC (true probabilities): development {bayes_auc(out, 'development'):.3f}, "
        f"external {bayes_auc(out, 'external'):.3f}. This call took {minutes:.1f} min "
        "(a rerun of a finished demo only re-evaluates).", "",
        headline(summary, bayes_auc(out, "external")), "",
        markdown_table(["configuration", "AP", "internal AUC", "external AUC", "external ensemble AUC",
                        "external sens / spec"], rows),
        "", f"Machine: {machine_line()}",
    ])
    update_section("learning", body)


if __name__ == "__main__":
    main()

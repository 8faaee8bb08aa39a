"""`vcpred demo --out runs/demo`: the main job on a study-sized synthetic cohort.

synth (200 development + 45 external) -> cohort check -> prepare -> experiment over 10 splits ->
evaluate -> export the best configuration -> predict one external patient. Every step is the ordinary command, so its output is what a user would see; rerunning
reuses what is already done (synth is skipped when its manifest exists, prepare skips unchanged
patients, experiment skips finished runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from vcpred import RESEARCH_NOTICE, console
from vcpred.errors import VcpredError

CLINICAL = ["age", "sex", "bmi", "bmd_tscore", "steroid", "days_to_mri"]

# The CPU grid of this version: the offline ImageNet CNN as a linear probe (frozen-feature cache),
# with and without clinical features, and the clinical-only baseline; every one over 10 splits.
DEMO_EXPERIMENT = {
    "manifest": "cohort/manifest.csv",
    "store": "store",
    "splits": {"file": "splits.json", "n_splits": 10, "val_fraction": 0.2, "seed": 0},
    "model": {"backbone": "efficientnet_lite0", "weights": "imagenet", "method": "linear"},
    "training": {"epochs": 40, "batch_size": 32, "lr": 1.0e-3, "patience": 8, "frames": "all"},
    "configurations": [
        {"name": "cnn-imagenet-linear"},
        {"name": "cnn-imagenet-linear-cf", "model": {"clinical_columns": CLINICAL}},
        {"name": "clinical-only", "model": {"image": False, "clinical_columns": CLINICAL}},
    ],
}


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the whole pipeline on a synthetic cohort")
    demo.add_argument("--out", default="runs/demo", help="folder for everything (default %(default)s)")
    demo.add_argument("--development", type=int, default=200)
    demo.add_argument("--external", type=int, default=45)
    demo.add_argument("--jobs", type=int, default=2, help="processes for synth and prepare")
    demo.set_defaults(func=run_demo)


def _step(title: str, argv: list[str]) -> None:
    from vcpred.cli import main

    console.say(f"\n== {title}: vcpred {' '.join(argv)}")
    start = time.perf_counter()
    code = main(argv + [])
    if code != 0:
        raise VcpredError(f"demo step '{title}' failed (exit {code}); see the messages above")
    console.say(f"   ({time.perf_counter() - start:.0f} s)")


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quiet = ["--quiet"] if console.is_quiet() else []
    cohort, manifest = out / "cohort", out / "cohort" / "manifest.csv"
    start = time.perf_counter()
    if manifest.is_file():
        console.say(f"== synth: {manifest} exists, reused")
    else:
        _step("synthetic cohort", quiet + ["synth", "--out", str(cohort), "--development", str(args.development),
                                            "--external", str(args.external), "--sequences", "t2",
                                            "--jobs", str(args.jobs)])
    _step("cohort check", quiet + ["cohort", "check", str(manifest)])
    _step("prepare", quiet + ["prepare", str(manifest), "--out", str(out / "store"), "--jobs", str(args.jobs)])
    experiment = out / "experiment.yaml"
    experiment.write_text(yaml.safe_dump(DEMO_EXPERIMENT, sort_keys=False))
    _step("experiment", quiet + ["experiment", str(experiment), "--out", str(out / "runs")])
    _step("evaluate", quiet + ["evaluate", str(out / "runs"), "--out", str(out / "eval"), "--force",
                               "--manifest", str(manifest)])
    best = _export_best(out, quiet)
    _predict_one(out, quiet)
    _summary(out, best, time.perf_counter() - start)
    return 0


def _export_best(out: Path, quiet: list[str]) -> str:
    """Export the configuration (and AP setting) with the best mean internal AUC."""
    import pandas as pd

    summary = pd.read_csv(out / "eval" / "summary.csv")
    best = summary[summary["best"].astype(str).str.lower().eq("true") & summary["set"].eq("internal")].iloc[0]
    ap = str(best["ap"]).lower() == "true"
    _step("export the best configuration", quiet + [
        "export", str(out / "runs"), "--configuration", str(best["configuration"]), "--out", str(out / "model"),
        "--eval", str(out / "eval"), "--ap" if ap else "--no-ap", "--force"])
    return f"{best['configuration']}{' + AP' if ap else ''}"


def _predict_one(out: Path, quiet: list[str]) -> None:
    """The clinician's path: the first external patient through `vcpred predict`."""
    from vcpred.cohort import load_manifest

    record = load_manifest(out / "cohort" / "manifest.csv").subset("external")[0]
    needed = json.loads((out / "model" / "bundle.json").read_text()).get("clinical_columns") or []
    clinical = ",".join(f"{name}={record.clinical[name]}" for name in needed if record.clinical.get(name) is not None)
    argv = ["predict", "--model", str(out / "model"), "--image-t2", str(record.images["t2"]),
            "--roi-slice", str(record.roi.slice), "--roi-box", ",".join(map(str, record.roi.box)),
            "--patient-id", record.patient_id, "--out", str(out / "predict" / record.patient_id), "--force"]
    _step(f"predict external patient {record.patient_id}", quiet + argv + (["--clinical", clinical] if clinical else []))


def _summary(out: Path, best: str, seconds: float) -> None:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    summary = pd.read_csv(out / "eval" / "summary.csv")
    external = summary[summary["set"] == "external"].sort_values("auc_mean", ascending=False)
    truth = pd.read_csv(out / "cohort" / "truth.csv")
    labels = pd.read_csv(out / "cohort" / "manifest.csv")[["patient_id", "set", "label"]]
    merged = truth.drop(columns=["set"], errors="ignore").merge(labels, on="patient_id")
    bayes = merged[merged["set"] == "external"]
    console.say("\n== summary")
    for _, row in external.iterrows():
        console.say(f"  {row['configuration']:<28} AP {str(row['ap']):<5} external AUC "
                    f"{row['auc_mean']:.3f} ({row['auc_sd']:.3f})")
    console.say(f"  best configuration (mean internal AUC): {best}; exported to {out / 'model'}")
    console.say(f"  Bayes AUC of the synthetic external set (true probabilities): "
                f"{roc_auc_score(bayes['label'], bayes['true_probability']):.3f}")
    console.say(f"  tables: {out / 'eval' / 'tables.md'}; everything under {out} ({seconds / 60:.1f} min)")
    console.say(f"  {RESEARCH_NOTICE}")

"""`vcpred demo --out runs/demo`: the main job on a study-sized synthetic cohort.

synth (200 development + 45 external) -> cohort check -> prepare (96 px) -> experiment over 10
splits -> evaluate -> the best image configuration again with clinical features -> evaluate ->
export the best (and the ViT, for attention-rollout maps) -> predict one external patient ->
the study-style report. Every step is the ordinary command, so its output is what a user would
see; rerunning reuses what is already done (synth is skipped when its manifest exists, prepare
skips unchanged patients, experiment skips finished runs).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from vcpred import RESEARCH_NOTICE, console
from vcpred.errors import VcpredError

CLINICAL = ["age", "sex", "bmi", "bmd_tscore", "steroid", "days_to_mri"]
DEMO_SIZE = 96  # px: what lets 2 CPU cores fine-tune a CNN and a ViT over 10 splits in minutes
CNN = {"backbone": "efficientnet_lite0", "weights": "imagenet"}
VIT = "vit-random-full"
# Fine-tuning sees the main frame only (5x fewer steps); AP is still evaluated on all 5 frames.
# BatchNorm statistics stay at their ImageNet values: updated on the development sites' batches they
# failed at the unseen scanner on every seed measured (external ensemble AUC 0.36-0.54 against
# 0.54-0.85 frozen, BENCHMARKS.md "learning"; issue 26), and training both ways cost the demo a third
# of its time on a CPU without AVX-512. `training.batchnorm: update` still trains the other way.
# LoRA without dropout on the adapters' inputs (peft's default; vcpred's is 0.1): drawing the masks for
# every pointwise convolution's input took 28 % of a LoRA step on a 2-core CPU without AVX-512.
FINE_TUNE = {"frames": "main", "epochs": 3, "patience": 2, "batchnorm": "frozen"}

# The CPU grid: the offline ImageNet CNN as linear probe (frozen-feature cache), LoRA and full
# fine-tuning; a small ViT from random weights with full fine-tuning (what pre-training is worth;
# LoRA on random weights would be meaningless); the clinical-only baseline. The best image
# configuration (mean validation AUC) is then trained again with clinical features (`with_clinical`).
# fp32 everywhere: the demo's numbers are then the same on CPUs with and without native bf16.
DEMO_EXPERIMENT = {
    "manifest": "cohort/manifest.csv",
    "store": "store",
    "splits": {"file": "splits.json", "n_splits": 10, "val_fraction": 0.2, "seed": 0},
    "model": {},
    "training": {"batch_size": 32, "lr": 1.0e-3, "precision": "fp32"},
    "configurations": [
        {"name": "cnn-imagenet-linear", "model": {**CNN, "method": "linear"},
         "training": {"epochs": 40, "patience": 8, "frames": "all"}},
        {"name": "cnn-imagenet-lora", "model": {**CNN, "method": "lora", "lora_dropout": 0.0}, "training": FINE_TUNE},
        {"name": "cnn-imagenet-full", "model": {**CNN, "method": "full"}, "training": {**FINE_TUNE, "lr": 3.0e-4}},
        {"name": VIT, "model": {"backbone": "vit_tiny_d6_patch16_96", "weights": "random", "method": "full"},
         "training": {"frames": "main", "epochs": 8, "patience": 3, "lr": 5.0e-4}},
        {"name": "clinical-only", "model": {"image": False, "clinical_columns": CLINICAL}},
    ],
}


def with_clinical(experiment: dict, name: str) -> dict:
    """The experiment plus configuration `name` (a grid point, if from a grid) trained again with the
    clinical features (name-cf)."""
    from vcpred.experiment.grid import expand_entry

    experiment = copy.deepcopy(experiment)
    chosen = next(item for entry in experiment["configurations"] for item in expand_entry(entry)
                  if item["name"] == name)
    chosen["name"] = f"{name}-cf"
    chosen["model"] = {**chosen["model"], "clinical_columns": CLINICAL}
    experiment["configurations"].insert(-1, chosen)
    return experiment


def with_splits(experiment: dict, count: int) -> dict:
    """The experiment over `count` splits (at least 2)."""
    if count < 2:
        raise VcpredError(f"--splits must be at least 2 (the ensembles and the over-split tests need them), got {count}")
    return {**experiment, "splits": {**experiment["splits"], "n_splits": count}}


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the whole pipeline on a synthetic cohort")
    demo.add_argument("--out", default="runs/demo", help="folder for everything (default %(default)s)")
    demo.add_argument("--development", type=int, default=200)
    demo.add_argument("--external", type=int, default=45)
    demo.add_argument("--jobs", type=int, default=2, help="processes for synth, prepare and the experiment")
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort (default %(default)s)")
    demo.add_argument("--splits", type=int, default=10,
                      help="patient-level train/validation splits (default %(default)s, as the study; fewer: "
                           "a quicker, rougher look)")
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
    experiment = with_splits(DEMO_EXPERIMENT, args.splits)
    out = Path(args.out)
    _check_start(out, args, experiment["splits"]["val_fraction"])
    _mark_demo_folder(out)
    quiet = ["--quiet"] if console.is_quiet() else []
    cohort, manifest = out / "cohort", out / "cohort" / "manifest.csv"
    start = time.perf_counter()
    if manifest.is_file():
        console.say(f"== synth: {manifest} exists, reused")
    else:
        _step("synthetic cohort", quiet + ["synth", "--out", str(cohort), "--development", str(args.development),
                                            "--external", str(args.external), "--sequences", "t2",
                                            "--seed", str(args.seed), "--jobs", str(args.jobs)])
    _step("cohort check", quiet + ["cohort", "check", str(manifest)])
    _step("prepare", quiet + ["prepare", str(manifest), "--out", str(out / "store"), "--size", str(DEMO_SIZE),
                              "--jobs", str(args.jobs)])
    _experiment(out, experiment, "experiment", quiet, args.jobs)
    best_image = _best_configuration(out, image_only=True)
    _experiment(out, with_clinical(experiment, best_image), f"experiment: {best_image} + clinical features",
                quiet, args.jobs)
    best = _export_best(out, quiet)
    models = ["--model", str(out / "model")]
    if best != VIT:  # the ViT's attention-rollout maps join the report's gallery
        _export(out, VIT, "model-vit", quiet, "export the ViT for attention-rollout maps")
        models += ["--model", str(out / "model-vit")]
    _predict_one(out, quiet)
    _step("report", quiet + ["report", str(out / "eval"), *models, "--out", str(out / "report.html"), "--force"])
    _summary(out, best, time.perf_counter() - start)
    return 0


def _check_start(out: Path, args: argparse.Namespace, val_fraction: float) -> None:
    """Everything the demo can check before its first step: a wrong size or folder found after synth and
    prepare would cost minutes, and the demo must never write into a folder holding a user's files."""
    from vcpred.output_folder import check

    _check_sizes(args, val_fraction)
    check(out, kind="demo")
    _check_same_splits(out, args.splits)
    if (out / "cohort" / "manifest.csv").is_file():
        _check_same_cohort(out, args)


def _mark_demo_folder(out: Path) -> None:
    """The record that tells a later demo (and nothing else) that this folder is the demo's to write into."""
    from vcpred import __version__
    from vcpred.output_folder import DEMO_RECORD

    out.mkdir(parents=True, exist_ok=True)
    record = out / DEMO_RECORD
    if not record.is_file():
        record.write_text(json.dumps({"generator": "vcpred demo", "vcpred_version": __version__,
                                      "note": "a `vcpred demo` folder: a rerun of the demo writes here"}, indent=1) + "\n")


SIZE_SEARCH_LIMIT = 5000  # development patients tried when naming a size that works


def _check_sizes(args: argparse.Namespace, val_fraction: float) -> None:
    """The demo predicts one external patient, and every split's validation set needs enough cases and
    controls. Synth's labels are drawn per patient without images, so this is known before synth runs."""
    if args.external < 1:
        raise VcpredError(f"--external must be at least 1 (the demo validates on the external set and predicts "
                          f"one external patient), got {args.external}")
    needed = _development_needed(args.seed, val_fraction, max(args.development, SIZE_SEARCH_LIMIT))
    if needed is not None and needed <= args.development:
        return
    labels = list(itertools.islice(_development_labels(args.seed), max(args.development, 0)))
    advice = f"use --development {needed} or more" if needed else "use more development patients"
    raise VcpredError(f"--development {args.development} with seed {args.seed} gives {labels.count(1)} case(s) and "
                      f"{labels.count(0)} control(s); each of the demo's splits puts {val_fraction:.0%} of them in "
                      f"its validation set, which needs at least 2 cases and 2 controls: {advice}")


def _development_labels(seed: int) -> Iterator[int]:
    """The labels synth draws for its development patients, in order (drawn without images)."""
    from vcpred.synth.patient import PatientSpec, draw_outcome

    for index in itertools.count():
        yield int(draw_outcome(PatientSpec(seed, "development", index, ""))[2].label)


def _development_needed(seed: int, val_fraction: float, limit: int) -> int | None:
    """The fewest development patients (at most limit) whose synthetic labels allow the demo's splits:
    more patients never take a case or control away, so the first size that works is the answer."""
    labels: list[int] = []
    for label in itertools.islice(_development_labels(seed), limit):
        labels.append(label)
        if _splits_possible(labels, val_fraction):
            return len(labels)
    return None


def _splits_possible(labels: list[int], val_fraction: float) -> bool:
    """Whether the experiment's own rule (cohort.splits) accepts these development labels."""
    from vcpred.cohort.manifest import Cohort, PatientRecord, Roi
    from vcpred.cohort.splits import check_validation_size
    from vcpred.errors import SplitError

    if min(labels.count(1), labels.count(0)) < 2:
        return False  # the rule's cheap part first: it runs once per patient tried
    records = [PatientRecord(f"dev{i}", "development", label, {}, Roi(0, 0, 0, 1, 1)) for i, label in enumerate(labels)]
    try:
        check_validation_size(Cohort(Path("synthetic"), records, ["t2"], {}), val_fraction)
    except SplitError:
        return False
    return True


def _check_same_cohort(out: Path, args: argparse.Namespace) -> None:
    """A demo folder is reused only for the seed and sizes it was made with: its runs, evaluation and
    model belong to that cohort, and mixing in another one's would compare runs on other patients."""
    try:
        made = json.loads((out / "cohort" / "synth.json").read_text())
    except (OSError, ValueError):
        made = {}
    found = (made.get("seed"), made.get("n_development"), made.get("n_external"))
    if found != (args.seed, args.development, args.external):
        what = (f"seed {found[0]}, {found[1]} development + {found[2]} external patients" if made
                else "a cohort vcpred synth did not record")
        raise VcpredError(f"{out} holds a demo made with {what}, not seed {args.seed}, {args.development} + "
                          f"{args.external}; give this demo its own folder (--out {out}-seed{args.seed}) or "
                          f"delete {out}")


def _check_same_splits(out: Path, count: int) -> None:
    """A demo folder's runs belong to its splits: another --splits would mix two sets of splits."""
    try:
        made = yaml.safe_load((out / "experiment.yaml").read_text())["splits"]["n_splits"]
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        return  # no experiment yet
    if made != count:
        raise VcpredError(f"{out} holds a demo trained over {made} splits, not {count}; give this demo its own "
                          f"folder (--out {out}-{count}splits) or delete {out}")


def _experiment(out: Path, experiment: dict, title: str, quiet: list[str], jobs: int) -> None:
    """Write the grid, train what is not finished yet, evaluate every configuration."""
    path = out / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    # The demo's runs are its own: one that became stale (made by an earlier vcpred) is retrained.
    _step(title, quiet + ["experiment", str(path), "--out", str(out / "runs"), "--jobs", str(jobs),
                          "--retrain-stale"])
    _step("evaluate", quiet + ["evaluate", str(out / "runs"), "--out", str(out / "eval"), "--force",
                               "--manifest", str(out / "cohort" / "manifest.csv")])


def _internal_rows(out: Path):
    import pandas as pd

    summary = pd.read_csv(out / "eval" / "summary.csv")
    return summary[summary["set"].eq("internal")]


def _best_configuration(out: Path, *, image_only: bool) -> str:
    """The configuration with the highest mean internal AUC (either AP setting): the image configuration
    the demo trains again with clinical features (evaluate's selection rule then chooses among all)."""
    from vcpred.evaluate.compare import best_summary_row

    rows = _internal_rows(out)
    if image_only:
        rows = rows[~rows["clinical"].astype(str).str.lower().eq("true")]
    return str(best_summary_row(rows)["configuration"])


def _export_best(out: Path, quiet: list[str]) -> str:
    """Export the variant `vcpred evaluate` marked best, with its AP setting."""
    rows = _internal_rows(out)
    best = rows[rows["best"].astype(str).str.lower().eq("true")].iloc[0]
    ap = str(best["ap"]).lower() == "true"
    _export(out, str(best["configuration"]), "model", quiet, "export the best configuration", ap=ap)
    return str(best["configuration"])


def _export(out: Path, configuration: str, folder: str, quiet: list[str], title: str, *, ap: bool | None = None
            ) -> None:
    """Export a configuration with the given AP setting, or (None) its better one by mean internal AUC."""
    from vcpred.evaluate.compare import best_summary_row

    if ap is None:
        rows = _internal_rows(out)
        ap = str(best_summary_row(rows[rows["configuration"].eq(configuration)])["ap"]).lower() == "true"
    _step(title, quiet + ["export", str(out / "runs"), "--configuration", configuration, "--out", str(out / folder),
                          "--eval", str(out / "eval"), "--ap" if ap else "--no-ap", "--force"])


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


def _bayes_auc(out: Path, set_name: str) -> float:
    """AUC of the synthetic cohort's true probabilities: what no model can beat on these labels."""
    import pandas as pd

    from vcpred.stats import roc_auc

    truth = pd.read_csv(out / "cohort" / "truth.csv").drop(columns=["set"], errors="ignore")
    labels = pd.read_csv(out / "cohort" / "manifest.csv")[["patient_id", "set", "label"]]
    rows = truth.merge(labels, on="patient_id").query("set == @set_name")
    return roc_auc(rows["label"].to_numpy(), rows["true_probability"].to_numpy())


def _external_auc(summary, configuration: str, ap: bool) -> str:
    rows = summary[summary["configuration"].eq(configuration) & summary["set"].eq("external")
                   & summary["ap"].astype(str).str.lower().eq(str(ap).lower())]
    if rows.empty:  # evaluate shows a variant AP leaves unchanged once (clinical-only: one frame)
        return "the same as without AP (the model sees no image frames)"
    row = rows.iloc[0]
    return (f"{row['auc_mean']:.3f} (SD {row['auc_sd']:.3f}) over split models; ensemble {row['ensemble_auc']:.3f} "
            f"(95 % CI {row['ensemble_auc_ci_low']:.3f}-{row['ensemble_auc_ci_high']:.3f})")


def _summary(out: Path, best: str, seconds: float) -> None:
    import pandas as pd

    summary = pd.read_csv(out / "eval" / "summary.csv")
    evaluation = json.loads((out / "eval" / "evaluation.json").read_text())
    why = (evaluation.get("selection") or {}).get("reason") or evaluation["comparisons"].get("best_rule", "")
    console.say(f"\n== summary ({seconds / 60:.1f} min; everything under {out})")
    console.say(f"  best variant (evaluate's selection rule): {evaluation['best']} ({why}); {best} exported to "
                f"{out / 'model'}")
    console.say(f"  external AUC with AP:    {_external_auc(summary, best, True)}")
    console.say(f"  external AUC without AP: {_external_auc(summary, best, False)}")
    console.say(f"  Bayes AUC of the synthetic cohort (true probabilities): external {_bayes_auc(out, 'external'):.3f}, "
                f"development {_bayes_auc(out, 'development'):.3f}")
    console.say(f"  report: {out / 'report.html'} (tables: {out / 'eval' / 'tables.md'})")
    console.say(f"  {RESEARCH_NOTICE}")

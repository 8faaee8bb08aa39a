"""What the standardisation and augmentation options do at an unseen site, on the demo's synthetic cohorts.

Usage: .venv/bin/python benchmarks/bench_transfer.py [--root /tmp/vcpred-transfer] [--seeds 0 1 2 3 4]
       [--splits 10] [--options plain acq hist] [--stores store store-quantile store-1.1mm] [--no-run]

Per seed: the demo's cohort (synth, 200 development patients at sites A-C + 45 external at site D, T2),
prepared at the demo's 96 px in up to three stores (`--stores`: the default store; `store-quantile`,
crops normalised by the normal quantile of each pixel's rank (`--normalize quantile`); `store-1.1mm`,
crops resampled to 1.1 mm, the coarsest site's spacing), and on each store the demo's best-performing kind of
configuration, the frozen ImageNet CNN as linear probe with the clinical columns (linear-cf), trained
plain, with TorchIO acquisition augmentation (`training.acquisition: {}`) and with Nyúl-Udupa histogram
standardisation (`model.standardize: histogram`); clinical-only as the reference. Each variant is
scored with augmented prediction (mean over the 5 frames) as bench_learning scores it: mean internal
validation AUC, out-of-split AUC per development site and the worst, external (site D) AUC of the split
ensemble, and the perfect-feature ceiling (same splits). This measures the defaults issue 26 asks for;
it does not choose anything by the external set inside vcpred. Rewrites BENCHMARKS.md's "transfer" section.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402
from bench_learning import ceiling, cohort_table, read_splits, variant_numbers  # noqa: E402

from vcpred.cli import main as vcpred  # noqa: E402
from vcpred.demo import CLINICAL, CNN, DEMO_SIZE  # noqa: E402

STORES = {"store": [], "store-1.1mm": ["--crop-spacing-mm", "1.1"], "store-quantile": ["--normalize", "quantile"]}
LINEAR_CF = {"model": {**CNN, "method": "linear", "clinical_columns": CLINICAL},
             "training": {"epochs": 40, "patience": 8, "frames": "all"}}
OPTIONS = {  # option -> (name suffix, what it adds to linear-cf)
    "plain": ("", {}),
    "acq": ("-acq", {"training": {"acquisition": {}}}),
    "hist": ("-hist", {"model": {"standardize": "histogram"}}),  # features per split: about 15x plain's cost
}


def configuration(option: str) -> dict:
    suffix, extra = OPTIONS[option]
    return {"name": f"linear-cf{suffix}", "model": {**LINEAR_CF["model"], **extra.get("model", {})},
            "training": {**LINEAR_CF["training"], **extra.get("training", {})}}


def experiment(store: str, splits: int, options: list[str]) -> dict:
    configurations = [configuration(option) for option in options]
    if store == "store":
        configurations.append({"name": "clinical-only", "model": {"image": False, "clinical_columns": CLINICAL}})
    return {"manifest": "cohort/manifest.csv", "store": store,
            "splits": {"file": "splits.json", "n_splits": splits, "val_fraction": 0.2, "seed": 0},
            "model": {}, "training": {"batch_size": 32, "lr": 1.0e-3, "precision": "fp32"},
            "configurations": configurations}


def call(argv: list[str]) -> None:
    if vcpred(["--quiet", *argv]) != 0:
        raise SystemExit(f"vcpred {' '.join(argv)} failed")


def run_seed(out: Path, seed: int, splits: int, options: list[str], stores: list[str]) -> None:
    if not (out / "cohort" / "manifest.csv").is_file():
        call(["synth", "--out", str(out / "cohort"), "--development", "200", "--external", "45",
              "--sequences", "t2", "--seed", str(seed), "--jobs", "2"])
    for store in stores:
        call(["prepare", str(out / "cohort" / "manifest.csv"), "--out", str(out / store), "--size", str(DEMO_SIZE),
              "--jobs", "2", *STORES[store]])
        path = out / f"experiment-{store}.yaml"
        grid = experiment(store, splits, options)
        print(f"seed {seed}, {store}: {', '.join(c['name'] for c in grid['configurations'])}", flush=True)
        path.write_text(yaml.safe_dump(grid, sort_keys=False))
        call(["experiment", str(path), "--out", str(out / f"runs-{store}"), "--jobs", "2"])


def seed_rows(out: Path, seed: int, stores: list[str]) -> tuple[list[list], dict]:
    cohort = cohort_table(out)
    top = ceiling(cohort, read_splits(out))
    rows, external = [], {}
    for store in stores:
        runs = out / f"runs-{store}"
        if not runs.is_dir():  # not trained on this seed (--no-run over folders made with other --stores)
            continue
        for folder in sorted(p for p in runs.iterdir() if p.is_dir() and any(p.glob("split-*"))):
            ap = folder.name != "clinical-only"
            n = variant_numbers(runs, cohort, folder.name, ap)
            label = f"{folder.name}{' + AP' if ap else ''} ({store})"
            external[label] = n["external"]
            sites = " / ".join(f"{s} {v:.3f}" for s, v in sorted(n["sites"].items()))
            rows.append([seed, label, f"{n['internal']:.3f}", sites, f"{n['worst_site']:.3f}", f"{n['external']:.3f}",
                         f"{top['external'] - n['external']:+.3f}"])
    return rows, external


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="/tmp/vcpred-transfer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--options", nargs="+", choices=list(OPTIONS), default=list(OPTIONS),
                        help="linear-cf variants trained on each store")
    parser.add_argument("--stores", nargs="+", choices=list(STORES), default=list(STORES),
                        help="stores prepared and trained on (the first must be 'store': clinical-only runs there)")
    parser.add_argument("--no-run", action="store_true", help="read finished folders, run nothing")
    args = parser.parse_args()
    rows, externals, minutes = [], [], []
    for seed in args.seeds:
        out = Path(args.root) / f"seed-{seed}"
        start = time.perf_counter()
        if not args.no_run:
            run_seed(out, seed, args.splits, args.options, args.stores)
        minutes.append((time.perf_counter() - start) / 60)
        seed_table, external = seed_rows(out, seed, args.stores)
        rows += seed_table
        externals.append(external)
    everywhere = [label for label in externals[0] if all(label in e for e in externals)]  # trained on every seed
    means = [[label, f"{np.mean([e[label] for e in externals]):.3f}",
              f"{min(e[label] for e in externals):.3f}"] for label in everywhere]
    body = "\n".join([
        "## Standardisation and acquisition augmentation at an unseen site (issue 26)", "",
        f"`benchmarks/bench_transfer.py --seeds {' '.join(map(str, args.seeds))} --splits {args.splits} --options "
        f"{' '.join(args.options)} --stores {' '.join(args.stores)}` — per seed "
        "the demo's cohort (200 development patients, sites A-C; 45 external, site D: 1.1 mm pixels, lower "
        "contrast, more noise and bias field), prepared at 96 px as the demo does (store), with per-crop "
        "quantile normalisation (store-quantile) and with crops resampled to 1.1 mm (store-1.1mm); on each store the frozen ImageNet EfficientNet-Lite0 linear probe with the "
        "clinical columns, plain, with TorchIO acquisition augmentation (`training.acquisition: {}`, 2 cached "
        "views per frame) and with Nyúl-Udupa histogram standardisation fitted per split "
        "(`model.standardize: histogram`). Internal = mean validation AUC over splits; per site = pooled "
        "out-of-split AUC; external = AUC of the split ensemble at site D; gap = perfect-feature ceiling "
        "(bench_learning) minus external. All AUCs recomputed with scikit-learn from predictions.csv. "
        + ("Read from finished folders (`--no-run`)." if args.no_run else
           f"Wall time per seed (min): {', '.join(f'{m:.1f}' for m in minutes)}."), "",
        "Mean and worst external AUC over the seeds (variants trained on every seed):", "",
        markdown_table(["variant", "mean external AUC", "worst seed"], means), "",
        markdown_table(["seed", "variant", "internal AUC", "out-of-split AUC per site", "worst site",
                        "external AUC", "gap to ceiling (external)"], rows),
        "", f"Machine: {machine_line()}",
    ])
    update_section("transfer", body)


if __name__ == "__main__":
    main()

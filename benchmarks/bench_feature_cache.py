"""Frozen-feature cache speed-up for linear probing: two splits trained with and without the cache.

Usage: .venv/bin/python benchmarks/bench_feature_cache.py [--demo runs/demo] [--epochs 3]
Needs a finished `vcpred demo` folder (its prepared store and splits). The cache is cleared first
so the first cached split pays for computing the features. Rewrites the "feature-cache" section.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402

from vcpred.models import ModelSpec  # noqa: E402
from vcpred.training import TrainConfig, TrainingParams, train_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    store = args.demo / "store"
    shutil.rmtree(store / "feature_cache", ignore_errors=True)
    spec = ModelSpec(backbone="efficientnet_lite0", weights="imagenet", method="linear")
    rows, work = [], Path(tempfile.mkdtemp())
    for cache in (False, True):
        for split in (0, 1):
            params = TrainingParams(epochs=args.epochs, batch_size=32, patience=args.epochs, feature_cache=cache)
            config = TrainConfig("bench", args.demo / "cohort" / "manifest.csv", store, args.demo / "splits.json",
                                 spec, params)
            start = time.perf_counter()
            run = train_run(config, split, work / f"{cache}-{split}")
            seconds = time.perf_counter() - start
            hit = json.loads((run / "metrics.json").read_text())["feature_cache_hit"]
            rows.append(["on" if cache else "off (augmented frames through the frozen backbone)", split,
                         {None: "-", False: "miss (computes features)", True: "hit"}[hit], f"{seconds:.1f}"])
            print(rows[-1], flush=True)
    shutil.rmtree(work)
    off = sum(float(r[3]) for r in rows[:2]) / 2
    hit = float(rows[3][3])
    body = "\n".join([
        "## Frozen-feature cache (linear probe)", "",
        f"`benchmarks/bench_feature_cache.py --epochs {args.epochs}` — EfficientNet-Lite0 ImageNet linear probe on the "
        "demo's store (200 development + 45 external patients, 5 frames each, 224 px), wall seconds per split "
        "including loading and writing the run.", "",
        markdown_table(["cache", "split", "cache state", "seconds"], rows), "",
        f"Speed-up per split once cached: {off / hit:.0f}× at {args.epochs} epochs (the uncached cost grows with "
        "the epochs, the cached one hardly). Over 10 splits the features are computed once.", "",
        f"Machine: {machine_line()}",
    ])
    update_section("feature-cache", body)


if __name__ == "__main__":
    main()

"""Benchmark `vcpred synth`: the study-sized cohort (200 + 45 patients, T2 + T1, DICOM).

Generates it into a temporary folder with --jobs 1 and --jobs 2 (checking that both give the same
manifest and truth bytes), then measures prevalence and Bayes AUC of the risk model over 10 seeds
(risk model only, no images). Prints the tables and updates BENCHMARKS.md (section "synth").

    .venv/bin/python benchmarks/bench_synth.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402

from vcpred.synth import generate_cohort  # noqa: E402
from vcpred.synth.patient import PatientSpec, draw_outcome  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_cohort(root: Path, jobs: int, n_dev: int, n_ext: int) -> tuple[list, bytes]:
    out = root / f"jobs{jobs}"
    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), cpu_seconds()
    result = generate_cohort(out, n_development=n_dev, n_external=n_ext, seed=0, jobs=jobs)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    n = n_dev + n_ext
    row = [jobs, n, f"{wall:.1f}", f"{n / wall:.2f}", f"{cpu:.0f}", f"{cpu / n:.2f}", f"{load:.1f}",
           f"{result.bytes_written / 1e6:.0f}",
           f"{result.prevalence['development']:.3f}", f"{result.bayes_auc['development']:.3f}",
           f"{result.prevalence['external']:.3f}", f"{result.bayes_auc['external']:.3f}"]
    return row, (out / "manifest.csv").read_bytes() + (out / "truth.csv").read_bytes()


def seed_sweep(seeds: range) -> tuple[list[list], list[list]]:
    """Per seed: development and external prevalence and Bayes AUC (200 + 45 patients)."""
    rows, values = [], []
    for seed in seeds:
        row = [seed]
        for set_name, n in (("development", 200), ("external", 45)):
            risks = [draw_outcome(PatientSpec(seed, set_name, i, "x"))[2] for i in range(n)]
            labels = np.array([r.label for r in risks])
            auc = roc_auc_score(labels, [r.probability for r in risks])
            row += [labels.mean(), auc]
        values.append(row[1:])
        rows.append([seed] + [f"{v:.3f}" for v in row[1:]])
    mean, sd = np.mean(values, axis=0), np.std(values, axis=0, ddof=1)
    rows.append(["mean (SD)"] + [f"{m:.3f} ({s:.3f})" for m, s in zip(mean, sd)])
    return rows, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 + 5 patients (smoke test)")
    args = parser.parse_args()
    n_dev, n_ext = (20, 5) if args.quick else (200, 45)
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        row1, bytes1 = timed_cohort(Path(tmp), 1, n_dev, n_ext)
        row2, bytes2 = timed_cohort(Path(tmp), 2, n_dev, n_ext)
    same = "yes" if bytes1 == bytes2 else "NO"
    header = ["jobs", "patients", "wall s", "patients/s", "CPU s", "CPU s/patient",
              "load avg at start", "MB written", "dev prevalence",
              "dev Bayes AUC", "ext prevalence", "ext Bayes AUC"]
    sweep, _ = seed_sweep(range(10))
    body = "\n".join([
        f"## vcpred synth ({n_dev} + {n_ext} patients, T2 + T1, DICOM, seed 0)", "",
        markdown_table(header, [row1, row2]), "",
        f"manifest.csv + truth.csv byte-identical for jobs 1 and 2: {same}. "
        "CPU s counts this process and its workers; the machine is shared, so wall time grows "
        "with the load average of other work (on an idle 2-core machine, jobs 2 takes about "
        "CPU s / 2).", "",
        "Risk model over 10 seeds (200 development + 45 external patients each, no images):", "",
        markdown_table(["seed", "dev prevalence", "dev Bayes AUC", "ext prevalence", "ext Bayes AUC"],
                       sweep), "",
        f"Machine: {machine_line()}",
    ])
    update_section("synth", body)


if __name__ == "__main__":
    main()

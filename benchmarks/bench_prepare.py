"""Benchmark `vcpred prepare` on the 245-patient synthetic cohort (200 development + 45 external).

Rows: per-patient per-sequence seconds with and without N4 (serial, in-process, wall and CPU),
the whole cohort with N4 at --jobs 1 and 2 (wall), and the re-run that skips unchanged patients.

    .venv/bin/python benchmarks/bench_prepare.py [--patients 245] [--sample 20] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, update_section  # noqa: E402

from vcpred import console  # noqa: E402
from vcpred.cohort import load_manifest  # noqa: E402
from vcpred.imaging import PrepareParams, prepare_cohort, prepare_patient  # noqa: E402


def make_cohort(workdir: Path, patients: int) -> tuple[Path, str]:
    """The synthetic cohort (vcpred.synth, DICOM, T2 only), generated once into workdir."""
    from vcpred.synth.generate import generate_cohort

    out = workdir / f"synth{patients}"
    if not (out / "manifest.csv").exists():
        external = min(45, patients // 5)
        started = time.perf_counter()
        generate_cohort(out, n_development=patients - external, n_external=external, seed=0,
                        fmt="dicom", sequences=("t2",), jobs=2, force=True)
        print(f"generated {patients} patients in {time.perf_counter() - started:.0f} s", flush=True)
    return out / "manifest.csv", "vcpred.synth.generate_cohort (DICOM series, T2)"


def per_patient(records, params: PrepareParams) -> tuple[float, float]:
    """Mean wall and CPU seconds of prepare_patient over records (one sequence each)."""
    prepare_patient(records[0], params)  # warm-up: imports, ITK thread pool
    wall = cpu = 0.0
    for record in records:
        w, c = time.perf_counter(), time.process_time()
        prepare_patient(record, params)
        wall += time.perf_counter() - w
        cpu += time.process_time() - c
    return wall / len(records), cpu / len(records)


def timed_cohort(cohort, store: Path, params: PrepareParams, jobs: int) -> tuple[float, int, int]:
    started = time.perf_counter()
    summary = prepare_cohort(cohort, store, params, jobs=jobs)
    if summary.failed:
        print(f"failed: {summary.failed}", file=sys.stderr)
    return time.perf_counter() - started, len(summary.prepared), len(summary.skipped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=245)
    parser.add_argument("--sample", type=int, default=20, help="patients timed one by one")
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the generated cohort between runs")
    args = parser.parse_args()
    console.configure(quiet=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    workdir.mkdir(parents=True, exist_ok=True)
    manifest, source = make_cohort(workdir, args.patients)
    cohort = load_manifest(manifest)
    params, no_n4 = PrepareParams(), PrepareParams(n4=False)
    sample = cohort.records[:args.sample]
    n4_wall, n4_cpu = per_patient(sample, params)
    raw_wall, raw_cpu = per_patient(sample, no_n4)
    print(f"per patient: N4 {n4_wall:.2f} s (cpu {n4_cpu:.2f}), no N4 {raw_wall:.2f} s", flush=True)
    rows = [[f"per patient per sequence, N4 on (mean of {len(sample)}, serial)", f"{n4_wall:.2f}", f"{n4_cpu:.2f}"],
            [f"per patient per sequence, N4 off (mean of {len(sample)}, serial)", f"{raw_wall:.2f}", f"{raw_cpu:.2f}"]]
    for jobs in (1, 2):
        store = workdir / f"store_jobs{jobs}"
        shutil.rmtree(store, ignore_errors=True)
        seconds, prepared, _ = timed_cohort(cohort, store, params, jobs)
        print(f"jobs {jobs}: {seconds:.0f} s for {prepared} patients", flush=True)
        rows.append([f"{prepared} patients, N4 on, --jobs {jobs}: total wall (per patient)",
                     f"{seconds:.0f} ({seconds / max(prepared, 1):.2f})", "-"])
    seconds, _, skipped = timed_cohort(cohort, workdir / "store_jobs1", params, 1)
    rows.append([f"re-run, nothing changed ({skipped} skipped)", f"{seconds:.2f}", "-"])
    load = os.getloadavg()[0]
    body = (f"## `vcpred prepare` (imaging pipeline)\n\nCohort: {len(cohort)} patients from {source}; "
            "default parameters (N4 shrink 4, at most 20000 fit voxels, iterations 30,20, "
            "k = 2 -> 5 frames, 224 px).\n\n"
            + markdown_table(["measurement", "wall s", "CPU s"], rows)
            + f"\n\n{machine_line()}; 1-min load average at the end {load:.1f} (CPU shared with other work).")
    update_section("prepare", body)


if __name__ == "__main__":
    main()

"""`make demo` wall time on a fresh clone (venv install included) and on a rerun.

Usage: .venv/bin/python benchmarks/bench_demo.py [--dir /tmp/vcpred-demo-bench]
Clones the committed HEAD of this repository into DIR (removed first), runs `make demo` there twice
and rewrites the "demo" section of BENCHMARKS.md. The first run creates DIR/.venv (pip takes torch
from this machine's disk, the rest from PyPI or pip's cache) and runs every step; the second reuses
the venv, the cohort, the prepared store and the finished runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def timed_make_demo(folder: Path, log: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VCPRED_VENV")}
    start = time.perf_counter()
    with open(log, "w") as handle:
        code = subprocess.run(["make", "demo"], cwd=folder, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"make demo failed (exit {code}); see {log}")
    return seconds


def summary_lines(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("== summary"))
    return [line.strip() for line in lines[start:start + 7]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/vcpred-demo-bench")
    args = parser.parse_args()
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(folder)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True,
                            text=True, check=True).stdout.strip()
    load = os.getloadavg()[0]
    fresh = timed_make_demo(folder, folder / "demo-fresh.log")
    rerun = timed_make_demo(folder, folder / "demo-rerun.log")
    rows = [["fresh clone: venv install + every step", f"{fresh / 60:.1f}", f"{load:.1f}"],
            ["rerun: everything reused, evaluate/export/predict/report again", f"{rerun / 60:.1f}",
             f"{os.getloadavg()[0]:.1f}"]]
    body = "\n".join([
        "## `make demo` wall time", "",
        f"`benchmarks/bench_demo.py` — a clone of commit {commit}, `make demo` twice (budget: 15 min on a fresh "
        "2-core machine, install included).", "",
        markdown_table(["run", "wall min", "load avg at start"], rows), "",
        "The fresh run's summary, as printed:", "", "```", *summary_lines(folder / "demo-fresh.log"), "```", "",
        f"Machine: {machine_line()}",
    ])
    update_section("demo", body)


if __name__ == "__main__":
    main()

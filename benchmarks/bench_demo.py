"""`make demo` wall time on a fresh clone (venv install included) and on a rerun, with the time of
each step, on this machine's kind of CPU: with native bf16 (AVX512-BF16 or AMX) or without.

Usage: .venv/bin/python benchmarks/bench_demo.py [--dir /tmp/vcpred-demo-bench] [--max-cpu-isa AVX2]
Clones the committed HEAD of this repository into DIR (removed first), runs `make demo` there twice
and rewrites this CPU kind's "demo" section of BENCHMARKS.md. The first run creates DIR/.venv (pip
takes torch from this machine's disk, the rest from PyPI or pip's cache) and runs every step; the
second reuses the venv, the cohort, the prepared store and the finished runs. --max-cpu-isa sets
ONEDNN_MAX_CPU_ISA for both runs: AVX2 makes a CPU with native bf16 compute like one without.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, matmul_ceiling, update_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUDGET_MIN = 10  # issue 25: a fresh 2-core machine, install included, with or without native bf16


def cpu_kind(env: dict[str, str]) -> tuple[str, str]:
    """(section name, words) for the CPU the demo runs on, as oneDNN sees it under env."""
    probe = "import torch; print(torch.ops.mkldnn._is_mkldnn_bf16_supported())"
    native = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                            check=True).stdout.strip() == "True"
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    isa = f", ONEDNN_MAX_CPU_ISA={env['ONEDNN_MAX_CPU_ISA']}" if env.get("ONEDNN_MAX_CPU_ISA") else ""
    if native:
        return "demo-native-bf16", f"{model}, native bf16{isa}"
    return "demo-no-native-bf16", f"{model}, no native bf16 (bf16 emulated){isa}"


def timed_make_demo(folder: Path, log: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    with open(log, "w") as handle:
        code = subprocess.run(["make", "demo"], cwd=folder, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"make demo failed (exit {code}); see {log}")
    return seconds


def step_seconds(log: Path) -> list[tuple[str, int]]:
    """(step title, seconds) as the demo printed them: '== title: vcpred ...' then '   (N s)'."""
    steps, title = [], None
    for line in log.read_text().splitlines():
        if line.startswith("== ") and ": vcpred " in line:
            title = line[3:].split(": vcpred ")[0]
        elif title and (found := re.fullmatch(r"\s+\((\d+) s\)", line)):
            steps.append((title, int(found.group(1))))
            title = None
    return steps


def summary_lines(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("== summary"))
    return [line.strip() for line in lines[start:start + 7]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/vcpred-demo-bench")
    parser.add_argument("--max-cpu-isa", default=None, help="ONEDNN_MAX_CPU_ISA for the demo, e.g. AVX2")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VCPRED_VENV")}
    if args.max_cpu_isa:
        env["ONEDNN_MAX_CPU_ISA"] = args.max_cpu_isa
    section, kind = cpu_kind(env)
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(folder)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True,
                            text=True, check=True).stdout.strip()
    load = os.getloadavg()[0]
    # the same kind of shared virtual machine has run 40 % slower at times: its speed, before and after
    speed = [matmul_ceiling("cpu", "fp32")]
    fresh = timed_make_demo(folder, folder / "demo-fresh.log", env)
    rerun = timed_make_demo(folder, folder / "demo-rerun.log", env)
    speed.append(matmul_ceiling("cpu", "fp32"))
    rows = [["fresh clone: venv install + every step", f"{fresh / 60:.1f}", f"{load:.1f}"],
            ["rerun: everything reused, evaluate/export/predict/report again", f"{rerun / 60:.1f}",
             f"{os.getloadavg()[0]:.1f}"]]
    steps = step_seconds(folder / "demo-fresh.log")
    body = "\n".join([
        f"## `make demo` wall time: {kind}", "",
        f"`benchmarks/bench_demo.py` — a clone of commit {commit}, `make demo` twice (budget: {BUDGET_MIN} min "
        "on a fresh 2-core machine, install included, with and without native bf16). This machine's fp32 matmul "
        f"ceiling (2048²): {speed[0]:.0f} GFLOP/s before the runs, {speed[1]:.0f} after.", "",
        markdown_table(["run", "wall min", "load avg at start"], rows), "",
        "Where the fresh run's demo spent its time (each step as it printed it):", "",
        markdown_table(["step", "s"], [[title, s] for title, s in steps]
                       + [["venv install and the rest (the fresh run's wall less the steps)",
                           f"{fresh - sum(s for _, s in steps):.0f}"]]), "",
        "The fresh run's summary, as printed:", "", "```", *summary_lines(folder / "demo-fresh.log"), "```", "",
        f"Machine: {machine_line()}; {kind}",
    ])
    update_section(section, body)


if __name__ == "__main__":
    main()

"""Helpers shared by benchmark scripts: print a markdown table and keep BENCHMARKS.md current.

Each script owns one section of BENCHMARKS.md between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`; rerunning the script replaces that section only.
"""

from __future__ import annotations

import os
import platform
import re
import time
from datetime import date
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine_line() -> str:
    """Where the numbers came from: CPU count, threads, Python and torch versions."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, {date.today().isoformat()}")


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(name: str, body: str) -> None:
    """Replace (or append) this benchmark's section in BENCHMARKS.md and print it."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)
    print(body)


def timed(fn, *, min_seconds: float, warmup: int = 1) -> float:
    """Seconds per call: warm-up calls, then repeat until min_seconds have passed."""
    for _ in range(warmup):
        fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or calls < 2:
        fn()
        calls += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def matmul_ceiling(device: str, precision: str, n: int = 2048) -> float:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, min_seconds=1.0)
    return 2 * n ** 3 / seconds / 1e9


def forward_flops(model, images) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(images)
    return counter.get_total_flops() / images.shape[0]

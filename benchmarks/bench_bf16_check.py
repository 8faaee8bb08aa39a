"""The export's bf16 check (bundle.precision_check): its cost against the whole export, and its
number and decision against torch's own bf16 kernels, on the demo's two exported models.

Usage: .venv/bin/python benchmarks/bench_bf16_check.py [--demo runs/demo]
DEMO is a finished `vcpred demo` folder. Each of its exported models (model/, model-vit/) is
exported again into a temporary folder without the check (--bf16-check-patients 0), then the check
is run on that export twice: as export runs it (bf16 emulated with fp32 kernels,
vcpred.models.bf16_emulation) and with torch's bf16 kernels (bf16 weights under autocast, as
`vcpred predict --precision bf16` runs; native where the CPU has AVX512-BF16 or AMX, torch's own
emulation elsewhere). Rewrites the "bf16-check" section of BENCHMARKS.md for this kind of CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _common import machine_line, markdown_table, update_section  # noqa: E402

import torch  # noqa: E402

from vcpred.bundle import export_configuration  # noqa: E402
from vcpred.bundle import precision_check  # noqa: E402
from vcpred.bundle.export import find_runs  # noqa: E402
from vcpred.models.precision import BF16_TOLERANCE, inference_context, native_bf16, to_bf16_weights  # noqa: E402


@contextmanager
def torch_bf16_kernels(net):
    """Stands in for emulated_bf16 in precision_check: the prediction path's bf16."""
    to_bf16_weights(net)
    with inference_context("bf16"):
        yield lambda *inputs: net(*inputs).float()


def timed_check(folder: Path, runs: list, meta: dict, kernels: bool) -> tuple[dict, float]:
    original = precision_check.emulated_bf16
    if kernels:
        precision_check.emulated_bf16 = torch_bf16_kernels
    try:
        start = time.perf_counter()
        check = precision_check.bf16_check(folder, runs, meta["splits"], ap=meta["ap"], rule=meta["aggregate"],
                                           patients=8)
        return check, time.perf_counter() - start
    finally:
        precision_check.emulated_bf16 = original


def measure(demo: Path, model: str, scratch: Path) -> list[object]:
    meta = json.loads((demo / model / "bundle.json").read_text())
    configuration = meta["configuration"]
    start = time.perf_counter()
    out = export_configuration(demo / "runs", configuration, scratch / model, eval_dir=demo / "eval", ap=meta["ap"],
                               rule=meta["aggregate"], bf16_check_patients=0)
    export_seconds = time.perf_counter() - start
    runs = find_runs(demo / "runs", configuration)
    exported = json.loads((out / "bundle.json").read_text())
    emulated, emulated_seconds = timed_check(out, runs, exported, kernels=False)
    kernels, kernel_seconds = timed_check(out, runs, exported, kernels=True)

    def decision(check: dict) -> str:
        return "bf16 allowed" if check["max_probability_change"] < BF16_TOLERANCE else "fp32"

    share = emulated_seconds / (export_seconds + emulated_seconds)
    return [configuration, f"{emulated['splits_checked']} ({emulated['patients']}) / {kernels['splits_checked']} "
            f"({kernels['patients']}) of {len(runs)}", f"{export_seconds:.1f}",
            f"{emulated_seconds:.1f} ({share:.0%})", f"{kernel_seconds:.1f}",
            f"{emulated['max_probability_change']:.2e}", f"{kernels['max_probability_change']:.2e}",
            f"{decision(emulated)} / {decision(kernels)}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", default="runs/demo")
    args = parser.parse_args()
    demo = Path(args.demo)
    native = native_bf16()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [measure(demo, model, Path(scratch)) for model in ("model", "model-vit") if (demo / model).is_dir()]
    kind = "native bf16" if native else "no native bf16 (torch's bf16 kernels emulated)"
    body = "\n".join([
        f"## The export's bf16 check: {kind}", "",
        f"`benchmarks/bench_bf16_check.py --demo {demo}` — each exported model of the demo exported again without "
        "the check, then the check (split by split until one split model reaches the tolerance: the first split's "
        "first 2 validation patients as a screen, then 8 per split unless the screen decided; every frame of a patient with AP, the main frame alone without) as export runs it, "
        "bf16 emulated "
        "with fp32 kernels (`vcpred.models.bf16_emulation`), and with torch's bf16 kernels (bf16 weights under "
        "autocast, as `vcpred predict --precision bf16` runs). Decision: bf16 allowed when the largest change of a "
        f"probability is below {BF16_TOLERANCE:g}. Both are draws of bf16's rounding noise: they agree in size, not "
        "to the digit. The check stops at the first split model whose change reaches the tolerance.", "",
        markdown_table(["model", "splits (patients) checked, emulated / torch bf16", "export without the check, s", "check as export runs it, s (share of the export)",
                        "check with torch's bf16 kernels, s", "largest change, emulated", "largest change, torch bf16",
                        "decision, emulated / torch bf16"], rows), "",
        f"Machine: {machine_line()}; {kind}; torch threads {torch.get_num_threads()}",
    ])
    update_section("bf16-check-native" if native else "bf16-check-no-native", body)


if __name__ == "__main__":
    main()

"""Where a new `vcpred predict` process spends its time: the command's steps, timed in a fresh process.

The child process repeats what `vcpred predict` does for one patient (10 ViT-B/16 split models,
random weights, the real lumbar T2), stamping the time since the interpreter started after each
step: the sha256 check and the patient's preparation start in threads before torch and timm are
imported, as in the command.

    .venv/bin/python benchmarks/bench_predict_stages.py [--models 10] [--precision bf16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, update_section  # noqa: E402
from bench_predict import BODY, T2, build_bundle  # noqa: E402

CHILD = r"""
import time; START = time.perf_counter()
import sys
from pathlib import Path
marks = []
def mark(step): marks.append((step, time.perf_counter() - START))
folder, precision, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
import vcpred.cli, vcpred.predict.command as command
from vcpred.allocator import keep_freed_memory; keep_freed_memory(); mark("vcpred's command line imported")
from vcpred.bundle.files import check_in_background, read_meta
from vcpred.predict.inputs import make_record
raw = read_meta(folder)
record = make_record({"t2": Path(sys.argv[4])}, int(sys.argv[5]), tuple(map(int, sys.argv[6].split(","))), {})
checked = check_in_background(folder)
prepared = command.prepare_in_background(record, raw["prepare_params"]); mark("sha256 and preparation started")
import torch; mark("torch imported")
from vcpred.predict.bundle import load_bundle
from vcpred.predict.outputs import prepare_out, write_patient
from vcpred.predict.predict import predict_patient; mark("timm, vcpred's prediction imported")
checked.result(); mark("sha256 of every file checked")
bundle = load_bundle(folder, precision=precision, checked=checked); mark("networks built")
prepared.result(); mark("patient prepared")
from vcpred import console; console.configure(quiet=True)
prediction = predict_patient(bundle, record, prepared=prepared.result); mark("predicted (first call)")
write_patient(prepare_out(out, force=True), prediction); mark("written")
for step, seconds in marks:
    print(f"{step}\t{seconds:.2f}")
sys.stdout.flush()
import os; os._exit(0)  # as vcpred.cli.run ends `vcpred predict`: no interpreter teardown
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        model = build_bundle(Path(tmp) / "model", args.backbone, args.models)
        os.sync()  # a model directory is written long before it is used: no write-back during the runs
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            output = subprocess.run([sys.executable, "-c", CHILD, str(model), args.precision, str(Path(tmp) / "out"),
                                     str(T2), str(BODY.slice), ",".join(map(str, BODY.box))],
                                    check=True, capture_output=True, text=True).stdout
            wall = time.perf_counter() - start  # from the launch: the interpreter's start-up included
            runs.append([line.split("\t") for line in output.strip().splitlines()] + [["process ended", f"{wall:.2f}"]])
    best = min(runs, key=lambda marks: float(marks[-1][1]))
    rows, previous = [], 0.0
    for step, seconds in best:
        rows.append([step, seconds, f"{float(seconds) - previous:.2f}"])
        previous = float(seconds)
    body = "\n".join([
        "## Where a new `vcpred predict` process spends its time\n",
        f"`benchmarks/bench_predict_stages.py`: {args.models} x {args.backbone} (random weights), {args.precision}, "
        "the real lumbar T2; seconds since the interpreter started, after each step of the command (the fastest of "
        "3 runs), and the launch-to-exit wall time as its parent measured it. The sha256 check and the patient's "
        "preparation run in threads while torch and timm are imported.\n",
        markdown_table(["step", "at s", "step s"], rows), "",
        f"- machine: {machine_line()}",
    ])
    update_section("predict-stages", body)


if __name__ == "__main__":
    main()

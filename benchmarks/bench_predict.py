"""Benchmark `vcpred predict` for one patient: a 10-model ViT-B/16 ensemble, 5 frames, 2 CPU cores.

End to end in one process: load the bundle (sha256 of every file + rebuilding 10 models), read
the real lumbar T2 NIfTI, N4, crop, normalise, 10 models x 5 frames with attention capture, the
rollout heat map averaged over models, and writing prediction.json, heatmap.png and report.html;
in fp32 and bf16 (CPU autocast), with the largest probability difference between the two. Plus the
same through the `vcpred predict` command in a fresh process (imports included). Random weights
(timing only).

    .venv/bin/python benchmarks/bench_predict.py [--models 10] [--backbone vit_base_patch16_224]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, update_section  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from vcpred import console  # noqa: E402
from vcpred.cohort import Roi  # noqa: E402
from vcpred.imaging import PrepareParams, prepare_patient  # noqa: E402
from vcpred.models import ModelSpec, create_model, get_backbone  # noqa: E402
from vcpred.predict import load_bundle, make_record, predict_patient, write_patient  # noqa: E402
from vcpred.predict.export import finalise_bundle  # noqa: E402
from vcpred.predict.outputs import prepare_out  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T2 = ROOT / "tests" / "data" / "mri" / "t2_lumbar.nii.gz"  # copied in, with its MIT licence
BODY = Roi(slice=19, row_min=103, col_min=140, row_max=127, col_max=171)  # as in tests/imaging_support.py


def build_bundle(folder: Path, backbone: str, models: int) -> Path:
    """A bundle of `models` randomly initialised split models (different seeds)."""
    entries = []
    for split in range(models):
        spec = ModelSpec(backbone=backbone, weights="random", method="full", input_scale="zscore", seed=split)
        net = create_model(spec).net.eval()
        target = folder / f"split-{split:02d}"
        target.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(target / "model.safetensors"))
        (target / "model.json").write_text(json.dumps({"spec": spec.to_dict(), "clinical_features": 0}))
        entries.append({"split": split, "dir": target.name, "run": None, "threshold": 0.5})
    meta = {"configuration": f"bench-{backbone}", "kind": "image", "family": "vit" if "vit" in backbone else "cnn",
            "ap": True, "aggregate": "mean", "clinical_columns": [],
            "prepare_params": PrepareParams(size=get_backbone(backbone).input_size, k=2).to_dict(),
            "spec": spec.to_dict(), "splits": entries}
    return finalise_bundle(folder, meta, lambda m: f"# benchmark bundle {m['model_id']} (random weights)\n")


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def run_once(model_dir: Path, out: Path, precision: str) -> tuple[dict, dict]:
    """Seconds per stage and the prediction result for one end-to-end prediction."""
    bundle, load_s = timed(load_bundle, model_dir)
    record = make_record({"t2": T2}, BODY.slice, BODY.box, {})
    prediction, predict_s = timed(predict_patient, bundle, record, precision=precision)
    _, write_s = timed(lambda: write_patient(prepare_out(out, force=True), prediction))
    return {"load": load_s, "predict": predict_s, "write": write_s,
            "total": load_s + predict_s + write_s}, prediction.result


def cli_seconds(model_dir: Path, out: Path) -> float:
    command = [sys.executable, "-m", "vcpred", "--quiet", "predict", "--model", str(model_dir), "--image-t2", str(T2),
               "--roi-slice", str(BODY.slice), "--roi-box", ",".join(map(str, BODY.box)), "--out", str(out), "--force"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--no-cli", action="store_true", help="skip the fresh-process row")
    args = parser.parse_args()
    console.configure(quiet=True)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp = Path(tmp)
        _, build_s = timed(build_bundle, tmp / "bundle", args.backbone, args.models)
        print(f"built the bundle in {build_s:.0f} s", flush=True)
        record = make_record({"t2": T2}, BODY.slice, BODY.box, {})
        size = get_backbone(args.backbone).input_size
        prepare_s = min(timed(prepare_patient, record, PrepareParams(size=size, k=2))[1] for _ in range(2))
        rows, results = [], {}
        run_once(tmp / "bundle", tmp / "warm", "fp32")  # warm-up: first-call allocations, page cache
        for precision in ("fp32", "bf16"):
            stages, results[precision] = run_once(tmp / "bundle", tmp / precision, precision)
            rows.append([f"in-process, {precision}", f"{stages['load']:.2f}", f"{stages['predict']:.2f}",
                         f"{stages['write']:.2f}", f"**{stages['total']:.2f}**"])
            print(rows[-1], flush=True)
        if not args.no_cli:
            rows.append(["`vcpred predict` (new process, imports included), fp32", "", "", "",
                         f"**{cli_seconds(tmp / 'bundle', tmp / 'cli'):.2f}**"])
        frames = {p: np.array([m["frames"] for m in results[p]["per_model"]]) for p in results}
        per_frame_gap = float(np.abs(frames["fp32"] - frames["bf16"]).max())
        ensemble_gap = abs(results["fp32"]["probability"] - results["bf16"]["probability"])
    body = "\n".join([
        "## Prediction for one patient (`vcpred predict`)\n",
        f"{args.models} x {args.backbone} split models (random weights), 5 frames (k = 2), {size} px, the real "
        "lumbar T2 NIfTI (38 sagittal slices), N4 on; stages in seconds: load = bundle.json + sha256 of every "
        f"file + rebuilding the models; predict = read + N4 + crop + {args.models} x 5 frames + attention rollout; "
        "write = prediction.json + heatmap.png + report.html. After one fp32 warm-up call.\n",
        markdown_table(["run", "load s", "predict s", "write s", "total s"], rows), "",
        f"- `prepare_patient` alone (read + N4 + crop + normalise + resize): {prepare_s:.2f} s",
        f"- largest fp32 vs bf16 difference: {per_frame_gap:.2e} over all model x frame probabilities, "
        f"{ensemble_gap:.2e} in the ensemble probability",
        f"- native bf16 on this CPU (oneDNN): {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; without it, "
        "bf16 autocast is emulated and slower than fp32",
        f"- machine: {machine_line()}",
    ])
    update_section("predict", body)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

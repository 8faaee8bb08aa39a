"""Benchmark `vcpred predict` for one patient: 10 ViT-B/16 split models, 5 frames, the real lumbar T2.

Every time is set beside this machine's measured ceiling: the compute floor is the forward FLOPs of
10 models x 5 frames divided by the 2048^2 matmul rate in that precision. Rows:
- throughput of one network on one patient's 5 frames: vcpred's prediction path (attention
  captured for rollout; bf16 = weights converted once + autocast) beside plain timm eager;
- one patient in-process (bundle loaded once, as in the viewer) and as a new `vcpred predict`
  process (imports, sha256 of every file, rebuilding the models included);
- a linear-probe bundle (10 heads on one frozen backbone): the shared backbone pass against
  one full forward per split model (what predict did before);
- batch prediction of several patients: preparing the next patient ahead against one at a time.
Random weights (timing only).

    .venv/bin/python benchmarks/bench_predict.py [--models 10] [--backbone vit_base_patch16_224]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import forward_flops, machine_line, markdown_table, matmul_ceiling, timed, update_section  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from vcpred import console  # noqa: E402
from vcpred.allocator import keep_freed_memory  # noqa: E402
from vcpred.cohort import Roi  # noqa: E402
from vcpred.explain import find_vit, record_attention  # noqa: E402
from vcpred.imaging import PrepareParams, prepare_patient  # noqa: E402
from vcpred.models import ModelSpec, create_model, get_backbone  # noqa: E402
from vcpred.models.inputs import three_channels  # noqa: E402
from vcpred.models.precision import inference_context, native_bf16, to_bf16_weights  # noqa: E402
from vcpred.predict import load_bundle, make_record, predict_patient, write_patient  # noqa: E402
from vcpred.predict.batch import prepared_ahead, spare_core  # noqa: E402
from vcpred.bundle.export import finalise_bundle, keep_shared_backbone_once  # noqa: E402
from vcpred.predict.outputs import prepare_out  # noqa: E402
from vcpred.predict.predict import backbone_groups  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T2 = ROOT / "tests" / "data" / "mri" / "t2_lumbar.nii.gz"  # copied in, with its MIT licence
BODY = Roi(slice=19, row_min=103, col_min=140, row_max=127, col_max=171)  # as in tests/imaging_support.py
PRECISIONS = ("fp32", "bf16")


def build_bundle(folder: Path, backbone: str, models: int, *, linear_probe: bool = False,
                 keep_once: bool = True) -> Path:
    """A bundle of `models` random split models (seeds 0..); linear_probe: every split has split 0's
    backbone (one frozen pre-trained backbone) and its own head, kept once as export keeps it (not
    with keep_once False: the version-1 layout an earlier vcpred reads)."""
    entries, shared = [], None
    for split in range(models):
        spec = ModelSpec(backbone=backbone, weights="random", method="linear" if linear_probe else "full",
                         input_scale="zscore", seed=split)
        net = create_model(spec).net.eval()
        if linear_probe:
            shared = shared or {k: v.clone() for k, v in net.backbone.state_dict().items()}
            net.backbone.load_state_dict(shared)
        target = folder / f"split-{split:02d}"
        target.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(target / "model.safetensors"))
        (target / "model.json").write_text(json.dumps({"spec": spec.to_dict(), "clinical_features": 0}))
        entries.append({"split": split, "dir": target.name, "run": None, "threshold": 0.5})
    shared = linear_probe and keep_once and keep_shared_backbone_once(folder, [e["dir"] for e in entries])
    meta = {"configuration": f"bench-{backbone}", "kind": "image", "family": "vit" if "vit" in backbone else "cnn",
            "ap": True, "aggregate": "mean", "clinical_columns": [], "shared_backbone": "backbone.safetensors" if shared else None,
            "prepare_params": PrepareParams(size=get_backbone(backbone).input_size, k=2).to_dict(),
            "spec": spec.to_dict(), "splits": entries}
    return finalise_bundle(folder, meta, lambda m: f"# benchmark bundle {m.model_id} (random weights)\n")


def stopwatch(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def record():
    return make_record({"t2": T2}, BODY.slice, BODY.box, {})


def in_process(model_dir: Path, out: Path, precision: str, repeats: int = 2) -> dict:
    """Seconds per stage (best predict of `repeats`, after a warm-up) and the result."""
    bundle, load_s = stopwatch(load_bundle, model_dir, precision=precision)
    predict_patient(bundle, record())  # warm-up: first-call allocations
    best, prediction = min((stopwatch(predict_patient, bundle, record())[::-1] for _ in range(repeats)),
                           key=lambda pair: pair[0])
    _, write_s = stopwatch(lambda: write_patient(prepare_out(out, force=True), prediction))
    return {"load": load_s, "predict": best, "write": write_s, "result": prediction.result, "bundle": bundle}


def new_processes(runs: dict[str, tuple[Path, str, Path | None]], out: Path, rounds: int = 3) -> dict[str, float]:
    """Best of `rounds` wall times of `vcpred predict` in a new process, per run name: (model directory,
    precision, source: another checkout's src/ or None). The runs take turns, round after round, so a
    slower spell of this shared machine falls on all of them alike."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (model_dir, precision, source) in runs.items():
            command = [sys.executable, "-m", "vcpred", "--quiet", "predict", "--model", str(model_dir), "--image-t2",
                       str(T2), "--roi-slice", str(BODY.slice), "--roi-box", ",".join(map(str, BODY.box)), "--out",
                       str(out / name), "--force", "--precision", precision]
            env = {**os.environ, "PYTHONPATH": str(source)} if source else None
            seconds = stopwatch(subprocess.run, command, check=True, env=env)[1]
            best[name] = min(seconds, best.get(name, seconds))
    return best


def commit(checkout: str) -> str:
    """The short git commit of a checkout (what the baseline rows were measured with)."""
    return subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def unshared(bundle):
    """The bundle as predict ran it before backbones were shared: each model its own backbone copy."""
    for split_model in bundle.models[1:]:
        split_model.net.backbone = copy.deepcopy(split_model.net.backbone)
    return bundle


def throughput(backbone: str, frames: torch.Tensor, ceilings: dict) -> list[list]:
    """GFLOP/s of one network on one patient's frames: vcpred's prediction path and plain timm eager."""
    import timm

    net = create_model(ModelSpec(backbone=backbone, weights="random", method="full")).net.eval()
    plain = timm.create_model(backbone, pretrained=False, num_classes=0).eval()
    flops = forward_flops(plain, frames[:1]) * len(frames)
    rows = []
    for precision in PRECISIONS:
        model = to_bf16_weights(copy.deepcopy(net)) if precision == "bf16" else net

        def vcpred_pass(model=model, precision=precision):
            with torch.no_grad(), inference_context(precision), record_attention(find_vit(model)):
                model(frames)

        def timm_pass(precision=precision):
            with torch.no_grad(), inference_context(precision):  # plain fp32 weights: autocast casts them each call
                plain(frames)

        for name, function in (("vcpred (prediction path, attention captured)", vcpred_pass),
                               ("plain timm eager", timm_pass)):
            seconds = timed(function, min_seconds=3.0)
            rate = flops / seconds / 1e9
            rows.append([name, precision, f"{len(frames) / seconds:.1f}", f"{rate:.0f}",
                         f"{100 * rate / ceilings[precision]:.0f}%"])
    return rows


def plain_timm_patient(backbone: str, models: int, frames: torch.Tensor, precision: str) -> float:
    """Seconds for `models` plain timm forwards of the patient's frames (no preprocessing, no rollout)."""
    import timm

    nets = [timm.create_model(backbone, pretrained=False, num_classes=0).eval() for _ in range(models)]
    with torch.no_grad(), inference_context(precision):
        for net in nets[:1]:
            net(frames)
        start = time.perf_counter()
        for net in nets:
            net(frames)
    return time.perf_counter() - start


def batch_rates(model_dir: Path, patients: int) -> dict:
    """Patients per second of a batch: one at a time, and preparing the next patient ahead."""
    bundle = load_bundle(model_dir, precision="bf16" if native_bf16() else "fp32")
    records = [record() for _ in range(patients)]
    predict_patient(bundle, records[0], explain=False)
    start = time.perf_counter()
    for r in records:
        predict_patient(bundle, r, explain=False)
    serial = patients / (time.perf_counter() - start)
    start = time.perf_counter()
    for r, prepared in prepared_ahead(bundle, records, desc="bench", ahead=True):
        predict_patient(bundle, r, explain=False, prepared=prepared)
    return {"serial": serial, "ahead": patients / (time.perf_counter() - start), "precision": bundle.precision,
            "default": "ahead" if spare_core() else "one at a time"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--backbone", default="vit_base_patch16_224")
    parser.add_argument("--patients", type=int, default=6, help="patients in the batch rows")
    parser.add_argument("--baseline", metavar="CHECKOUT", help="an earlier vcpred checkout (git worktree) to time "
                        "the linear probe against, as a new process")
    args = parser.parse_args()
    console.configure(quiet=True)
    keep_freed_memory()  # as every vcpred command does (the in-process rows stand for `vcpred serve`)
    size = get_backbone(args.backbone).input_size
    native = native_bf16()
    ceilings = {p: matmul_ceiling("cpu", p) for p in PRECISIONS}
    prepared = prepare_patient(record(), PrepareParams(size=size, k=2))
    frames = torch.from_numpy(three_channels(prepared.frames))
    prepare_s = min(stopwatch(prepare_patient, record(), PrepareParams(size=size, k=2))[1] for _ in range(3))
    plain = __import__("timm").create_model(args.backbone, pretrained=False, num_classes=0).eval()
    gflop = forward_flops(plain, frames[:1]) / 1e9
    floor = {p: args.models * len(frames) * gflop / ceilings[p] for p in PRECISIONS}
    throughput_rows = throughput(args.backbone, frames, ceilings)
    print(markdown_table(["network", "precision", "images/s", "GFLOP/s", "of ceiling"], throughput_rows), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp = Path(tmp)
        full = build_bundle(tmp / "full", args.backbone, args.models)
        linear = build_bundle(tmp / "linear", args.backbone, args.models, linear_probe=True)
        runs = {f"{kind}-{p}": (folder, p, None) for p in PRECISIONS for kind, folder in (("full", full), ("linear", linear))}
        if args.baseline:  # an earlier vcpred on the same bundles, the linear probe in the layout it reads
            old_layout = build_bundle(tmp / "linear-v1", args.backbone, args.models, linear_probe=True, keep_once=False)
            source = Path(args.baseline) / "src"
            runs.update({f"old-{kind}-{p}": (folder, p, source) for p in PRECISIONS
                         for kind, folder in (("full", full), ("linear", old_layout))})
        os.sync()  # a model directory is written long before it is used: no write-back during the runs
        # New processes first, while this process holds no models (nothing competes for memory or cache).
        walls = new_processes(runs, tmp / "cli")
        cli = {p: walls[f"full-{p}"] for p in PRECISIONS}
        linear_cli = {p: walls[f"linear-{p}"] for p in PRECISIONS}
        baseline = {p: walls[f"old-linear-{p}"] for p in PRECISIONS} if args.baseline else {}
        full_baseline = {p: walls[f"old-full-{p}"] for p in PRECISIONS} if args.baseline else {}
        rows, results = [], {}
        for precision in PRECISIONS:
            run = in_process(full, tmp / precision, precision)
            results[precision] = run["result"]
            rows.append([f"in-process, {precision}", f"{run['load']:.2f}", f"{run['predict']:.2f}",
                         f"{run['write']:.2f}", f"{floor[precision]:.2f}", f"{run['predict'] / floor[precision]:.2f}"])
            print(rows[-1], flush=True)
        for precision in PRECISIONS:
            seconds = plain_timm_patient(args.backbone, args.models, frames, precision)
            rows.append([f"plain timm eager, {args.models} x forward of the 5 frames, {precision}", "", f"{seconds:.2f}",
                         "", f"{floor[precision]:.2f}", f"{seconds / floor[precision]:.2f}"])
        for precision in PRECISIONS:
            rows.append([f"`vcpred predict` as a new process, {precision}: {cli[precision]:.2f} s", "", "", "",
                         f"{floor[precision]:.2f} + 2 s",
                         f"{(cli[precision] - 2) / floor[precision]:.2f} (of the time less 2 s)"])
        for precision, seconds in full_baseline.items():
            rows.append([f"the same with the earlier vcpred of commit {commit(args.baseline)}, {precision}: "
                         f"{seconds:.2f} s", "", "", "", f"{floor[precision]:.2f} + 2 s",
                         f"{(seconds - 2) / floor[precision]:.2f} (of the time less 2 s)"])
        linear_rows = []
        for precision in PRECISIONS:
            shared = in_process(linear, tmp / f"lin-{precision}", precision)
            assert len(backbone_groups(shared["bundle"].models)) == 1
            before = unshared(shared["bundle"])
            predict_patient(before, record())
            old = min(stopwatch(predict_patient, before, record())[1] for _ in range(2))
            linear_rows.append([precision, f"{old:.2f}", f"{shared['predict']:.2f}", f"{old / shared['predict']:.1f} x"])
            print(linear_rows[-1], flush=True)
        batch = batch_rates(linear, args.patients)
        frames_gap = float(np.abs(np.array([m["frames"] for m in results["fp32"]["per_model"]])
                                  - np.array([m["frames"] for m in results["bf16"]["per_model"]])).max())
        ensemble_gap = abs(results["fp32"]["probability"] - results["bf16"]["probability"])
    body = "\n".join([
        "## Prediction for one patient (`vcpred predict`)\n",
        f"`benchmarks/bench_predict.py`: {args.models} x {args.backbone} split models (random weights), "
        f"{len(frames)} frames (k = 2) of {size} px from the real lumbar T2 NIfTI (38 sagittal slices), N4 on. "
        f"Matmul ceiling (2048², this machine): fp32 {ceilings['fp32']:.0f} GFLOP/s, bf16 {ceilings['bf16']:.0f} "
        f"GFLOP/s (native bf16: {native}). One forward: {gflop:.2f} GFLOP per image, so the compute floor of "
        f"{args.models} models x {len(frames)} frames is {floor['fp32']:.2f} s in fp32 and {floor['bf16']:.2f} s in bf16.\n",
        "Throughput of one network on the patient's frames (batch of 5):\n",
        markdown_table(["network", "precision", "images/s", "GFLOP/s", "of ceiling"], throughput_rows), "",
        "One patient: load = bundle.json + sha256 of every file + rebuilding the models; predict = read + N4 + crop "
        f"+ {args.models} x {len(frames)} frames + attention rollout (best of 2 after a warm-up); write = "
        "prediction.json + heatmap.png + report.html. A new process adds Python start-up and the imports (the "
        "sha256 and the patient's preparation run in threads meanwhile) and the first call's warm-up; it is the "
        "best of 3 runs, taken in turns with the other new-process runs (and the --baseline checkout's), before "
        "this process loads any model. The ratio is predict s / floor "
        "in-process and (wall s - 2 s) / floor for a new process (issue 17 asks for at most 1.4 in both).\n",
        markdown_table(["run", "load s", "predict s", "write s", "floor s", "ratio to the floor"], rows), "",
        f"Linear probe ({args.models} heads on one frozen backbone, found equal at load and run once per patient), "
        "in-process predict s against one full forward per split model (as before):\n",
        markdown_table(["precision", "one forward per model s", "shared backbone s", "speed-up"], linear_rows), "",
        "- linear-probe bundle as a new `vcpred predict` process: "
        + ", ".join(f"{linear_cli[p]:.2f} s {p}" for p in PRECISIONS)
        + (f"; with the earlier vcpred of commit {commit(args.baseline)} (its bundle layout, one forward per model): "
           + ", ".join(f"{baseline[p]:.2f} s {p} ({baseline[p] / linear_cli[p]:.1f} x)" for p in PRECISIONS)
           if baseline else ""),
        f"- batch of {args.patients} patients, linear-probe bundle, {batch['precision']}, no heat maps: "
        f"{batch['serial']:.2f} patients/s one at a time, {batch['ahead']:.2f} patients/s preparing the next ahead "
        f"(the default on this machine: {batch['default']}, since a patient is prepared ahead only with a core "
        "free beside torch's threads)",
        f"- `prepare_patient` alone (read + N4 + crop + normalise + resize): {prepare_s:.2f} s",
        f"- largest fp32 vs bf16 difference: {frames_gap:.2e} over all model x frame probabilities, "
        f"{ensemble_gap:.2e} in the ensemble probability (random weights)",
        f"- machine: {machine_line()}",
    ])
    update_section("predict", body)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

"""Model throughput on this machine: inference and training images/s per backbone and method,
fp32 and bf16, as a fraction of the measured matmul ceiling.

Usage: .venv/bin/python benchmarks/bench_models.py [--quick] [--device cpu|cuda]
Rewrites the "models" section of BENCHMARKS.md (or "models-cuda" with --device cuda).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import forward_flops, machine_line, markdown_table, matmul_ceiling, timed, update_section  # noqa: E402

from vcpred.models import ModelSpec, create_model  # noqa: E402
from vcpred.models.finetune import keep_frozen_norms_in_eval  # noqa: E402


def autocast(device: str, precision: str):
    return torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def single_matmul(device: str, dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    start = time.perf_counter()
    a @ b
    return 2 * n ** 3 / (time.perf_counter() - start) / 1e9


def bench_inference(backbone: str, precision: str, device: str, batch: int, seconds: float) -> dict:
    built = create_model(ModelSpec(backbone=backbone, weights="random", method="full"))
    model = built.net.to(device).eval()
    images = torch.rand(batch, 3, 224, 224, device=device)
    flops = forward_flops(model, images[:1])

    def step():
        with torch.inference_mode(), autocast(device, precision):
            model(images)

    per_batch = timed(step, min_seconds=seconds)
    return {"images_per_s": batch / per_batch, "gflop_per_image": flops / 1e9}


def bench_training(backbone: str, method: str, precision: str, device: str, batch: int, seconds: float) -> dict:
    built = create_model(ModelSpec(backbone=backbone, weights="random", method=method))
    model = built.net.to(device)
    images = torch.rand(batch, 3, 224, 224, device=device)
    labels = torch.randint(0, 2, (batch,), device=device).float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        model.train()
        keep_frozen_norms_in_eval(model)
        with autocast(device, precision):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images).float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    per_batch = timed(step, min_seconds=seconds)
    return {"images_per_s": batch / per_batch, "trainable": built.counts()["trainable"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer backbones and shorter timings")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device, batch = args.device, 8
    seconds = 2.0 if args.quick else 6.0
    native_bf16 = torch.cuda.is_bf16_supported() if device == "cuda" else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    # Without native bf16 the CPU emulates it (a 2048² matmul took ~56 s here): one matmul is
    # measured to show it, and the model rows stay fp32 (training's precision "auto" does the same).
    precisions = ["fp32", "bf16"] if native_bf16 else ["fp32"]
    ceilings = {"fp32": matmul_ceiling(device, "fp32"),
                "bf16": matmul_ceiling(device, "bf16") if native_bf16 else single_matmul(device, torch.bfloat16)}
    backbones = ["vit_base_patch16_224", "efficientnet_lite0"] if args.quick else [
        "vit_base_patch16_224", "vit_small_patch16_224", "resnet50", "densenet121", "efficientnet_lite0"]
    rows = []
    for backbone in backbones:
        for precision in precisions:
            r = bench_inference(backbone, precision, device, batch, seconds)
            achieved = r["images_per_s"] * r["gflop_per_image"]
            rows.append([backbone, "inference", precision, f"{r['images_per_s']:.1f}",
                         f"{r['gflop_per_image']:.2f}", f"{achieved:.0f}", f"{achieved / ceilings[precision]:.0%}"])
            print(rows[-1], flush=True)
    train_cases = [("vit_base_patch16_224", m) for m in ("full", "linear", "lora")]
    train_cases += [("efficientnet_lite0", m) for m in ("full", "lora")]
    for backbone, method in train_cases:
        for precision in precisions:
            r = bench_training(backbone, method, precision, device, batch, seconds)
            rows.append([backbone, f"train {method} ({r['trainable']:,} trainable)", precision,
                         f"{r['images_per_s']:.1f}", "", "", ""])
            print(rows[-1], flush=True)
    name = "GPU" if device == "cuda" else "CPU"
    card = torch.cuda.get_device_name() if device == "cuda" else ""
    body = "\n".join([
        f"## Model throughput ({name}{', ' + card if card else ''})", "",
        f"`benchmarks/bench_models.py{' --quick' if args.quick else ''}` — batch {batch}, 224×224, random weights. "
        f"Matmul ceiling (2048², same machine): fp32 {ceilings['fp32']:.0f} GFLOP/s, "
        f"bf16 {ceilings['bf16']:.1f} GFLOP/s ({'native' if native_bf16 else 'emulated: no native bf16 on this CPU, so model rows are fp32 only'}). Training = forward + backward + AdamW step; the flop share "
        "of the ceiling is given for inference (forward FLOPs counted by torch's FlopCounterMode).", "",
        markdown_table(["backbone", "pass", "precision", "images/s", "GFLOP/image", "GFLOP/s", "of ceiling"], rows),
        "", f"Machine: {machine_line()}",
    ])
    update_section("models" if device == "cpu" else "models-cuda", body)


if __name__ == "__main__":
    main()

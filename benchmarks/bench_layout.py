"""CNN training speed by memory layout: contiguous (NCHW) vs channels-last (NHWC), as vcpred's
Trainer uses for CNNs.

Usage: .venv/bin/python benchmarks/bench_layout.py
EfficientNet-Lite0 (random weights, full fine-tuning), batch 32, at the demo's 96 px and the
study's 224 px; forward + backward + AdamW step. Rewrites the "layout" section of BENCHMARKS.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table, update_section  # noqa: E402

from vcpred.models import ModelSpec, create_model  # noqa: E402


def images_per_second(size: int, channels_last: bool, batch: int = 32, seconds: float = 8.0) -> float:
    model = create_model(ModelSpec(backbone="efficientnet_lite0", weights="random", method="full")).net
    images = torch.rand(batch, 3, size, size)
    labels = torch.randint(0, 2, (batch,)).float()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images).float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up: oneDNN picks its kernels on the first call
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return batch * count / (time.perf_counter() - start)


def main() -> None:
    rows = []
    for size in (96, 224):
        nchw, nhwc = images_per_second(size, False), images_per_second(size, True)
        rows.append([f"{size} px", f"{nchw:.1f}", f"{nhwc:.1f}", f"{nhwc / nchw:.2f}x"])
        print(rows[-1], flush=True)
    body = "\n".join([
        "## CNN training by memory layout", "",
        "`benchmarks/bench_layout.py` — EfficientNet-Lite0, full fine-tuning, batch 32, forward + backward + "
        "AdamW step, images/s. vcpred's Trainer trains CNNs channels-last and hands the weights back "
        "contiguous before saving.", "",
        markdown_table(["input", "contiguous (NCHW)", "channels-last (NHWC)", "speed-up"], rows),
        "", f"Machine: {machine_line()}",
    ])
    update_section("layout", body)


if __name__ == "__main__":
    main()

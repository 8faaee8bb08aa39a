"""What a vcpred model is fed, shared by training, prediction and heat maps: the three input
channels made from a prepared patient's sequences, and the reduced-precision context it runs in."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch


def three_channels(frames: np.ndarray) -> np.ndarray:
    """[F, C, H, W] -> float32 [F, 3, H, W]: one sequence repeated, two padded with their mean."""
    frames = np.asarray(frames, dtype=np.float32)
    channels = frames.shape[1]
    if channels == 3:  # a copy when read-only (the store's verified frames): torch takes writable arrays
        return frames if frames.flags.writeable else frames.copy()
    if channels == 1:
        return np.repeat(frames, 3, axis=1)
    if channels == 2:
        return np.concatenate([frames, frames.mean(axis=1, keepdims=True)], axis=1)
    raise ValueError(f"frames with {channels} channels; vcpred models take 1 to 3")


def autocast(device: torch.device, precision: str):
    """No-op for fp32; torch.autocast in bf16 or fp16 otherwise."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

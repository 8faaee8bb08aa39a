"""Nyúl–Udupa histogram standardisation of a model's input frames, inside the model.

Each frame's own intensity landmarks (per channel: the 1st and 99th percentiles, the deciles) are
mapped piecewise-linearly onto standard landmarks fitted on the training patients, so crops from
scanners with other contrast or intensity distributions share one intensity scale. The standard
landmarks are a buffer of the model: saved with its weights, exported in the bundle, and applied by
`VcpredModel.embed` at training, in the frozen-feature cache, at prediction and in heat maps alike.

The percentiles, the landmark averaging and the piecewise-linear map follow TorchIO's
HistogramStandardization (cutoff 1 %/99 %, landmarks at 1, 10, 20, 30, ..., 90, 99 %; the quartiles
it computes are not used by its map); tests/test_standardization.py checks both against TorchIO.
The standard scale (TorchIO's 0-100) is then shifted and scaled so the training frames' mapped
pixels have mean 0 and SD 1, the scale of vcpred's z-scored frames.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn as nn

PERCENTILES = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)
STANDARD_RANGE = (0.0, 100.0)  # TorchIO's: the cutoff percentiles of every training frame map to these
FLAT = 1e-5  # two landmarks of a frame closer than this: that segment maps to a constant (as TorchIO)


def frame_percentiles(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, len(PERCENTILES)], float32, numpy's default (linear) percentiles.

    By sorting, not torch.quantile: that refuses inputs over 16 M values (a batch of 128 frames)."""
    flat = images.float().flatten(2).sort(dim=-1).values
    n = flat.shape[-1]
    position = torch.tensor(PERCENTILES, dtype=torch.float64) / 100 * (n - 1)
    low = position.floor().long()
    high = torch.clamp(low + 1, max=n - 1)
    weight = (position - low).to(flat.dtype).to(flat.device)
    return flat[..., low.to(flat.device)] * (1 - weight) + flat[..., high.to(flat.device)] * weight


def average_mapping(percentiles: torch.Tensor) -> torch.Tensor:
    """Standard landmarks [C, L] from the landmarks [N, C, L] of N training frames: each frame's landmarks
    scaled so its cutoff percentiles span STANDARD_RANGE, averaged (TorchIO's _get_average_mapping)."""
    percentiles = percentiles.double()
    s1, s2 = STANDARD_RANGE
    spread = percentiles[..., -1] - percentiles[..., 0]
    slopes = torch.where(spread > 0, (s2 - s1) / spread, torch.zeros_like(spread))  # [N, C]
    intercepts = (s1 - slopes * percentiles[..., 0]).mean(dim=0)  # [C]
    return (slopes.unsqueeze(-1) * percentiles).mean(dim=0) + intercepts.unsqueeze(-1)


def map_landmarks(images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Frames [B, C, H, W] mapped piecewise-linearly from their own landmarks onto `landmarks` [C, L]
    (TorchIO's _normalize without a mask; beyond the outer landmarks the end segments extend)."""
    b, c, h, w = images.shape
    values = images.float().flatten(2)  # [B, C, HW]
    own = frame_percentiles(images)  # [B, C, L]
    target = landmarks.float().to(values.device).expand(b, c, -1)
    run = own.diff(dim=-1)
    slope = target.diff(dim=-1) / torch.where(run < FLAT, torch.full_like(run, torch.inf), run)
    intercept = target[..., :-1] - slope * own[..., :-1]
    segment = torch.searchsorted(own[..., 1:-1].contiguous(), values.contiguous(), right=True)
    mapped = slope.gather(-1, segment) * values + intercept.gather(-1, segment)
    return mapped.view(b, c, h, w).to(images.dtype)


class HistogramStandardizer(nn.Module):
    """Applies map_landmarks with the standard landmarks in the `landmarks` buffer [C, L]; NaN until
    `fit` (a model that standardises refuses frames before its landmarks are fitted)."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.register_buffer("landmarks", torch.full((channels, len(PERCENTILES)), float("nan")))

    @property
    def fitted(self) -> bool:
        return not bool(torch.isnan(self.landmarks).any())

    def fit(self, percentiles: torch.Tensor, frames: torch.Tensor) -> None:
        """Standard landmarks from the training frames' percentiles [N, C, L] (frame_percentiles), then
        shifted and scaled so `frames` (a sample of the same training frames) map to mean 0, SD 1."""
        standard = average_mapping(percentiles)
        mapped = map_landmarks(frames, standard)
        mean = mapped.double().mean(dim=(0, 2, 3))
        sd = mapped.double().std(dim=(0, 2, 3)).clamp_min(1e-6)
        with torch.no_grad():
            self.landmarks.copy_(((standard - mean[:, None]) / sd[:, None]).float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.fitted:
            raise RuntimeError("histogram standardisation: the landmarks were never fitted on training frames")
        return map_landmarks(images, self.landmarks)

    def signature(self) -> str:
        """A short hash of the landmarks (cache keys: features depend on them)."""
        return hashlib.sha256(self.landmarks.detach().cpu().float().numpy().tobytes()).hexdigest()[:16]

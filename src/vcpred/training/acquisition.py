"""MRI acquisition augmentation (TorchIO): training frames as another scanner might have made them.

A new site differs in how its images were acquired, not in its patients: in-plane resolution, bias
field, contrast (gamma), noise and blur, and a slightly different positioning. Each frame of a training
batch gets, each with its own probability and range: a small affine, a resolution change (down-sampled
to a coarser pixel spacing with antialiasing, then back onto its grid), a blur, a bias field, a gamma
and Gaussian noise. The intensity changes act on the frame rescaled to [0, 1] (a gamma and a
multiplicative field need non-negative intensities); the result is then given back the frame's own
mean and SD, as the per-crop normalisation of `vcpred prepare` would have done to such an image.

Deterministic under a seed: every random draw comes from torch's generator seeded for the call (the
global RNG is restored afterwards). Used only while training (vcpred.training.loop, and the augmented
views of the frozen-feature cache); prediction, evaluation and export never call it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from vcpred.errors import ConfigError

if TYPE_CHECKING:  # torch only when frames are augmented: a training config (and `--help`) loads none
    import torch

MAX_VIEWS = 16


@dataclass(frozen=True)
class AcquisitionAugment:
    """The training config's `training.acquisition` mapping ({} takes every default).

    *_p: the probability that a frame gets that change. Ranges: affine rotation ±degrees, scale
    1 ± scales, shift ± translation_px pixels; resolution: pixel spacing × a factor in
    [1, downsampling]; blur: Gaussian SD up to blur_px pixels; bias field: polynomial coefficients up to
    ±bias_coefficients (TorchIO's); gamma: exp(±log_gamma); noise: SD up to noise_std of the [0, 1]
    range. views: augmented copies of each training frame whose backbone features a frozen-feature
    linear probe trains on beside the original (vcpred.training.augmented_features).
    """

    affine_p: float = 0.5
    degrees: float = 5.0
    scales: float = 0.05
    translation_px: float = 4.0
    resolution_p: float = 0.3
    downsampling: float = 1.6
    blur_p: float = 0.2
    blur_px: float = 1.0
    bias_p: float = 0.5
    bias_coefficients: float = 0.3
    gamma_p: float = 0.5
    log_gamma: float = 0.3
    noise_p: float = 0.5
    noise_std: float = 0.03
    views: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"training.acquisition.{f.name} must be a number, got {value!r}")
            if f.name.endswith("_p") and not 0 <= value <= 1:
                raise ConfigError(f"training.acquisition.{f.name} is a probability (0 to 1), got {value!r}")
            if value < 0:
                raise ConfigError(f"training.acquisition.{f.name} must be 0 or more, got {value!r}")
        if self.downsampling < 1:
            raise ConfigError(f"training.acquisition.downsampling is a factor of at least 1, got {self.downsampling}")
        if not isinstance(self.views, int) or not 1 <= self.views <= MAX_VIEWS:
            raise ConfigError(f"training.acquisition.views must be a whole number from 1 to {MAX_VIEWS}, "
                              f"got {self.views!r}")

    @classmethod
    def from_dict(cls, data: dict | None) -> "AcquisitionAugment":
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"training.acquisition must be a mapping of settings (or {{}} for the defaults), "
                              f"got {data!r}")
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise ConfigError(f"unknown training.acquisition settings {sorted(set(data) - known)}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def transforms(self) -> list:
        """The TorchIO transforms in the order applied (geometry first, noise last)."""
        import torchio as tio  # imported only when training augments

        return [
            tio.RandomAffine(degrees=(0, 0, 0, 0, -self.degrees, self.degrees),  # in-plane: about the third axis
                             scales=(1 - self.scales, 1 + self.scales,
                             1 - self.scales, 1 + self.scales, 1, 1),
                             translation=(-self.translation_px, self.translation_px) * 2 + (0, 0),
                             default_pad_value="minimum", p=self.affine_p),
            _Resolution(self.downsampling, p=self.resolution_p),
            tio.RandomBlur(std=(0, self.blur_px, 0, self.blur_px, 0, 0), p=self.blur_p),
            tio.RandomBiasField(coefficients=self.bias_coefficients, order=3, p=self.bias_p),
            tio.RandomGamma(log_gamma=(-self.log_gamma, self.log_gamma), p=self.gamma_p),
            tio.RandomNoise(std=(0, self.noise_std), p=self.noise_p),
        ]

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """Augmented copies of frames [B, C, H, W] (float32); the same seed gives the same images."""
        import torch
        import torchio as tio

        transform = tio.Compose(self.transforms())
        out = torch.empty_like(images)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i, image in enumerate(images):
                out[i] = _augment_frame(image, transform)
        return out


def _augment_frame(image: torch.Tensor, transform) -> torch.Tensor:
    """One frame [C, H, W]: rescaled to [0, 1], transformed as a 2-D TorchIO image [C, H, W, 1], given
    back its mean and SD. Channels that repeat one sequence are augmented once and repeated."""
    import numpy as np
    import torch
    import torchio as tio

    repeated = all(torch.equal(image[0], c) for c in image[1:])
    source = image[:1] if repeated else image
    low, high = source.amin(), source.amax()
    unit = (source - low) / (high - low) if high > low else torch.zeros_like(source)
    subject = tio.Subject(frame=tio.ScalarImage(tensor=unit.unsqueeze(-1).float(), affine=np.eye(4)))
    moved = transform(subject)["frame"].data[..., 0].clamp_min(0)
    sd = moved.std(dim=(1, 2), keepdim=True)
    mean, target_sd = source.mean(dim=(1, 2), keepdim=True), source.std(dim=(1, 2), keepdim=True)
    restored = (moved - moved.mean(dim=(1, 2), keepdim=True)) / torch.where(sd > 0, sd, 1) * target_sd + mean
    return restored.expand(image.shape[0], -1, -1) if repeated else restored


class _Resolution:
    """A coarser acquisition: smoothed (SD (factor - 1) / 2 pixels) and resampled (TorchIO) to the pixel
    spacing × a factor drawn from [1, downsampling] on both in-plane axes, then linearly back onto the
    frame's grid. (TorchIO's own antialiasing needs 4 voxels on every axis; a frame has one slice.)"""

    def __new__(cls, downsampling: float, p: float):
        import torchio as tio

        class Resolution(tio.transforms.augmentation.RandomTransform):
            def apply_transform(self, subject):
                factor = self.sample_uniform(1.0, downsampling)
                image = subject.get_first_image()
                shape, affine = image.spatial_shape, image.affine.copy()
                smooth = (factor - 1) / 2  # antialiasing SD, in input pixels (scikit-image's rule)
                blurred = tio.Blur(std=(smooth, smooth, 0))(subject) if smooth > 0 else subject
                coarse = tio.Resample((factor, factor, 1.0))(blurred)
                return tio.Resample((shape, affine), image_interpolation="linear")(coarse)

        return Resolution(p=p)

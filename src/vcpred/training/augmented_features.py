"""Acquisition-augmented views for frozen-feature linear probes, and histogram-standardisation fitting.

A linear probe trains on cached backbone features (vcpred.training.features), so augmenting its
batches would change nothing. With `training.acquisition`, each development frame gets `views`
augmented copies (vcpred.training.acquisition, seeded by the training seed, the patient, the frame
and the view: the same copies whatever the split), their backbone features are cached beside the
plain ones (STORE/feature_cache/<key>-views.npz, the key covering the plain cache's key, the
augmentation's settings and the seed), and the probe trains on the original frames' features plus
their views' features. Validation and external patients are scored on their plain features only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from vcpred.imaging import load_prepared
from vcpred.models import BuiltModel
from vcpred.models.inputs import three_channels
from vcpred.models.standardize import PERCENTILES, frame_percentiles
from vcpred.training import features as feature_cache
from vcpred.training.acquisition import AcquisitionAugment
from vcpred.training.data import FrameSet

FIT_SAMPLE_FRAMES = 256  # training frames whose mapped pixels set the standard scale's mean and SD


def view_seed(seed: int, patient_id: str, offset: int, view: int) -> int:
    """The augmentation seed of one view of one frame: independent of the split and of batching."""
    digest = hashlib.sha256(f"{seed}\0{patient_id}\0{offset}\0{view}".encode()).hexdigest()
    return int(digest[:8], 16)


def _augmented_frames(store: Path, frames: FrameSet, augment: AcquisitionAugment, seed: int, view: int):
    """Per patient of `frames`: its wanted frames [n, 3, H, W], augmented frame by frame for `view`."""
    for pid in dict.fromkeys(frames.patient_ids):
        prepared = load_prepared(store, pid)
        wanted = {int(o) for o in frames.offsets[np.asarray(frames.patient_ids) == pid]}
        pixels = torch.from_numpy(three_channels(prepared.frames))
        chosen = [(int(o), pixels[i:i + 1]) for i, o in enumerate(prepared.frame_offsets) if int(o) in wanted]
        yield torch.cat([augment(frame, view_seed(seed, pid, offset, view)) for offset, frame in chosen])


def compute_view_features(built: BuiltModel, store: Path, frames: FrameSet, augment: AcquisitionAugment,
                          seed: int, device: torch.device, batch_size: int = 32) -> torch.Tensor:
    """[views, N, D] backbone features of every view of every sample of `frames` (eval mode)."""
    core = built.core.to(device).eval()
    views = []
    with torch.inference_mode():
        for view in range(augment.views):
            pixels = torch.cat(list(_augmented_frames(store, frames, augment, seed, view)))
            views.append(torch.cat([core.embed(pixels[s:s + batch_size].to(device)).float().cpu()
                                    for s in range(0, len(pixels), batch_size)]))
    return torch.stack(views)


def cached_view_features(built: BuiltModel, store: Path, frames: FrameSet, augment: AcquisitionAugment,
                         seed: int, device: torch.device) -> tuple[torch.Tensor, bool]:
    """compute_view_features through the store's feature cache; (features [views, N, D], was_cached)."""
    folder = Path(store) / "feature_cache"
    settings = json.dumps({"plain": feature_cache.cache_key(built, store, frames.patient_ids),
                           "acquisition": augment.to_dict(), "seed": seed}, sort_keys=True)
    key = hashlib.sha256(settings.encode()).hexdigest()[:24]
    return feature_cache.through_cache(folder / f"{key}-views.npz", frames,
                                       lambda: compute_view_features(built, store, frames, augment, seed, device))


def repeated(frames: FrameSet, times: int) -> FrameSet:
    """The samples of `frames` `times` over, in order (the original, then each view)."""
    index = np.tile(np.arange(len(frames)), times)
    pick = torch.from_numpy(index)
    return FrameSet([frames.patient_ids[i] for i in index], [frames.sets[i] for i in index], frames.offsets[index],
                    None if frames.frames is None else frames.frames[pick], frames.labels[index],
                    None if frames.clinical is None else frames.clinical[pick])


def with_views(train: FrameSet, train_features: torch.Tensor, views: torch.Tensor,
               position: dict[tuple[str, int], int]) -> tuple[FrameSet, torch.Tensor]:
    """The training samples followed by each of their views: (FrameSet, features [(1 + V) * N, D]).
    position: (patient, offset) -> row of `views` [V, M, D]."""
    rows = [position[(p, int(o))] for p, o in zip(train.patient_ids, train.offsets)]
    stacked = torch.cat([train_features, *(view[rows] for view in views)])
    return repeated(train, 1 + len(views)), stacked


def fit_standardization(built: BuiltModel, store: Path, patient_ids: list[str]) -> dict:
    """Fit the model's histogram standardisation on these (training) patients' frames; what to record."""
    standardizer = built.core.standardizer
    pixels = torch.from_numpy(np.concatenate([three_channels(load_prepared(store, pid).frames)
                                              for pid in dict.fromkeys(patient_ids)]))
    percentiles = torch.cat([frame_percentiles(pixels[s:s + 256]) for s in range(0, len(pixels), 256)])
    sample = pixels[torch.linspace(0, len(pixels) - 1, min(FIT_SAMPLE_FRAMES, len(pixels))).long()]
    standardizer.fit(percentiles, sample)
    return {"method": "histogram (Nyúl–Udupa)", "fitted_on": "the training patients of this split",
            "patients": len(set(patient_ids)), "frames": len(pixels), "percentiles": list(PERCENTILES),
            "landmarks": [[round(float(v), 6) for v in row] for row in standardizer.landmarks.tolist()]}

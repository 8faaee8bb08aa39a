"""Frozen-feature cache: backbone features of every frame, computed once per store and backbone.

A linear probe trains only the head, so the frozen backbone's features of every frame (without
augmentation, as linear probing is usually done) are computed once and reused across all splits
and head configurations. The cache lives in STORE/feature_cache/ and its key covers the backbone,
the weights' sha256, the input scaling and the sha256 of each patient's prepared file (checked
against the file's bytes, so a damaged file is named, never hidden behind a cache hit). Each cache
file's own sha256 is recorded beside it (KEY.sha256) and checked on every read: a truncated or altered
file is computed again, with a warning, never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from vcpred import console
from vcpred.hashing import atomic_write, sha256_file
from vcpred.imaging import load_prepared
from vcpred.imaging.store import verified_sha256
from vcpred.models import BuiltModel
from vcpred.models.inputs import three_channels
from vcpred.training.data import FrameSet


def cache_key(built: BuiltModel, store: Path, patient_ids: list[str]) -> str:
    parts = [built.spec.backbone, built.weights.name, str(built.weights.sha256), built.spec.input_scale,
             str(built.spec.seed if built.weights.name == "random" else "")]
    standardizer = getattr(built.core, "standardizer", None)
    if standardizer is not None:  # features of standardised frames depend on the run's landmarks
        parts.append(f"histogram-standardization:{standardizer.signature()}")
    for pid in sorted(set(patient_ids)):
        parts.append(f"{pid}:{verified_sha256(store, pid)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def compute_features(built: BuiltModel, store: Path, frames: FrameSet, device: torch.device,
                     batch_size: int = 32) -> torch.Tensor:
    """[N, D] float32 backbone features of every sample, eval mode, no augmentation.

    Reads patients' frames until a batch is full, so the whole cohort's pixels never sit in memory
    and the network still sees full batches (one patient's 5 frames at a time: 20 s instead of 13-17 s
    for the demo's 1225 frames on one core).
    """
    core = built.core.to(device).eval()
    out: list[torch.Tensor] = []
    waiting: list[np.ndarray] = []
    count = 0  # frames waiting

    def embed(pending: list[np.ndarray]) -> None:
        pixels = torch.from_numpy(np.concatenate(pending))
        for start in range(0, len(pixels), batch_size):
            out.append(core.embed(pixels[start:start + batch_size].to(device)).float().cpu())

    with torch.inference_mode():
        for pid in dict.fromkeys(frames.patient_ids):
            mask = np.asarray(frames.patient_ids) == pid
            prepared = load_prepared(store, pid)
            wanted = {int(o) for o in frames.offsets[mask]}
            keep = np.array([int(o) in wanted for o in prepared.frame_offsets])
            waiting.append(three_channels(prepared.frames[keep]))
            count += len(waiting[-1])
            if count >= batch_size:
                embed(waiting)
                waiting, count = [], 0
        if waiting:
            embed(waiting)
    return torch.cat(out) if out else torch.zeros(0)


@contextlib.contextmanager
def exclusive(lock: Path):
    """One process at a time (parallel split runs would otherwise all compute the same features)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _record_path(path: Path) -> Path:
    """The sha256 of a cache file's bytes, written beside it after it (as index.json does for the store)."""
    return path.with_suffix(".sha256")


def _read_cached(path: Path, index: str) -> tuple[torch.Tensor | None, str | None]:
    """(features, None) for a verified cache file of this index; (None, why) when the file exists but
    fails the check; (None, None) when there is none (or it is another index's)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        recorded = _record_path(path).read_text().strip()
    except FileNotFoundError:
        return None, "it has no recorded sha256 (an earlier vcpred wrote it, or its writer stopped halfway)"
    if hashlib.sha256(data).hexdigest() != recorded:
        return None, "its sha256 differs from the one recorded when it was written (truncated or altered)"
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        if str(arrays["index"]) != index:
            return None, None
        return torch.from_numpy(arrays["features"]), None


def cached_features(built: BuiltModel, store: Path, frames: FrameSet, device: torch.device) -> tuple[torch.Tensor, bool]:
    """Features for every sample of `frames` (patients grouped, offsets ascending); (features, was_cached)."""
    key = cache_key(built, store, frames.patient_ids)
    return through_cache(Path(store) / "feature_cache" / f"{key}.npz", frames,
                         lambda: compute_features(built, store, frames, device))


def through_cache(path: Path, frames: FrameSet, compute) -> tuple[torch.Tensor, bool]:
    """The features cached at path for these samples, verified against their recorded sha256; else
    compute() written there with its sha256 (under a lock beside it). (features, was_cached)."""
    index = json.dumps([frames.patient_ids, frames.offsets.tolist()])
    features, _ = _read_cached(path, index)
    if features is not None:
        return features, True
    with exclusive(path.with_suffix(".lock")):
        # another process may have written it while we waited; only now is a failed check the file's own
        features, damaged = _read_cached(path, index)
        if features is not None:
            return features, True
        if damaged:
            console.warn(f"feature cache {path}: {damaged}; computing its features again")
        features = compute()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as stream:  # a file object keeps numpy from appending ".npz"
                np.savez(stream, features=features.numpy(), index=np.asarray(index))

        _record_path(path).unlink(missing_ok=True)  # file and record are replaced one after the other
        atomic_write(path, write)
        digest = sha256_file(path)
        atomic_write(_record_path(path), lambda tmp: tmp.write_text(digest + "\n"))
    return features, False

"""The frozen-feature cache (STORE/feature_cache/) is verified against the sha256 recorded when it was
written (issue 27): a truncated file stopped training with a zip error, an altered one was used silently.
What fails the check is computed again, with a one-line warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vcpred.cohort import load_manifest
from vcpred.models import ModelSpec, create_model
from vcpred.training.data import load_frames
from vcpred.training.features import cached_features


@pytest.fixture
def probe(tiny, request):
    """(store, built model, frames) with a cache entry of its own (a seed per test)."""
    manifest, store, _ = tiny
    records = load_manifest(manifest).records[:4]
    seed = 100 + len(request.node.name)
    built = create_model(ModelSpec(backbone="resnet_test", weights="random", method="linear", seed=seed))
    frames = load_frames(store, records, ["x"] * 4, main_only=False, preprocessor=None, pixels=False)
    return store, built, frames


def _cache_file(store, before: set):
    [path] = set((store / "feature_cache").glob("*.npz")) - before
    return path


def _features(probe):
    store, built, frames = probe
    return cached_features(built, store, frames, torch.device("cpu"))


def _damage_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "feature cache" in r.getMessage()]


def test_a_truncated_cache_file_is_computed_again_with_a_warning(probe, caplog):
    store = probe[0]
    before = set((store / "feature_cache").glob("*.npz"))
    first, hit = _features(probe)
    path = _cache_file(store, before)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with caplog.at_level(logging.WARNING):
        again, hit = _features(probe)

    assert not hit and torch.equal(again, first)
    [warning] = _damage_warnings(caplog)
    assert path.name in warning and "\n" not in warning and "computing" in warning
    assert _features(probe)[1]  # the file written again is read, verified, from then on


def test_altered_features_are_never_used(probe, caplog):
    store = probe[0]
    before = set((store / "feature_cache").glob("*.npz"))
    first, _ = _features(probe)
    path = _cache_file(store, before)
    with np.load(path) as data:
        features, index = data["features"], data["index"]
    with open(path, "wb") as stream:  # a well-formed file whose features are not the backbone's
        np.savez(stream, features=features + 1, index=index)

    with caplog.at_level(logging.WARNING):
        again, hit = _features(probe)

    assert not hit and torch.equal(again, first)
    assert len(_damage_warnings(caplog)) == 1


def test_a_cache_file_without_its_record_is_computed_again(probe, caplog):
    # written by an earlier vcpred, or the process stopped between the file and its record
    store = probe[0]
    before = set((store / "feature_cache").glob("*"))
    first, _ = _features(probe)
    [record] = [p for p in set((store / "feature_cache").glob("*")) - before if p.suffix == ".sha256"]
    record.unlink()

    with caplog.at_level(logging.WARNING):
        again, hit = _features(probe)

    assert not hit and torch.equal(again, first) and record.is_file()
    assert len(_damage_warnings(caplog)) == 1

"""MRI acquisition augmentation (TorchIO): configured, recorded, seeded, training only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from vcpred.errors import ConfigError
from vcpred.models import ModelSpec
from vcpred.training import TrainConfig, TrainingParams, train_run
from vcpred.training.acquisition import AcquisitionAugment
from vcpred.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("weights_home")
EVERY_CHANGE = dict(affine_p=1, resolution_p=1, blur_p=1, bias_p=1, gamma_p=1, noise_p=1)
CHEAP = dict(affine_p=0, resolution_p=0, blur_p=0, bias_p=0, gamma_p=1, noise_p=1)  # the run tests: fast changes


def frames(seed: int = 0, channels: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    one = torch.randn(4, 1, 32, 32, generator=generator)
    one[:, :, 8:24, 8:24] += 2
    return one.expand(-1, channels, -1, -1).contiguous() if channels == 3 else torch.randn(4, channels, 32, 32)


def test_the_same_seed_gives_the_same_images_and_the_global_rng_is_left_alone():
    augment = AcquisitionAugment(**EVERY_CHANGE)
    images = frames()
    torch.manual_seed(123)
    first = augment(images, seed=7)
    after = torch.rand(1)
    torch.manual_seed(123)
    again = augment(images, seed=7)
    assert torch.equal(first, again) and torch.equal(torch.rand(1), after)
    assert not torch.allclose(first, augment(images, seed=8))
    assert (first - images).abs().mean() > 0.05  # it changes the frames ...
    np.testing.assert_allclose(first.mean(dim=(2, 3)), images.mean(dim=(2, 3)), atol=1e-4)  # ... not their scale
    np.testing.assert_allclose(first.std(dim=(2, 3)), images.std(dim=(2, 3)), rtol=1e-3)
    assert torch.equal(first[:, 0], first[:, 2])  # one sequence repeated stays one sequence


def test_probabilities_zero_change_nothing_but_the_rescaling_round_trip():
    augment = AcquisitionAugment(**{k: 0 for k in EVERY_CHANGE})
    images = frames()
    np.testing.assert_allclose(augment(images, seed=1), images, atol=1e-5)


@pytest.mark.parametrize("settings,message", [
    ({"gamma_p": 1.5}, "probability"), ({"noise_std": -1}, "0 or more"), ({"downsampling": 0.5}, "at least 1"),
    ({"views": 0}, "views"), ({"bias": 1}, "unknown training.acquisition settings"), ({"blur_px": "x"}, "number"),
])
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainingParams(acquisition=settings)


def test_configs_without_acquisition_or_standardization_keep_their_recorded_form(tiny):
    """Runs trained before these settings existed keep their configuration hash (not stale)."""
    manifest, store, splits = tiny
    plain = TrainConfig("x", manifest, store, splits, ModelSpec(), TrainingParams()).to_dict()
    assert "acquisition" not in plain["training"] and "standardize" not in plain["model"]
    on = TrainConfig("x", manifest, store, splits, ModelSpec(standardize="histogram"),
                     TrainingParams(acquisition={"gamma_p": 0.2})).to_dict()
    assert on["training"]["acquisition"] == {**AcquisitionAugment().to_dict(), "gamma_p": 0.2}
    assert TrainConfig.from_dict(on).to_dict() == on


def config(tiny, method: str, **training) -> TrainConfig:
    manifest, store, splits = tiny
    params = TrainingParams(**{"epochs": 1, "batch_size": 8, "lr": 1e-3, "augment": False, "precision": "fp32",
                               **training})
    return TrainConfig("acq", manifest, store, splits, ModelSpec(backbone="resnet_test", weights="random",
                                                                   method=method), params)


def test_training_batches_are_augmented_and_scoring_never_is(tiny, tmp_path, monkeypatch):
    calls = []
    real = AcquisitionAugment.__call__

    def counted(self, images, seed):
        calls.append(len(images))
        return real(self, images, seed)

    monkeypatch.setattr(AcquisitionAugment, "__call__", counted)
    cfg = config(tiny, "full", acquisition=CHEAP)
    run = train_run(cfg, 0, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert sum(calls) == metrics["samples_seen"] > 0  # every training sample, once per epoch
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["config"]["training"]["acquisition"]["gamma_p"] == 1
    assert recorded["acquisition_augmentation"]["applied_to"] == "training batches"
    assert recorded["acquisition_augmentation"]["library"].startswith("torchio ")

    def refuse(self, images, seed):
        raise AssertionError("acquisition augmentation at prediction")

    monkeypatch.setattr(AcquisitionAugment, "__call__", refuse)
    from vcpred.models import load_model
    from test_training import reload_and_predict
    reloaded = reload_and_predict(run, cfg)  # Trainer.predict with the augmenting config: no augmentation
    table = pd.read_csv(run / "predictions.csv").merge(reloaded, on=["patient_id", "frame_offset"])
    np.testing.assert_allclose(table["probability"], table["reloaded"], atol=1e-6)
    assert isinstance(Trainer(load_model(run / "model"), cfg.training, torch.device("cpu"), "fp32").acquisition,
                      AcquisitionAugment)


def test_a_linear_probe_trains_on_cached_augmented_views(tiny, tmp_path):
    cfg = config(tiny, "linear", acquisition={**CHEAP, "views": 2})
    first = train_run(cfg, 0, tmp_path / "a")
    second = train_run(cfg, 1, tmp_path / "b")
    plain = train_run(config(tiny, "linear"), 0, tmp_path / "plain")
    seen = {name: json.loads((run / "metrics.json").read_text()) for name, run in
            (("first", first), ("second", second), ("plain", plain))}
    assert seen["first"]["samples_seen"] == 3 * seen["plain"]["samples_seen"]  # the original + 2 views
    assert [seen["first"]["acquisition_views_cache_hit"], seen["second"]["acquisition_views_cache_hit"]] == [False, True]
    assert "acquisition_views_cache_hit" not in seen["plain"]
    recorded = yaml.safe_load((first / "config.yaml").read_text())["acquisition_augmentation"]
    assert recorded["applied_to"] == "frozen-feature views" and recorded["views"] == 2
    scored = [pd.read_csv(run / "predictions.csv") for run in (first, plain)]
    assert len(scored[0]) == len(scored[1])  # validation and external: their plain frames only


def test_the_reports_setup_table_names_acquisition_augmentation_and_standardization():
    import types

    from vcpred.report.setup import _training_cells

    def cells(method: str, standardize: str = "none", **training):
        run = types.SimpleNamespace(model=ModelSpec(method=method, standardize=standardize),
                                    training=TrainingParams(**training), precision="fp32")
        return _training_cells(run)[1]

    assert cells("full") == "yes"
    assert cells("full", acquisition={}) == "yes; acquisition (TorchIO)"
    assert cells("linear", acquisition={"views": 3}) == "n/a (frozen-feature cache); acquisition (TorchIO, 3 views per frame)"
    assert cells("full", "histogram", augment=False) == "no; histogram standardisation fitted on training patients"

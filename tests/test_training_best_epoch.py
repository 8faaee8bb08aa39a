"""The saved model is the best epoch's, and every score is fp32 whatever the training precision."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from test_training import make_config, reload_and_predict
from vcpred.cohort import load_manifest, load_splits
from vcpred.models import ClinicalPreprocessor, create_model, load_model
from vcpred.models.factory import trained_state
from vcpred.training import loop, train_run
from vcpred.training.data import load_frames
from vcpred.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("weights_home")


def test_trained_state_is_a_copy_not_a_view_of_the_live_weights():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 1))
    net.to(memory_format=torch.channels_last)
    snapshot = trained_state(net)
    with torch.no_grad():
        for tensor in list(net.parameters()) + list(net.buffers()):
            tensor.add_(1)
    for name, value in net.state_dict().items():
        assert not torch.equal(snapshot[name], value), name
        assert snapshot[name].is_contiguous()


def test_fit_loads_back_the_best_epoch_exactly(tiny, monkeypatch):
    """Scripted validation AUCs put the best at epoch 1 of 4; the weights after fit are epoch 1's."""
    config = make_config(tiny, backbone="efficientnet_test", method="full",
                         training={"epochs": 4, "patience": 4, "lr": 1e-2})
    built = create_model(config.model)
    frames = load_frames(config.store, load_manifest(config.manifest).subset("development")[:12],
                         ["train"] * 12, main_only=True, preprocessor=None)
    scripted = iter([0.6, 0.9, 0.7, 0.8])
    monkeypatch.setattr(loop, "patient_auc", lambda *_: next(scripted))
    trainer = Trainer(built, config.training, torch.device("cpu"), "fp32")
    after_epoch, real_epoch = [], trainer._epoch

    def recording_epoch(*args):
        loss = real_epoch(*args)
        after_epoch.append({k: v.clone() for k, v in trained_state(built.net).items()})
        return loss

    monkeypatch.setattr(trainer, "_epoch", recording_epoch)
    result = trainer.fit(frames, frames.frames, frames, frames.frames)
    assert (result.best_epoch, result.best_val_auc, len(after_epoch)) == (1, 0.9, 4)
    final = trained_state(built.net)
    assert all(torch.equal(final[k], after_epoch[1][k]) for k in final)
    assert any(not torch.equal(final[k], after_epoch[3][k]) for k in final)


def validation_auc_of_saved_model(run, config) -> float:
    """best_val_auc recomputed the way training computes it, from the saved model alone."""
    cohort = load_manifest(config.manifest)
    _, val_ids = load_splits(config.splits, cohort)[0]
    records = [cohort[p] for p in val_ids]
    preprocessor = None
    if config.model.clinical_columns:
        saved = json.loads((run / "model" / "clinical.json").read_text())["preprocessor"]
        preprocessor = ClinicalPreprocessor.from_dict(saved)
    frames = load_frames(config.store, records, ["validation"] * len(records),
                         main_only=config.training.frames == "main", preprocessor=preprocessor)
    trainer = Trainer(load_model(run / "model"), config.training, torch.device("cpu"), "fp32")
    return loop.patient_auc(frames, trainer.predict(frames.frames, frames.clinical))


CASES = {  # long enough, with a high enough learning rate, that validation AUC goes down and up
    "linear": dict(backbone="resnet_test", method="linear", training={"lr": 3e-2}),
    "full": dict(backbone="efficientnet_test", method="full", training={"lr": 1e-2, "frames": "main"}),
    "lora": dict(backbone="resnet_test", method="lora", clinical_columns=["sex"], training={"lr": 1e-2}),
    "vit": dict(backbone="vit_tiny_test", method="full", training={"lr": 3e-3}),
}


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    """A tiny cohort whose signal is weak enough that validation AUC moves between epochs."""
    from tiny_store import build_tiny_cohort
    return build_tiny_cohort(tmp_path_factory.mktemp("hard"), n_development=45, noise=NOISE)


NOISE = 4.0


@pytest.mark.slow  # bf16 is emulated, far slower, on a CPU without native bf16
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_saved_model_reproduces_best_val_auc(hard, tmp_path, precision):
    """For linear, full, LoRA and ViT: the saved model's validation AUC is metrics.json's best_val_auc."""
    not_last = []
    for name, case in CASES.items():
        case = {**case, "training": {"epochs": 6, "patience": 6, "augment": False, **case["training"],
                                     "precision": precision}}
        config = make_config(hard, **case)
        run = train_run(config, 0, tmp_path / name)
        metrics = json.loads((run / "metrics.json").read_text())
        assert validation_auc_of_saved_model(run, config) == pytest.approx(metrics["best_val_auc"], abs=1e-6), name
        not_last.append(metrics["best_epoch"] < len(metrics["history"]) - 1)
    assert any(not_last)  # at least one run whose last epoch was not its best: the case that went wrong


@pytest.mark.parametrize("backbone", ["resnet_test", "vit_tiny_test"])
def test_bf16_training_writes_fp32_scores(tiny, tmp_path, backbone):
    """predictions.csv equals a fp32 reload to 1e-5 after bf16 training; the precision is recorded."""
    import yaml

    config = make_config(tiny, backbone=backbone, method="full", training={"precision": "bf16", "epochs": 2})
    run = train_run(config, 0, tmp_path / "run")
    table = pd.read_csv(run / "predictions.csv").merge(reload_and_predict(run, config),
                                                       on=["patient_id", "frame_offset"])
    assert np.abs(table["probability"] - table["reloaded"]).max() <= 1e-5
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["precision"] == "bf16" and saved["scoring_precision"] == "fp32"


@pytest.mark.parametrize("method", ["full", "linear", "lora"])
def test_output_layer_starts_at_the_training_prevalence(method):
    """Short fine-tuning barely moves a bias (AdamW steps of about lr): it must start at logit(prevalence)."""
    from vcpred.models import ModelSpec

    spec = ModelSpec(backbone="resnet_test", weights="random", method=method,
                     clinical_columns=["age"] if method == "lora" else [])
    built = create_model(spec, clinical_features=2 if method == "lora" else 0)
    loop.start_at_prevalence(built.net, 0.25)
    trained = [p for name, p in built.net.named_parameters() if p.requires_grad and name.endswith("1.bias")
               and "head" in name]
    assert trained and all(float(p.detach()) == pytest.approx(np.log(0.25 / 0.75)) for p in trained)


def test_training_is_unweighted_so_probabilities_match_the_prevalence(tiny, monkeypatch):
    """A linear probe trained to convergence: mean predicted probability on its training frames is the
    training prevalence (1/3 here); class weighting would pull it towards 0.5."""
    epochs = iter(range(100))
    monkeypatch.setattr(loop, "patient_auc", lambda *_: next(epochs))  # the last epoch is the best
    config = make_config(tiny, backbone="resnet_test", method="linear",
                         training={"epochs": 30, "patience": 30, "lr": 3e-2, "augment": False})
    built = create_model(config.model)
    records = load_manifest(config.manifest).subset("development")
    frames = load_frames(config.store, records, ["train"] * len(records), main_only=False, preprocessor=None)
    trainer = Trainer(built, config.training, torch.device("cpu"), "fp32")
    trainer.fit(frames, frames.frames, frames, frames.frames)
    prevalence = float(np.mean(frames.labels))
    assert prevalence == pytest.approx(1 / 3, abs=0.02)
    assert float(np.mean(trainer.predict(frames.frames, None))) == pytest.approx(prevalence, abs=0.03)


def test_clinical_baseline_is_unweighted():
    from vcpred.models import ClinicalLogistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (rng.random(400) < 1 / (1 + np.exp(-(x[:, 0] - 2.0)))).astype(int)  # prevalence about 0.15
    model = ClinicalLogistic.fit(x, y)
    assert float(model.predict_proba(x).mean()) == pytest.approx(y.mean(), abs=0.01)

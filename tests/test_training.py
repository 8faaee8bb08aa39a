from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import siblings, snapshot
from vcpred.cli import main
from vcpred.cohort import load_manifest, load_splits
from vcpred.errors import ConfigError, VcpredError
from vcpred.models import ModelSpec, load_model
from vcpred.runs import PREDICTION_COLUMNS
from vcpred.training import TrainConfig, TrainingParams, load_config, train_run
from vcpred.training.config import TrainingParams
from vcpred.training.data import load_frames
from vcpred.training.loop import Trainer



pytestmark = pytest.mark.usefixtures("weights_home")


def make_config(tiny, **model) -> TrainConfig:
    manifest, store, splits = tiny
    training = model.pop("training", {})
    params = TrainingParams(**{"epochs": 1, "batch_size": 8, "lr": 1e-3, "augment": True, **training})
    spec = ModelSpec(**{"weights": "random", **model})
    return TrainConfig("test", manifest, store, splits, spec, params)


def reload_and_predict(run: Path, config: TrainConfig) -> pd.DataFrame:
    """Reload the saved model and score the same patients the run scored."""
    table = pd.read_csv(run / "predictions.csv")
    cohort = load_manifest(config.manifest)
    built = load_model(run / "model")
    records = [cohort[p] for p in dict.fromkeys(table["patient_id"])]
    preprocessor = None
    if config.model.clinical_columns:
        from vcpred.models import ClinicalPreprocessor
        preprocessor = ClinicalPreprocessor.from_dict(json.loads((run / "model" / "clinical.json").read_text())["preprocessor"])
    frames = load_frames(config.store, records, ["x"] * len(records), main_only=False, preprocessor=preprocessor)
    probabilities = Trainer(built, config.training, torch.device("cpu"), "fp32").predict(frames.frames, frames.clinical)
    return pd.DataFrame({"patient_id": frames.patient_ids, "frame_offset": frames.offsets, "reloaded": probabilities})


# test_models.py checks every backbone x method saves and reloads; here the run dir is what is under
# test: each method once (on a CNN), each backbone family once (full), LoRA on a ViT's attention.
RUN_COMBINATIONS = [("resnet_test", method) for method in ("full", "linear", "lora", "partial")] + [
    ("vit_tiny_test", "full"), ("vit_tiny_test", "lora"), ("densenet_test", "full"), ("efficientnet_test", "full")]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # both, whatever `auto` would pick on this CPU
@pytest.mark.parametrize(("backbone", "method"), RUN_COMBINATIONS)
def test_each_method_and_backbone_trains_one_epoch_and_reloads(tiny, tmp_path, backbone, method, precision):
    config = make_config(tiny, backbone=backbone, method=method, training={"precision": precision},
                         clinical_columns=["age", "sex"] if method == "lora" else [])
    run = train_run(config, 0, tmp_path / "run")
    table = pd.read_csv(run / "predictions.csv")
    assert list(table.columns) == PREDICTION_COLUMNS
    merged = table.merge(reload_and_predict(run, config), on=["patient_id", "frame_offset"])
    assert len(merged) == len(table)
    assert np.allclose(merged["probability"], merged["reloaded"], atol=1e-5)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["status"] == "done" and saved["split"] == 0 and len(saved["splits_sha256"]) == 64
    assert saved["environment"]["packages"]["torch"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["parameters"]["trainable"] <= metrics["parameters"]["total"]


def test_cnn_trains_in_channels_last_and_hands_back_contiguous_weights(tiny):
    """NHWC from fit to the last predict (speed on CPU); saved tensors must be contiguous for safetensors."""
    from vcpred.models import create_model

    config = make_config(tiny, backbone="efficientnet_test", method="full")
    built = create_model(config.model)
    trainer = Trainer(built, config.training, torch.device("cpu"), "fp32")
    frames = load_frames(config.store, load_manifest(config.manifest).subset("development")[:8], ["train"] * 8,
                         main_only=True, preprocessor=None)
    layouts = []
    hook = built.net.register_forward_pre_hook(
        lambda _, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    trainer.fit(frames, frames.frames, frames, frames.frames)
    scored = trainer.predict(frames.frames, None)
    hook.remove()
    assert trainer.channels_last and layouts and all(layouts)  # training, validation and scoring
    trainer.contiguous()
    assert all(p.is_contiguous() for p in built.net.parameters())
    np.testing.assert_allclose(trainer.predict(frames.frames, None), scored, atol=1e-5)  # the same model
    vit = Trainer(create_model(make_config(tiny, backbone="vit_tiny_test", method="full").model),
                  config.training, torch.device("cpu"), "fp32")
    assert not vit.channels_last


def test_predictions_hold_validation_and_external_only(tiny, tmp_path):
    config = make_config(tiny, backbone="resnet_test", method="linear")
    run = train_run(config, 1, tmp_path / "run")
    table = pd.read_csv(run / "predictions.csv")
    cohort = load_manifest(config.manifest)
    train_ids, val_ids = load_splits(config.splits, cohort)[1]
    assert set(table.loc[table["set"] == "validation", "patient_id"]) == set(val_ids)
    assert set(table.loc[table["set"] == "external", "patient_id"]) == set(cohort.ids("external"))
    assert not set(table["patient_id"]) & set(train_ids)
    assert sorted(table["frame_offset"].unique()) == [-1, 0, 1]
    assert table["split"].eq(1).all() and table["probability"].between(0, 1).all()


def test_a_model_learns_the_planted_signal(tiny, tmp_path):
    config = make_config(tiny, backbone="resnet_test", method="full",
                         training={"epochs": 6, "lr": 3e-3, "patience": 6, "augment": False})
    run = train_run(config, 0, tmp_path / "run")
    table = pd.read_csv(run / "predictions.csv")
    external = table[table["set"] == "external"].groupby("patient_id").agg(y=("label", "first"), p=("probability", "mean"))
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(external["y"], external["p"]) >= 0.8
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_linear_probe_reuses_the_feature_cache_across_splits(tiny, tmp_path):
    first = train_run(make_config(tiny, backbone="vit_tiny_test", method="linear", seed=5), 0, tmp_path / "a")
    second = train_run(make_config(tiny, backbone="vit_tiny_test", method="linear", seed=5), 1, tmp_path / "b")
    hits = [json.loads((run / "metrics.json").read_text())["feature_cache_hit"] for run in (first, second)]
    assert hits == [False, True]


def test_clinical_only_baseline_fits_on_training_patients_only(tiny, tmp_path):
    config = make_config(tiny, image=False, clinical_columns=["age", "sex"])
    run = train_run(config, 0, tmp_path / "run")
    saved = json.loads((run / "model" / "clinical.json").read_text())
    age = saved["preprocessor"]["columns"][0]
    cohort = load_manifest(config.manifest)
    train_ids, _ = load_splits(config.splits, cohort)[0]
    train_ages = [cohort[p].clinical["age"] for p in train_ids if cohort[p].clinical["age"] is not None]
    assert age["mean"] == pytest.approx(np.mean(train_ages))
    table = pd.read_csv(run / "predictions.csv")
    assert table["frame_offset"].eq(0).all() and len(table) == table["patient_id"].nunique()


def test_run_dirs_are_never_clobbered(tiny, tmp_path):
    config = make_config(tiny, backbone="resnet_test", method="linear")
    run = train_run(config, 0, tmp_path / "run")
    with pytest.raises(VcpredError, match="finished run"):
        train_run(config, 0, run)
    train_run(config, 0, run, force=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(VcpredError, match="not a vcpred run dir"):
        train_run(config, 0, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_train_cli_and_config_errors(tiny, tmp_path, capsys):
    manifest, store, splits = tiny
    config = {"configuration": "cli", "manifest": str(manifest), "store": str(store), "splits": str(splits),
              "model": {"backbone": "resnet_test", "weights": "random", "method": "linear"},
              "training": {"epochs": 1, "batch_size": 8}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--quiet", "train", str(path), "--split", "2", "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "predictions.csv").is_file()
    assert main(["train", str(path), "--split", "7", "--out", str(tmp_path / "r7")]) == 2
    assert "split 7 does not exist" in capsys.readouterr().err
    config["training"]["epoch"] = 3
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="unknown training settings"):
        load_config(path)


def test_cached_features_equal_the_backbone_on_the_frames(tiny):
    from vcpred.models import create_model
    from vcpred.training.features import cached_features

    manifest, store, _ = tiny
    cohort = load_manifest(manifest)
    records = cohort.records[:5]
    built = create_model(ModelSpec(backbone="resnet_test", weights="random", method="linear", seed=9,
                                   input_scale="zscore"))
    index_only = load_frames(store, records, ["x"] * 5, main_only=False, preprocessor=None, pixels=False)
    assert index_only.frames is None
    features, hit = cached_features(built, store, index_only, torch.device("cpu"))
    with_pixels = load_frames(store, records, ["x"] * 5, main_only=False, preprocessor=None)
    with torch.no_grad():
        direct = built.core.eval().embed(with_pixels.frames)
    assert not hit and torch.allclose(features, direct, atol=1e-5)
    again, hit = cached_features(built, store, index_only, torch.device("cpu"))
    assert hit and torch.equal(again, features)


def test_parallel_runs_compute_the_features_once(tiny, monkeypatch):
    """Two split runs missing the cache at the same moment: one computes, the other waits and reads."""
    import threading
    import time

    from vcpred.models import create_model
    from vcpred.training import features as feature_module

    manifest, store, _ = tiny
    records = load_manifest(manifest).records[:4]
    built = create_model(ModelSpec(backbone="resnet_test", weights="random", method="linear", seed=11))
    frames = load_frames(store, records, ["x"] * 4, main_only=False, preprocessor=None, pixels=False)
    real, calls = feature_module.compute_features, []

    def slow_compute(*args, **kwargs):
        calls.append(1)
        time.sleep(0.5)  # widen the window in which the second run would also miss the cache
        return real(*args, **kwargs)

    monkeypatch.setattr(feature_module, "compute_features", slow_compute)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        feature_module.cached_features(built, store, frames, torch.device("cpu")))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and sorted(hit for _, hit in results) == [False, True]
    assert torch.equal(results[0][0], results[1][0])


def test_frozen_batchnorm_keeps_pretrained_statistics(tiny):
    from vcpred.models import create_model

    for batchnorm, should_change in (("frozen", False), ("update", True)):
        config = make_config(tiny, backbone="resnet_test", method="full", training={"batchnorm": batchnorm})
        built = create_model(config.model)
        norms = [m for m in built.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        before = [(m.running_mean.clone(), m.weight.detach().clone()) for m in norms]
        frames = load_frames(config.store, load_manifest(config.manifest).subset("development")[:8], ["train"] * 8,
                             main_only=True, preprocessor=None)
        Trainer(built, config.training, torch.device("cpu"), "fp32").fit(frames, frames.frames, frames, frames.frames)
        stats_changed = any(not torch.equal(m.running_mean, mean) for m, (mean, _) in zip(norms, before))
        weights_changed = any(not torch.equal(m.weight, weight) for m, (_, weight) in zip(norms, before))
        assert stats_changed is should_change and weights_changed
    with pytest.raises(ConfigError, match="batchnorm"):
        TrainingParams(batchnorm="sometimes")


def test_device_and_precision_selection_on_this_machine(monkeypatch):
    from vcpred.models.inputs import autocast
    from vcpred.training.loop import host_tensor, resolve_device, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cpu)
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"  # AMP with a gradient scaler
    with autocast(cpu, "bf16"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16
    tensor = torch.ones(3)
    assert host_tensor(tensor, cpu) is tensor and host_tensor(None, cpu) is None


def test_a_user_folder_holding_a_config_yaml_is_never_removed(tiny, tmp_path):
    """Issue 14: `train --out DIR` removed DIR when it held any config.yaml without `status: done`."""
    config = make_config(tiny, image=False, clinical_columns=["age"])
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "config.yaml").write_text("configuration: my own settings\n")
    (mine / "notes.txt").write_text("keep me")
    before = snapshot(mine)
    for force in (False, True):
        with pytest.raises(VcpredError, match="not a vcpred run dir.*choose a new or empty folder"):
            train_run(config, 0, mine, force=force)
        assert snapshot(mine) == before
    assert siblings(mine) == ["project"]


def test_user_files_inside_a_run_dir_survive_a_retrain(tiny, tmp_path):
    """A vcpred run dir is redone only when it holds nothing but vcpred's own files."""
    config = make_config(tiny, image=False, clinical_columns=["age"])
    run = train_run(config, 0, tmp_path / "run")
    (run / "notes.txt").write_text("keep me")
    before = snapshot(run)
    with pytest.raises(VcpredError, match="notes.txt"):
        train_run(config, 0, run, force=True)
    assert snapshot(run) == before
    (run / "notes.txt").unlink()
    (run / "predictions.csv").unlink()  # no longer finished: redone without --force, like `experiment` does
    train_run(config, 0, run)
    assert (run / "predictions.csv").is_file() and siblings(run) == ["run"]


def test_the_validation_auc_is_vcpred_stats_auc_and_nan_below_two_of_a_class():
    # early stopping ranks epochs by the same AUC evaluate reports, under the same 2-and-2 rule
    from sklearn.metrics import roc_auc_score

    from vcpred.training.loop import patient_auc

    rng = np.random.default_rng(3)
    ids = [f"p{i}" for i in range(12) for _ in range(3)]  # three frames per patient
    labels = np.array([i % 3 == 0 for i in range(12) for _ in range(3)], dtype=float)
    probabilities = rng.random(len(ids))
    frames = types.SimpleNamespace(patient_ids=ids, labels=labels)
    per_patient = pd.DataFrame({"p": ids, "y": labels, "q": probabilities}).groupby("p").agg(y=("y", "first"),
                                                                                             q=("q", "mean"))
    assert patient_auc(frames, probabilities) == pytest.approx(roc_auc_score(per_patient["y"], per_patient["q"]))
    one_case = np.where(np.array([p == "p0" for p in ids]) | (labels == 0), labels, 0.0)
    assert math.isnan(patient_auc(types.SimpleNamespace(patient_ids=ids, labels=one_case), probabilities))

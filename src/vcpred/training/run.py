"""One run: train one configuration on one split and write its run dir.

RUN_DIR/            written beside (a temporary sibling) and put in place complete (vcpred.output_folder)
  config.yaml       resolved config, seed, hashes, weights, versions, git commit; `status: done`
  metrics.json      training curve, best epoch, timings, parameter counts
  model/            model.safetensors + model.json (trained tensors only), clinical.json
  predictions.csv   patient_id, set, split, frame_offset, probability, label  <- THE contract
  .vcpred-output.json  the files vcpred wrote: a rerun replaces the run dir only while it holds nothing else
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import replace
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from vcpred import __version__, console
from vcpred.cohort import Cohort, load_manifest, load_splits
from vcpred.cohort.provenance import training_data
from vcpred.errors import ConfigError, VcpredError
from vcpred.hashing import sha256_file
from vcpred.models import ClinicalLogistic, ClinicalPreprocessor, create_model, save_model
from vcpred.output_folder import replacing
from vcpred.training.config import TrainConfig
from vcpred.training.data import FrameSet, load_frames
from vcpred.training.features import cached_features
from vcpred.training.loop import Trainer, host_tensor, resolve_device, resolve_precision

PREDICTION_COLUMNS = ["patient_id", "set", "split", "frame_offset", "probability", "label"]
LOSS = "unweighted binary cross-entropy (outputs estimate the probability at the training prevalence)"


def environment() -> dict:
    versions = {name: metadata.version(name) for name in ("torch", "timm", "peft", "numpy", "scikit-learn")}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    return {"vcpred": __version__, "python": platform.python_version(), "packages": versions, "git_commit": commit}


def _finished(out: Path) -> bool:
    """A finished run by the rule evaluate, export and experiment use; a broken config.yaml is not one."""
    from vcpred.evaluate.runs import unfinished_reason

    try:
        return Path(out).is_dir() and unfinished_reason(Path(out)) is None
    except VcpredError:
        return False


def store_input_scale(store: Path) -> str:
    """'zscore' when the store's frames are standardised, 'unit' when min-max scaled to [0, 1]."""
    index_file = Path(store) / "index.json"
    try:
        params = json.loads(index_file.read_text()).get("params") or {}
    except (OSError, json.JSONDecodeError):
        raise VcpredError(f"{store} is not a prepared store (no readable index.json); run `vcpred prepare`") from None
    return "zscore" if params.get("normalize", "zscore") == "zscore" else "unit"


def prediction_table(frames: FrameSet, probabilities: np.ndarray, split: int) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": frames.patient_ids, "set": frames.sets, "split": split,
                         "frame_offset": frames.offsets, "probability": probabilities,
                         "label": pd.array([None if np.isnan(y) else int(y) for y in frames.labels], dtype="Int64")})


class RunPlan:
    """Who is on which side for this split; clinical preprocessing fitted on the training side."""

    def __init__(self, config: TrainConfig, split: int):
        self.cohort: Cohort = load_manifest(config.manifest)
        splits = load_splits(config.splits, self.cohort)
        if not 0 <= split < len(splits):
            raise ConfigError(f"split {split} does not exist; {config.splits} has splits 0..{len(splits) - 1}")
        train_ids, val_ids = splits[split]
        self.train = [self.cohort[p] for p in train_ids]
        self.val = [self.cohort[p] for p in val_ids]
        self.external = self.cohort.subset("external")
        columns = config.model.clinical_columns
        self.clinical = (ClinicalPreprocessor.fit(self.train, columns, self.cohort.clinical_columns)
                         if columns else None)

    def counts(self) -> dict[str, int]:
        """Patients per side (the corrected resampled t-test needs n_validation / n_train)."""
        return {"train": len(self.train), "validation": len(self.val), "external": len(self.external)}

    def scored(self) -> tuple[list, list[str]]:
        records = self.val + self.external
        return records, ["validation"] * len(self.val) + ["external"] * len(self.external)


def train_run(config: TrainConfig, split: int, out: str | Path, *, force: bool = False) -> Path:
    """Train `config` on split `split`; write the run dir; return it."""
    out = Path(out)
    if config.model.image:  # the model applies the weights' mean/std only to [0, 1] frames
        config = replace(config, model=replace(config.model, input_scale=store_input_scale(config.store)))
    plan = RunPlan(config, split)
    # A finished run is retrained only with --force; an unfinished vcpred run dir is redone; a folder
    # vcpred did not write, or a run dir holding the user's own files, is refused (vcpred.output_folder).
    with replacing(out, kind="run", force=force or not _finished(out)) as folder:
        started = time.time()
        if config.model.image:
            metrics, predictions, extra = _train_image_model(config, plan, split, folder)
        else:
            metrics, predictions, extra = _train_clinical_only(plan, split, folder)
        predictions[PREDICTION_COLUMNS].to_csv(folder / "predictions.csv", index=False)
        metrics["wall_seconds"] = time.time() - started
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float) + "\n")
        resolved = {"configuration": config.configuration, "split": split,
                    "clinical_columns": list(config.model.clinical_columns), "config": config.to_dict(),
                    "splits_sha256": sha256_file(config.splits), "manifest_sha256": sha256_file(config.manifest),
                    "patients": plan.counts(), "training_data": training_data(config.manifest),
                    "environment": environment(), **extra, "status": "done"}
        (folder / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    return out


def _train_clinical_only(plan: RunPlan, split: int, out: Path):
    features = plan.clinical.transform(plan.train)
    labels = np.asarray([r.label for r in plan.train])
    model = ClinicalLogistic.fit(features, labels)
    records, sets = plan.scored()
    probabilities = model.predict_proba(plan.clinical.transform(records))
    (out / "model").mkdir()
    (out / "model" / "clinical.json").write_text(json.dumps({"preprocessor": plan.clinical.to_dict(),
                                                             "logistic": model.to_dict()}, indent=1))
    frames = FrameSet([r.patient_id for r in records], sets, np.zeros(len(records), int), torch.zeros(0),
                      np.asarray([np.nan if r.label is None else r.label for r in records], float), None)
    return {"kind": "clinical_only", "loss": LOSS}, prediction_table(frames, probabilities, split), {"weights": None}


def _train_image_model(config: TrainConfig, plan: RunPlan, split: int, out: Path):
    params = config.training
    spec = config.model
    torch.manual_seed(params.seed)
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    width = plan.clinical.width if plan.clinical else 0
    built = create_model(spec, clinical_features=width)
    main_only = params.frames == "main"
    use_features = spec.method == "linear" and params.feature_cache
    load = partial(load_frames, config.store, preprocessor=plan.clinical, pixels=not use_features)
    train = load(plan.train, ["train"] * len(plan.train), main_only=main_only)
    records, sets = plan.scored()
    scored = load(records, sets, main_only=False)  # validation + external, read once
    val = scored.select(np.asarray(scored.sets) == "validation")
    if main_only:  # select the model on the frames it learns from; AP is judged later from predictions.csv
        val = val.select(val.offsets == 0)
    inputs = {"train": train.frames, "val": val.frames, "scored": scored.frames}
    cache_hit = None
    if use_features:
        inputs, cache_hit = _feature_inputs(built, config, plan, train, val, scored, device)
    inputs = {name: host_tensor(tensor, device) for name, tensor in inputs.items()}
    trainer = Trainer(built, params, device, precision, use_features=use_features)
    console.say(f"training {config.configuration} split {split}: {len(plan.train)} train / {len(plan.val)} "
                f"validation patients, {len(train)} samples, {built.counts()['trainable']:,} trainable "
                f"parameters, {device.type} {precision}")
    result = trainer.fit(train, inputs["train"], val, inputs["val"])
    probabilities = trainer.predict(inputs["scored"], scored.clinical)
    save_model(built, out / "model")
    if plan.clinical:
        (out / "model" / "clinical.json").write_text(json.dumps({"preprocessor": plan.clinical.to_dict()}, indent=1))
    metrics = {"kind": "image", "best_epoch": result.best_epoch, "best_val_auc": result.best_val_auc,
               "loss": LOSS,
               "history": result.history, "train_seconds": result.train_seconds,
               "step_seconds": result.step_seconds, "model_seconds": result.model_seconds,
               "samples_seen": result.samples_seen,
               "outside_model_fraction": 1 - result.model_seconds / max(result.step_seconds, 1e-9),
               "parameters": built.counts(), "feature_cache_hit": cache_hit}
    extra = {"weights": built.weights.to_dict(), "device": device.type, "precision": precision,
             "scoring_precision": "fp32", "parameters": built.counts()}
    return metrics, prediction_table(scored, probabilities, split), extra


def _feature_inputs(built, config, plan, train, val, scored, device):
    """Map each sample to its cached backbone feature (one cache over every patient of the cohort)."""
    everyone = plan.cohort.records
    all_frames = load_frames(config.store, everyone, ["all"] * len(everyone), main_only=False,
                             preprocessor=None, pixels=False)
    features, hit = cached_features(built, config.store, all_frames, device)
    position = {(p, int(o)): i for i, (p, o) in enumerate(zip(all_frames.patient_ids, all_frames.offsets))}

    def pick(frames: FrameSet) -> torch.Tensor:
        return features[[position[(p, int(o))] for p, o in zip(frames.patient_ids, frames.offsets)]]

    return {"train": pick(train), "val": pick(val), "scored": pick(scored)}, hit

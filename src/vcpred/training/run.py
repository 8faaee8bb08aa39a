"""One run: train one configuration on one split and write its run dir.

RUN_DIR/            written beside (a temporary sibling) and put in place complete (vcpred.output_folder)
  config.yaml       resolved config, seed, hashes, weights, versions, git commit; `input_paths` (the
                    manifest, store and splits file relative to the run dir), `inputs` (the
                    fingerprint below), `outputs` (sha256 of every other file), `status: done` last
  metrics.json      training curve, best epoch, timings, parameter counts
  model/            model.safetensors + model.json (trained tensors only), clinical.json
  predictions.csv   patient_id, set, split, frame_offset, probability, label  <- THE contract
  .vcpred-output.json  the files vcpred wrote: a rerun replaces the run dir only while it holds nothing else
.RUN_DIR.lock       beside it while a process trains it (one process per run dir; vcpred.locking)

A finished run is reused only for the same inputs: `inputs` records the sha256 of the resolved
configuration (without its paths), of the splits file and the manifest, and a digest of the
prepared store (its params and the sha256 of every cohort patient's file; image models only).
`run_state` reads the run through the run-folder contract (vcpred.runs: a RunRecord, its training
config parsed back into a TrainConfig), checks the output hashes and compares the inputs: 'finished',
'stale' (with the reason: the settings that differ, typed) or 'missing' (never trained, or unfinished).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, fields, is_dataclass, replace
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
from vcpred.errors import ConfigError, RunError, VcpredError
from vcpred.hashing import sha256_file, sha256_files
from vcpred.jsonio import json_text
from vcpred.models import ClinicalLogistic, ClinicalPreprocessor, create_model, save_model
from vcpred.output_folder import replacing
from vcpred.runs import RETRAIN, RunRecord, is_finished, output_problems, read_done, write_predictions
from vcpred.training.augmented_features import cached_view_features, fit_standardization, with_views
from vcpred.training.config import TrainConfig
from vcpred.training.data import FrameSet, load_frames
from vcpred.training.features import cached_features
from vcpred.training.loop import Trainer, host_tensor, resolve_device, resolve_precision

PATH_KEYS = ("manifest", "store", "splits")  # left out of the configuration's hash: their contents count
LOSS = "unweighted binary cross-entropy (outputs estimate the probability at the training prevalence)"


def environment() -> dict:
    versions = {name: metadata.version(name) for name in ("torch", "timm", "peft", "numpy", "scikit-learn")}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    return {"vcpred": __version__, "python": platform.python_version(), "packages": versions, "git_commit": commit}


def store_input_scale(store: Path) -> str:
    """'zscore' when the store's frames are standardised, 'unit' when min-max scaled to [0, 1]."""
    from vcpred.imaging.store import store_params

    params = store_params(store)
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


class StaleRun(VcpredError):
    """A run dir holds a finished run of other inputs (or damaged outputs) and retraining was not asked for."""


@dataclass
class RunState:
    state: str  # "finished", "stale" or "missing" (never trained or unfinished: trained without asking)
    reason: str = ""


def run_lock_path(out: str | Path) -> Path:
    """The lock file beside a run dir (a hidden sibling, removed when the lock is released)."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


def run_lock(out: str | Path):
    """One process per run dir: Busy at once when another holds it."""
    from vcpred.locking import held

    return held(run_lock_path(out), f"run dir {out}", " (another vcpred train or experiment is training it); wait "
                "for it to finish")


def resolved(config: TrainConfig) -> TrainConfig:
    """The configuration as trained: image models take the input scaling of their store's frames."""
    if config.model.image:  # the model applies the weights' mean/std only to [0, 1] frames
        return replace(config, model=replace(config.model, input_scale=store_input_scale(config.store)))
    return config


def run_relative_paths(config: TrainConfig, out: Path) -> dict[str, str]:
    """Where the manifest, store and splits file lie relative to the run dir `out` (config.yaml's
    `input_paths`): found again from any working directory, and when runs, store and cohort are moved
    together; an absolute path where no relative one exists (another drive on Windows)."""
    home = Path(out).resolve()
    paths = {}
    for key in PATH_KEYS:
        target = Path(getattr(config, key)).resolve()
        try:
            paths[key] = Path(os.path.relpath(target, home)).as_posix()
        except ValueError:
            paths[key] = target.as_posix()
    return paths


def _canonical(config: TrainConfig) -> dict:
    body = json.loads(json.dumps(config.to_dict(), sort_keys=True, default=str))
    return {k: v for k, v in body.items() if k not in PATH_KEYS}


def _input_file_sha256(path: Path, what: str) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path} ({exc.strerror or exc})") from None


def input_fingerprint(config: TrainConfig, patient_ids: list[str] | None = None) -> dict:
    """What a run of `config` (resolved) is made from: sha256 of the configuration without paths,
    of the splits file and the manifest, and the store digest over the cohort's patients."""
    from vcpred.imaging.store import store_digest

    body = json.dumps(_canonical(config), sort_keys=True).encode()
    store = None
    if config.model.image:
        if patient_ids is None:
            patient_ids = load_manifest(config.manifest, check_files=False).ids()
        store = store_digest(config.store, patient_ids)
    return {"config_sha256": hashlib.sha256(body).hexdigest(),
            "splits_sha256": _input_file_sha256(config.splits, "splits file"),
            "manifest_sha256": _input_file_sha256(config.manifest, "manifest"), "store_sha256": store}


def _differences(old: object, new: object, prefix: str = "") -> list[str]:
    """'training.epochs 1 -> 2' for each setting that differs between two TrainConfigs (dotted
    names, sorted at each level; the paths are left out: their contents count)."""
    if is_dataclass(old) and type(old) is type(new):
        names = sorted(f.name for f in fields(old) if prefix or f.name not in PATH_KEYS)
        return [d for name in names for d in _differences(getattr(old, name), getattr(new, name), f"{prefix}{name}.")]
    old, new = (list(v) if isinstance(v, tuple) else v for v in (old, new))
    return [] if old == new else [f"{prefix[:-1]} {old!r} -> {new!r}".replace("'", "")]


def _input_changes(record: RunRecord, config: TrainConfig, fingerprint: dict) -> list[str]:
    inputs = record.inputs or {}
    changes = []
    if inputs.get("config_sha256") != fingerprint["config_sha256"]:
        diff = _differences(record.trained, config) if record.trained is not None else []
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        changes.append(f"configuration changed ({', '.join(diff[:3])}{more})" if diff else "configuration changed")
    for key, what, path in (("splits_sha256", "splits file", config.splits), ("manifest_sha256", "manifest", config.manifest),
                            ("store_sha256", "prepared store", config.store)):
        if inputs.get(key) != fingerprint[key]:
            changes.append(f"{what} changed ({path})")
    return changes


def _unreadable(error: RunError) -> str:
    """A RunError about config.yaml without its advice to train again (StaleRun gives that)."""
    message = str(error)
    return message.split(f"; {RETRAIN}")[0] if f"; {RETRAIN}" in message else message.split("; ")[0]


def run_state(out: str | Path, config: TrainConfig, fingerprint) -> RunState:
    """Whether `out` holds a finished run of exactly these inputs, read through the run-folder
    contract (vcpred.runs: its RunRecord, the training config parsed back). `config` is resolved;
    `fingerprint()` gives its input_fingerprint (computed only when a finished run is there)."""
    out = Path(out)
    if not (out / "config.yaml").is_file():
        return RunState("missing", "not trained yet")
    try:
        record = read_done(out)
    except RunError as exc:
        return RunState("stale", _unreadable(exc))
    if record is None:
        return RunState("missing", "unfinished")
    problems = output_problems(out, record.raw)
    if problems is None or record.inputs is None:
        return RunState("stale", "finished by an earlier vcpred that recorded neither its inputs nor its outputs")
    if problems:
        return RunState("stale", "; ".join(p.replace(f"{out}/", "") for p in problems))
    changes = _input_changes(record, config, fingerprint())
    return RunState("stale", "; ".join(changes)) if changes else RunState("finished")


def train_run(config: TrainConfig, split: int, out: str | Path, *, force: bool = False) -> Path:
    """Train `config` on split `split`; write the run dir; return it. A finished run is trained again
    only with force; Busy when another process is training the same run dir."""
    out = Path(out)
    with run_lock(out):
        return _train(resolved(config), split, out, force=force or not is_finished(out))


def ensure_run(config: TrainConfig, split: int, out: str | Path, *, retrain_stale: bool = False,
               patient_ids: list[str] | None = None) -> str:
    """For `vcpred experiment`, under the run dir's lock: 'skipped' when out holds a finished run of
    these inputs, else trains it ('done'); StaleRun when out holds a stale run and retrain_stale is
    False; Busy when another process holds the run dir."""
    out = Path(out)
    with run_lock(out):
        config = resolved(config)
        fingerprint = input_fingerprint(config, patient_ids)
        state = run_state(out, config, lambda: fingerprint)
        if state.state == "finished":
            return "skipped"
        if state.state == "stale" and not retrain_stale:
            raise StaleRun(f"{out} holds a stale run ({state.reason}); pass --retrain-stale to train it again")
        _train(config, split, out, force=True, fingerprint=fingerprint)
        return "done"


def _train(config: TrainConfig, split: int, out: Path, *, force: bool, fingerprint: dict | None = None) -> Path:
    """Train the resolved `config` and write the run dir (called under the run lock)."""
    plan = RunPlan(config, split)
    fingerprint = fingerprint or input_fingerprint(config, plan.cohort.ids())
    # A finished run is retrained only with --force; an unfinished vcpred run dir is redone; a folder
    # vcpred did not write, or a run dir holding the user's own files, is refused (vcpred.output_folder).
    with replacing(out, kind="run", force=force) as folder:
        started = time.time()
        if config.model.image:
            metrics, predictions, extra = _train_image_model(config, plan, split, folder)
        else:
            metrics, predictions, extra = _train_clinical_only(plan, split, folder)
        write_predictions(predictions, folder / "predictions.csv")
        metrics["wall_seconds"] = time.time() - started
        (folder / "metrics.json").write_text(json_text(metrics))
        if input_fingerprint(config, plan.cohort.ids()) != fingerprint:
            raise VcpredError(f"the inputs of {out} (splits file, manifest or prepared store) changed while it was "
                              "training; train it again")
        outputs = sha256_files(folder, sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                              if p.is_file()))
        resolved_config = {"configuration": config.configuration, "split": split,
                           "clinical_columns": list(config.model.clinical_columns), "config": config.to_dict(),
                           "input_paths": run_relative_paths(config, out),
                           "splits_sha256": fingerprint["splits_sha256"],
                           "manifest_sha256": fingerprint["manifest_sha256"],
                           "patients": plan.counts(), "training_data": training_data(config.manifest),
                           "environment": environment(), **extra, "inputs": fingerprint, "outputs": outputs,
                           "status": "done"}
        (folder / "config.yaml").write_text(yaml.safe_dump(resolved_config, sort_keys=False))
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
    standardization = (fit_standardization(built, config.store, [r.patient_id for r in plan.train])
                       if spec.standardize == "histogram" else None)  # before any features are computed
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
        if params.acquisition is not None:
            train, inputs["train"], views_hit = _view_inputs(built, config, plan, train, inputs["train"], device)
    inputs = {name: host_tensor(tensor, device) for name, tensor in inputs.items()}
    trainer = Trainer(built, params, device, precision, use_features=use_features)
    console.say(f"training {config.configuration} split {split}: {len(plan.train)} train / {len(plan.val)} "
                f"validation patients, {len(train)} samples, {built.counts()['trainable']:,} trainable "
                f"parameters, {device.type} {precision}")
    result = trainer.fit(train, inputs["train"], val, inputs["val"])
    probabilities = trainer.predict(inputs["scored"], scored.clinical)
    trainer.contiguous()
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
    if params.acquisition is not None:
        extra["acquisition_augmentation"] = {
            "library": f"torchio {metadata.version('torchio')}", **params.acquisition,
            "applied_to": "frozen-feature views" if use_features else "training batches"}
        if use_features:
            metrics["acquisition_views_cache_hit"] = views_hit
    if standardization is not None:
        extra["histogram_standardization"] = standardization
    return metrics, prediction_table(scored, probabilities, split), extra


def _view_inputs(built, config, plan, train, train_features, device):
    """The training samples followed by their acquisition-augmented views, as features (the views of
    every development patient are cached once: vcpred.training.augmented_features)."""
    development = plan.cohort.subset("development")
    frames = load_frames(config.store, development, ["development"] * len(development), main_only=False,
                         preprocessor=None, pixels=False)
    views, hit = cached_view_features(built, config.store, frames, config.training.acquisition_augment,
                                      config.training.seed, device)
    position = {(p, int(o)): i for i, (p, o) in enumerate(zip(frames.patient_ids, frames.offsets))}
    train, stacked = with_views(train, train_features, views, position)
    return train, stacked, hit


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

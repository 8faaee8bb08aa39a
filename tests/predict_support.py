"""Helpers for the export/predict tests: tiny trained runs and their exported bundles, built once
per test session in the session's folder (tests/conftest.py `shared_workdir`; no tests here)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from conftest import DATA
from tiny_store import build_tiny_cohort
from vcpred.cohort import Roi
from vcpred.models import ModelSpec
from vcpred.training import TrainConfig, TrainingParams, train_run

T2_LUMBAR = DATA / "mri" / "t2_lumbar.nii.gz"
# The lumbar vertebral body the imaging tests use on the real T2 (tests/imaging_support.py).
BODY = Roi(slice=19, row_min=103, col_min=140, row_max=127, col_max=171)
BOX_TEXT = f"{BODY.row_min},{BODY.col_min},{BODY.row_max},{BODY.col_max}"


_session_folder: Path | None = None


def use_workdir(folder: Path | None) -> None:
    """Called by conftest's session fixture: the folder pytest gives this session (None: ended)."""
    global _session_folder
    _session_folder = folder


def workdir() -> Path:
    """The test session's folder for the shared tiny runs and bundles (made and removed by pytest)."""
    if _session_folder is None:
        raise RuntimeError("predict_support is used outside a pytest session (tests/conftest.py sets its folder)")
    return _session_folder


@lru_cache(maxsize=None)
def tiny_cohort(synthetic: bool = False) -> tuple[Path, Path, Path]:
    """The tiny cohort; synthetic: the same with the synth.json `vcpred synth` writes beside its manifest."""
    cohort = build_tiny_cohort(workdir() / ("cohort-synth" if synthetic else "cohort"))
    if synthetic:
        (cohort[0].parent / "synth.json").write_text(json.dumps({"generator": "vcpred synth", "seed": 0}))
    return cohort


@lru_cache(maxsize=None)
def trained_runs(name: str, splits: tuple[int, ...] = (0, 1), synthetic: bool = False, **model) -> Path:
    """RUNS folder with RUNS/<name>/split-KK for a tiny model trained one epoch on each split
    (synthetic: on the tiny cohort marked as made by `vcpred synth`)."""
    # lru_cache keys tiny_cohort() and tiny_cohort(False) apart: call it as everyone else does
    manifest, store, split_file = tiny_cohort(True) if synthetic else tiny_cohort()
    runs = workdir() / f"runs-{name}{'-synth' if synthetic else ''}"
    spec = ModelSpec(**{"weights": "random", **model})
    params = TrainingParams(epochs=1, batch_size=8, lr=1e-3, augment=False, precision="fp32")
    for split in splits:
        config = TrainConfig(name, manifest, store, split_file, spec, params)
        train_run(config, split, runs / name / f"split-{split:02d}")
    return runs


@lru_cache(maxsize=None)
def exported(name: str, synthetic: bool = False, **model) -> Path:
    from vcpred.predict import export_configuration

    runs = trained_runs(name, synthetic=True, **model) if synthetic else trained_runs(name, **model)
    return export_configuration(runs, name, workdir() / f"bundle-{name}{'-synth' if synthetic else ''}")


def store_frames(patient_ids: list[str]):
    """Main frames [B, 3, 64, 64] of tiny-store patients, as a float tensor."""
    import numpy as np
    import torch

    from vcpred.imaging import load_prepared

    _, store, _ = tiny_cohort()
    frames = [load_prepared(store, pid).frames[1] for pid in patient_ids]  # offsets -1, 0, 1
    return torch.from_numpy(np.repeat(np.stack(frames), 3, axis=1).astype(np.float32))

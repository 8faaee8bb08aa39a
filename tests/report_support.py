"""Helpers for the report tests: one small evaluation with an exported model, built once per test
session from the export/predict helpers' tiny trained runs (no tests here)."""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

import pandas as pd

from predict_support import BODY, T2_LUMBAR, exported, tiny_cohort, trained_runs, workdir
from vcpred.cli import main

VIT = dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))
CLINICAL = dict(image=False, clinical_columns=("age", "sex"))


@lru_cache(maxsize=None)
def runs_folder() -> Path:
    """One RUNS folder holding the tiny ViT-LoRA (+ clinical) and clinical-only configurations."""
    runs = workdir() / "report-runs"
    if not runs.is_dir():
        for name, model in (("vitlora", VIT), ("clinical", CLINICAL)):
            shutil.copytree(trained_runs(name, **model) / name, runs / name)
    return runs


@lru_cache(maxsize=None)
def evaluation() -> Path:
    out = workdir() / "report-eval"
    assert main(["--quiet", "evaluate", str(runs_folder()), "--out", str(out)]) == 0
    return out


@lru_cache(maxsize=None)
def model_dir() -> Path:
    """The ViT-LoRA configuration (+ AP) exported with the evaluation, for its card."""
    out = workdir() / "report-model"
    assert main(["--quiet", "export", str(runs_folder()), "--configuration", "vitlora", "--eval",
                 str(evaluation()), "--out", str(out)]) == 0
    return out


@lru_cache(maxsize=None)
def second_model_dir() -> Path:
    """The same ViT-LoRA runs exported without AP: another variant of this evaluation (its own
    ensemble and threshold), for the gallery's second block (attention rollout maps)."""
    out = workdir() / "report-model-no-ap"
    assert main(["--quiet", "export", str(runs_folder()), "--configuration", "vitlora", "--no-ap", "--eval",
                 str(evaluation()), "--out", str(out)]) == 0
    return out


@lru_cache(maxsize=None)
def image_manifest() -> Path:
    """The tiny manifest with every patient's image replaced by the real lumbar T2 (and its vertebral
    body as ROI): the tiny store's frames are synthetic, but the gallery reads images like predict."""
    manifest, _, _ = tiny_cohort()
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table["image_t2"] = str(T2_LUMBAR)
    for column, value in zip(("roi_slice", "roi_row_min", "roi_col_min", "roi_row_max", "roi_col_max"),
                             (BODY.slice, *BODY.box)):
        table[column] = str(value)
    path = workdir() / "report-manifest.csv"
    table.to_csv(path, index=False)
    return path


@lru_cache(maxsize=None)
def synthetic_report() -> Path:
    """The report of the tiny ViT-LoRA and clinical-only runs trained on the cohort marked as made by
    `vcpred synth`, with the ViT-LoRA exported from them (no gallery)."""
    runs, out = workdir() / "report-runs-synth", workdir() / "report-synth"
    if not runs.is_dir():
        for name, model in (("vitlora", VIT), ("clinical", CLINICAL)):
            shutil.copytree(trained_runs(name, synthetic=True, **model) / name, runs / name)
    assert main(["--quiet", "evaluate", str(runs), "--out", str(out / "eval")]) == 0
    assert main(["--quiet", "export", str(runs), "--configuration", "vitlora", "--eval", str(out / "eval"),
                 "--out", str(out / "model")]) == 0
    assert main(["--quiet", "report", str(out / "eval"), "--out", str(out / "report.html"), "--model",
                 str(out / "model"), "--gallery", "0"]) == 0
    return out / "report.html"


def report_args(out: Path, *extra: str) -> list[str]:
    return ["--quiet", "report", str(evaluation()), "--out", str(out), "--model", str(model_dir()),
            "--manifest", str(image_manifest()), "--gallery", "1", *extra]


def two_model_args(out: Path, *extra: str) -> list[str]:
    """report_args with the no-AP export as a second --model."""
    return report_args(out, "--model", str(second_model_dir()), *extra)


@lru_cache(maxsize=None)
def report_file() -> Path:
    """The report of the small evaluation with two exported models (the AP one chosen) and a
    one-case-per-outcome gallery."""
    out = workdir() / "report.html"
    assert main(two_model_args(out)) == 0
    return out


__all__ = ["exported", "evaluation", "image_manifest", "model_dir", "report_args", "report_file", "runs_folder",
           "second_model_dir", "synthetic_report", "two_model_args"]

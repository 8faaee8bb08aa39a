"""Helpers for the report tests: one small evaluation with an exported model, built once per test
session from the export/predict helpers' tiny trained runs. Tests reach them through conftest's
session fixture `report_artefacts` (a ReportArtefacts over the session's SharedArtefacts); no tests here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from predict_support import BODY, T2_LUMBAR, SharedArtefacts
from vcpred.cli import main

VIT = dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))
CLINICAL = dict(image=False, clinical_columns=("age", "sex"))


class ReportArtefacts:
    """The report tests' evaluation, exported models and report, each built once per session on first
    use (in the shared artefacts' folder) and kept here; conftest's `report_artefacts` owns the instance."""

    def __init__(self, shared: SharedArtefacts):
        self.shared = shared
        self.folder = shared.folder
        self._made: dict[str, Path] = {}

    def _once(self, key: str, make) -> Path:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def clear(self) -> None:
        self._made.clear()

    def runs_folder(self) -> Path:
        """One RUNS folder holding the tiny ViT-LoRA (+ clinical) and clinical-only configurations."""
        def make():
            runs = self.folder / "report-runs"
            if not runs.is_dir():
                for name, model in (("vitlora", VIT), ("clinical", CLINICAL)):
                    shutil.copytree(self.shared.trained_runs(name, **model) / name, runs / name)
            return runs

        return self._once("runs", make)

    def evaluation(self) -> Path:
        def make():
            out = self.folder / "report-eval"
            assert main(["--quiet", "evaluate", str(self.runs_folder()), "--out", str(out)]) == 0
            return out

        return self._once("evaluation", make)

    def model_dir(self) -> Path:
        """The ViT-LoRA configuration (+ AP) exported with the evaluation, for its card."""
        def make():
            out = self.folder / "report-model"
            assert main(["--quiet", "export", str(self.runs_folder()), "--configuration", "vitlora", "--eval",
                         str(self.evaluation()), "--out", str(out)]) == 0
            return out

        return self._once("model", make)

    def second_model_dir(self) -> Path:
        """The same ViT-LoRA runs exported without AP: another variant of this evaluation (its own
        ensemble and threshold), for the gallery's second block (attention rollout maps)."""
        def make():
            out = self.folder / "report-model-no-ap"
            assert main(["--quiet", "export", str(self.runs_folder()), "--configuration", "vitlora", "--no-ap",
                         "--eval", str(self.evaluation()), "--out", str(out)]) == 0
            return out

        return self._once("model-no-ap", make)

    def image_manifest(self) -> Path:
        """The tiny manifest with every patient's image replaced by the real lumbar T2 (and its vertebral
        body as ROI): the tiny store's frames are synthetic, but the gallery reads images like predict."""
        def make():
            manifest, _, _ = self.shared.tiny_cohort()
            table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
            table["image_t2"] = str(T2_LUMBAR)
            for column, value in zip(("roi_slice", "roi_row_min", "roi_col_min", "roi_row_max", "roi_col_max"),
                                     (BODY.slice, *BODY.box)):
                table[column] = str(value)
            path = self.folder / "report-manifest.csv"
            table.to_csv(path, index=False)
            return path

        return self._once("manifest", make)

    def synthetic_report(self) -> Path:
        """The report of the tiny ViT-LoRA and clinical-only runs trained on the cohort marked as made by
        `vcpred synth`, with the ViT-LoRA exported from them (no gallery)."""
        def make():
            runs, out = self.folder / "report-runs-synth", self.folder / "report-synth"
            if not runs.is_dir():
                for name, model in (("vitlora", VIT), ("clinical", CLINICAL)):
                    shutil.copytree(self.shared.trained_runs(name, synthetic=True, **model) / name, runs / name)
            assert main(["--quiet", "evaluate", str(runs), "--out", str(out / "eval")]) == 0
            assert main(["--quiet", "export", str(runs), "--configuration", "vitlora", "--eval", str(out / "eval"),
                         "--out", str(out / "model")]) == 0
            assert main(["--quiet", "report", str(out / "eval"), "--out", str(out / "report.html"), "--model",
                         str(out / "model"), "--gallery", "0"]) == 0
            return out / "report.html"

        return self._once("synthetic-report", make)

    def report_args(self, out: Path, *extra: str) -> list[str]:
        return ["--quiet", "report", str(self.evaluation()), "--out", str(out), "--model", str(self.model_dir()),
                "--manifest", str(self.image_manifest()), "--gallery", "1", *extra]

    def two_model_args(self, out: Path, *extra: str) -> list[str]:
        """report_args with the no-AP export as a second --model."""
        return self.report_args(out, "--model", str(self.second_model_dir()), *extra)

    def report_file(self) -> Path:
        """The report of the small evaluation with two exported models (the AP one chosen) and a
        one-case-per-outcome gallery."""
        def make():
            out = self.folder / "report.html"
            assert main(self.two_model_args(out)) == 0
            return out

        return self._once("report", make)

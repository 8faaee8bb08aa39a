"""Helpers for the export/predict tests: tiny trained runs and their exported bundles, built once
per test session in the session's folder. Tests reach them through conftest's session fixture
`artefacts` (a SharedArtefacts over `shared_workdir`); no tests here."""

from __future__ import annotations

import json
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


def _key(*parts, **model) -> tuple:
    """A hashable key for the arguments (lists as tuples), whatever the call's spelling."""
    def plain(value):
        return tuple(plain(v) for v in value) if isinstance(value, (list, tuple)) else value

    return tuple(plain(p) for p in parts) + tuple(sorted((k, plain(v)) for k, v in model.items()))


class SharedArtefacts:
    """The tiny cohort, trained runs and exported bundles one test session shares: each built once,
    on first use, in `folder`, and kept here. conftest's session fixture `artefacts` owns the one
    instance and clears it when the session ends (tests take it as a fixture; nothing module-level)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._made: dict[tuple, object] = {}

    def _once(self, key: tuple, make):
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def clear(self) -> None:
        self._made.clear()

    def tiny_cohort(self, synthetic: bool = False) -> tuple[Path, Path, Path]:
        """The tiny cohort; synthetic: the same with the synth.json `vcpred synth` writes beside its manifest."""
        def make():
            cohort = build_tiny_cohort(self.folder / ("cohort-synth" if synthetic else "cohort"))
            if synthetic:
                (cohort[0].parent / "synth.json").write_text(json.dumps({"generator": "vcpred synth", "seed": 0}))
            return cohort

        return self._once(_key("cohort", bool(synthetic)), make)

    def trained_runs(self, name: str, splits: tuple[int, ...] = (0, 1), synthetic: bool = False, **model) -> Path:
        """RUNS folder with RUNS/<name>/split-KK for a tiny model trained one epoch on each split
        (synthetic: on the tiny cohort marked as made by `vcpred synth`)."""
        def make():
            manifest, store, split_file = self.tiny_cohort(synthetic)
            runs = self.folder / f"runs-{name}{'-synth' if synthetic else ''}"
            spec = ModelSpec(**{"weights": "random", **model})
            params = TrainingParams(epochs=1, batch_size=8, lr=1e-3, augment=False, precision="fp32")
            for split in splits:
                config = TrainConfig(name, manifest, store, split_file, spec, params)
                train_run(config, split, runs / name / f"split-{split:02d}")
            return runs

        return self._once(_key("runs", name, splits, bool(synthetic), **model), make)

    def exported(self, name: str, synthetic: bool = False, **model) -> Path:
        """The bundle `vcpred export` makes of trained_runs(name, synthetic=synthetic, **model)."""
        def make():
            from vcpred.bundle import export_configuration

            runs = self.trained_runs(name, synthetic=synthetic, **model)
            return export_configuration(runs, name, self.folder / f"bundle-{name}{'-synth' if synthetic else ''}")

        return self._once(_key("bundle", name, bool(synthetic), **model), make)

    def store_frames(self, patient_ids: list[str]):
        """Main frames [B, 3, 64, 64] of tiny-store patients, as a float tensor."""
        import numpy as np
        import torch

        from vcpred.imaging import load_prepared

        _, store, _ = self.tiny_cohort()
        frames = [load_prepared(store, pid).frames[1] for pid in patient_ids]  # offsets -1, 0, 1
        return torch.from_numpy(np.repeat(np.stack(frames), 3, axis=1).astype(np.float32))

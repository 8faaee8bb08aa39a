"""A tiny prepared store written directly (no imaging pipeline): frames with a planted signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import patient_row, write_manifest
from vcpred.cohort import load_manifest, make_splits, save_splits
from vcpred.imaging.pipeline import PreparedPatient
from vcpred.imaging.store import STORE_FORMAT, STORE_VERSION, record_prepared, save_index, write_prepared

SIZE = 64
OFFSETS = np.array([-1, 0, 1])


def _frames(rng: np.random.Generator, label: int, noise: float) -> np.ndarray:
    """[3, 1, 64, 64]: noise plus a bright block whose size says the label (weaker off-centre)."""
    frames = rng.normal(0, noise, size=(len(OFFSETS), 1, SIZE, SIZE)).astype(np.float32)
    for i, offset in enumerate(OFFSETS):
        half = (14 if label else 7) - 2 * abs(offset) + int(rng.integers(-2, 3))
        frames[i, 0, 32 - half:32 + half, 32 - half:32 + half] += 2.0
    return frames


def build_tiny_cohort(folder: Path, n_development: int = 24, n_external: int = 10, seed: int = 0,
                      noise: float = 1.0):
    """manifest.csv, splits.json and a prepared store; returns (manifest, store, splits).

    noise: SD of the pixel noise around the planted block (larger = a harder task)."""
    rng = np.random.default_rng(seed)
    rows = [patient_row(i, label=int(i % 3 == 0)) for i in range(n_development)]
    rows += [patient_row(100 + i, set_name="external", label=int(i % 2)) for i in range(n_external)]
    for row in rows:  # age mildly informative, one value missing
        row["age"] = 70 + 8 * row["label"] + int(rng.integers(-6, 7))
    rows[1]["age"] = ""
    manifest = write_manifest(folder, rows)
    cohort = load_manifest(manifest)
    store = folder / "store"
    save_index(store if store.mkdir() is None else store,
               {"format": STORE_FORMAT, "version": STORE_VERSION, "params": {"normalize": "zscore", "size": SIZE},
                "patients": {}})
    for record in cohort.records:
        write_prepared(store, PreparedPatient(
            patient_id=record.patient_id, frames=_frames(rng, record.label, noise), frame_offsets=OFFSETS,
            frame_slices=OFFSETS + 7, crop_box=np.array([90, 70, 150, 130]), roi_box=np.array(record.roi.box),
            roi_slice=7, main_slice=np.zeros((200, 200), np.float32), spacing=(3.0, 1.0, 1.0),
            channels=["t2"], provenance={"test": True}))
        record_prepared(store, record.patient_id)
    splits = save_splits(folder / "splits.json", make_splits(cohort, n_splits=3, seed=0), cohort=cohort,
                         seed=0, val_fraction=0.2)
    return manifest, store, splits

"""Patient-level, label-stratified random splits of the development set, saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vcpred.cohort.manifest import Cohort
from vcpred.errors import SplitError
from vcpred.hashing import sha256_file

SPLITS_FORMAT = 1


class Split(NamedTuple):
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]


def _validation_count(n_class: int, val_fraction: float) -> int:
    """Round to the nearest whole patient, keeping at least one patient of the class on each side."""
    return int(min(max(round(n_class * val_fraction), 1), n_class - 1))


def make_splits(cohort: Cohort, n_splits: int = 10, val_fraction: float = 0.2,
                seed: int = 0) -> list[Split]:
    """Random train/validation splits of the development set, stratified by label.

    One manifest row is one patient, so every frame of a patient follows its row to one side.
    External patients never appear. Each class sends round(n_class * val_fraction) patients
    to validation (at least one, never all), so class balance is within one patient of exact.
    Deterministic for a seed whatever the manifest's row order.

    Written here rather than with sklearn's StratifiedShuffleSplit because that one rounds the
    total first and then distributes, and refuses classes with one member; ours states its rule.
    """
    if n_splits < 1:
        raise SplitError(f"n_splits must be at least 1, got {n_splits}")
    if not 0 < val_fraction < 1:
        raise SplitError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    development = cohort.subset("development")
    by_label: dict[int, list[str]] = {}
    for record in development:
        if record.label is None:
            raise SplitError(f"development patient {record.patient_id!r} has no label")
        by_label.setdefault(record.label, []).append(record.patient_id)
    for label in (0, 1):
        if len(by_label.get(label, [])) < 2:
            raise SplitError(f"the development set needs at least 2 patients with label {label} to "
                             f"split, has {len(by_label.get(label, []))}")
    rng = np.random.default_rng(seed)
    classes = [sorted(by_label[label]) for label in (0, 1)]
    splits = []
    for _ in range(n_splits):
        train, val = [], []
        for ids in classes:
            order = rng.permutation(len(ids))
            n_val = _validation_count(len(ids), val_fraction)
            val += [ids[i] for i in order[:n_val]]
            train += [ids[i] for i in order[n_val:]]
        splits.append(Split(tuple(sorted(train)), tuple(sorted(val))))
    return splits


def save_splits(path: str | Path, splits: list[Split], *, cohort: Cohort, seed: int,
                val_fraction: float, overwrite: bool = False) -> Path:
    """Write splits as JSON with the parameters and the manifest hash that produced them."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SplitError(f"{path} exists; choose another path or pass --force to overwrite it")
    payload = {
        "format": SPLITS_FORMAT,
        "seed": seed,
        "n_splits": len(splits),
        "val_fraction": val_fraction,
        "manifest": str(cohort.manifest_path),
        "manifest_sha256": sha256_file(cohort.manifest_path),
        "splits": [{"index": i, "train": list(s.train_ids), "val": list(s.val_ids)}
                   for i, s in enumerate(splits)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def load_splits(path: str | Path, cohort: Cohort | None = None) -> list[Split]:
    """Read splits written by save_splits; with a cohort, check they belong to it."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        splits = [Split(tuple(s["train"]), tuple(s["val"])) for s in payload["splits"]]
    except FileNotFoundError:
        raise SplitError(f"splits file {path} not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SplitError(f"{path} is not a vcpred splits file: {exc}") from None
    if cohort is not None:
        check_splits(splits, cohort, source=str(path))
    return splits


def check_splits(splits: list[Split], cohort: Cohort, *, source: str = "splits") -> None:
    """Leakage and membership checks: disjoint sides, development patients of this cohort only."""
    development = set(cohort.ids("development"))
    for index, (train, val) in enumerate(splits):
        overlap = set(train) & set(val)
        if overlap:
            raise SplitError(f"{source}: split {index} has patients on both sides: {sorted(overlap)[:5]}")
        foreign = (set(train) | set(val)) - development
        if foreign:
            raise SplitError(f"{source}: split {index} names patients that are not development "
                             f"patients of {cohort.manifest_path}: {sorted(foreign)[:5]}")

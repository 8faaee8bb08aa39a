"""Patient-level, label-stratified random splits of the development set, saved as JSON."""

from __future__ import annotations

import json
import math
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


MIN_VALIDATION_PER_CLASS = 2  # a Youden threshold, an AUC and its DeLong CI need two of each class


def _validation_count(n_class: int, val_fraction: float) -> int:
    """Round to the nearest whole patient, keeping at least one patient of the class on each side."""
    return int(min(max(round(n_class * val_fraction), 1), n_class - 1))


def _class_sizes(cohort: Cohort) -> tuple[int, int]:
    """(cases, controls) among the labelled development patients."""
    labels = [r.label for r in cohort.subset("development") if r.label is not None]
    return labels.count(1), labels.count(0)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def check_validation_size(cohort: Cohort, val_fraction: float, *, option: str = "--val-fraction") -> None:
    """SplitError unless every validation set of make_splits(cohort, val_fraction=...) holds at least
    two cases and two controls: with fewer, `vcpred evaluate` cannot choose a split's threshold or
    score it, which it would find only after every run is trained. `option` names the setting."""
    cases, controls = _class_sizes(cohort)
    val_cases, val_controls = _validation_count(cases, val_fraction), _validation_count(controls, val_fraction)
    if min(val_cases, val_controls) >= MIN_VALIDATION_PER_CLASS:
        return
    need = MIN_VALIDATION_PER_CLASS
    what = (f"{option} {val_fraction:g} of the {cases + controls} development patients ({_plural(cases, 'case')}, "
            f"{_plural(controls, 'control')}) puts {_plural(val_cases, 'case')} and {_plural(val_controls, 'control')} "
            f"in each validation set; every split needs at least {need} cases and {need} controls there (to choose "
            "its threshold and score it)")
    if min(cases, controls) < need + 1:
        raise SplitError(f"{what}, and at least one more of each to train on: the development set needs at least "
                         f"{need + 1} cases and {need + 1} controls; add patients")
    fraction = next((f / 100 for f in range(int(val_fraction * 100) + 1, 100)
                     if min(_validation_count(cases, f / 100), _validation_count(controls, f / 100)) >= need), None)
    raise SplitError(f"{what}: use {option} {fraction:g} or more, or add patients")


def check_validation_classes(splits: list[Split], cohort: Cohort, *, source: str = "splits") -> None:
    """SplitError naming the splits (of a file) whose validation set has fewer than two cases or controls."""
    labels = {r.patient_id: r.label for r in cohort.records}
    short = []
    for index, split in enumerate(splits):
        val = [labels.get(p) for p in split.val_ids]
        cases, controls = val.count(1), val.count(0)
        if min(cases, controls) < MIN_VALIDATION_PER_CLASS:
            short.append(f"split {index} ({_plural(cases, 'case')}, {_plural(controls, 'control')})")
    if short:
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise SplitError(f"{source}: the validation set of {', '.join(short[:5])}{more} holds fewer than "
                         f"{MIN_VALIDATION_PER_CLASS} cases or controls; choosing a split's threshold and scoring it "
                         f"need at least {MIN_VALIDATION_PER_CLASS} of each: make the splits again with a larger "
                         "validation fraction")


def repeated_splits(splits: list[Split]) -> dict[int, int]:
    """{index: index of the earlier split it repeats} for splits with the same validation patients."""
    first: dict[tuple[str, ...], int] = {}
    repeats = {}
    for index, split in enumerate(splits):
        key = tuple(sorted(split.val_ids))
        if key in first:
            repeats[index] = first[key]
        else:
            first[key] = index
    return repeats


def repeat_warning(splits: list[Split], cohort: Cohort | None = None, val_fraction: float | None = None,
                   *, source: str = "splits") -> str | None:
    """The warning for splits that repeat an earlier one (None when all differ): they add no
    information and make the spread over splits look smaller than it is."""
    repeats = repeated_splits(splits)
    if not repeats:
        return None
    listed = ", ".join(f"{i} = {j}" for i, j in list(repeats.items())[:5]) + (" ..." if len(repeats) > 5 else "")
    possible = ""
    if cohort is not None and val_fraction is not None:
        cases, controls = _class_sizes(cohort)
        count = (math.comb(cases, _validation_count(cases, val_fraction))
                 * math.comb(controls, _validation_count(controls, val_fraction)))
        possible = f"; this cohort and fraction allow only {count} different validation set(s)"
    return (f"{source}: {len(repeats)} of the {len(splits)} splits repeat an earlier one (same validation patients: "
            f"{listed}){possible}. Repeated splits add no information and make the spread over splits look smaller "
            "than it is: use fewer splits, or a larger cohort")


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

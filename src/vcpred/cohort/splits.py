"""Patient-level splits of the development set, saved as JSON: label-stratified random splits, or
leave-one-site-out splits (one per development site, that site's patients validate)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vcpred.cohort.manifest import Cohort
from vcpred.errors import SplitError
from vcpred.hashing import sha256_file

SPLITS_FORMAT = 1  # leave-one-site-out files add `strategy` and per split `held_out_site`; absent = random
RANDOM = "random"
LEAVE_ONE_SITE_OUT = "leave-one-site-out"
STRATEGIES = (RANDOM, LEAVE_ONE_SITE_OUT)


class Split(NamedTuple):
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]


@dataclass(frozen=True)
class SplitsFile:
    """What a splits file holds: its splits, how they were made, and for leave-one-site-out splits the
    development site each one validates on (None per split for random splits)."""

    splits: list[Split]
    strategy: str
    held_out_sites: tuple[str | None, ...]


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


def development_sites(cohort: Cohort) -> dict[str, list[str]]:
    """{site: its development patients' ids}, sites sorted by name. SplitError (one line) when a
    development patient has no site or no label, or fewer than 2 sites exist."""
    development = cohort.subset("development")
    unlabelled = [r.patient_id for r in development if r.label is None]
    if unlabelled:
        raise SplitError(f"development patient {unlabelled[0]!r} has no label")
    no_site = [r for r in development if not r.site]
    if len(no_site) == len(development):
        raise SplitError(f"leave-one-site-out splits need each development patient's site, and no development "
                         f"patient of {cohort.manifest_path} has one: fill in the manifest's `site` column, or use "
                         "random splits")
    if no_site:
        listed = ", ".join(f"{r.patient_id!r} (row {r.row})" for r in no_site[:5])
        more = f" and {len(no_site) - 5} more" if len(no_site) > 5 else ""
        raise SplitError(f"leave-one-site-out splits need each development patient's site; development patient(s) "
                         f"{listed}{more} of {cohort.manifest_path} have none: fill in their `site`")
    sites: dict[str, list[str]] = {}
    for record in development:
        sites.setdefault(str(record.site), []).append(record.patient_id)
    if len(sites) < 2:
        found = f"1 ({next(iter(sites))!r})" if sites else "none"
        raise SplitError(f"leave-one-site-out splits need at least 2 development sites (one validates while the "
                         f"others train); {cohort.manifest_path} has {found}: use random splits")
    return {site: sorted(sites[site]) for site in sorted(sites)}


def make_site_splits(cohort: Cohort) -> list[Split]:
    """Leave-one-site-out ("internal-external") splits: one per development site, in site-name order;
    that site's development patients validate and every other development site trains. Every
    development patient is validated exactly once. External patients never appear.

    Refused (SplitError, one line) when a development patient has no site, when there are fewer than
    2 development sites, or when a site has fewer than 2 cases or 2 controls: as a validation set it
    needs them for its Youden threshold, AUC and DeLong CI."""
    sites = development_sites(cohort)
    labels = {r.patient_id: r.label for r in cohort.subset("development")}
    need = MIN_VALIDATION_PER_CLASS
    short = []
    for site, ids in sites.items():
        cases = sum(labels[p] == 1 for p in ids)
        controls = len(ids) - cases
        if min(cases, controls) < need:
            short.append(f"{site!r} has {_plural(cases, 'case')} and {_plural(controls, 'control')}")
    if short:
        raise SplitError(f"leave-one-site-out: development site {'; site '.join(short)}; a held-out site's "
                         f"validation set needs at least {need} cases and {need} controls (to choose its threshold "
                         "and score it): merge small sites in the manifest's `site` column, or use random splits")
    everyone = set(labels)
    return [Split(tuple(sorted(everyone - set(ids))), tuple(ids)) for ids in sites.values()]


def held_out_sites(splits: list[Split], cohort: Cohort) -> list[str]:
    """The development site each split validates on; SplitError when a split's validation patients are
    not exactly one site's development patients (then it is not a leave-one-site-out split)."""
    sites = development_sites(cohort)
    site_of = {p: site for site, ids in sites.items() for p in ids}
    found = []
    for index, split in enumerate(splits):
        held = {site_of.get(p) for p in split.val_ids}
        site = next(iter(held)) if len(held) == 1 else None
        if site is None or set(split.val_ids) != set(sites[site]):
            raise SplitError(f"split {index} does not validate on exactly one development site's patients, so it "
                             "is not a leave-one-site-out split")
        found.append(site)
    return found


def save_splits(path: str | Path, splits: list[Split], *, cohort: Cohort, seed: int | None = None,
                val_fraction: float | None = None, strategy: str = RANDOM, overwrite: bool = False) -> Path:
    """Write splits as JSON with the parameters and the manifest hash that produced them: random splits
    record their seed and validation fraction, leave-one-site-out splits their strategy and each
    split's held-out site (random files are written as before this strategy existed)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise SplitError(f"{path} exists; choose another path or pass --force to overwrite it")
    if strategy not in STRATEGIES:
        raise SplitError(f"unknown split strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    records = [{"index": i, "train": list(s.train_ids), "val": list(s.val_ids)} for i, s in enumerate(splits)]
    if strategy == RANDOM:
        made: dict = {"seed": seed, "n_splits": len(splits), "val_fraction": val_fraction}
    else:
        made = {"strategy": strategy, "n_splits": len(splits)}
        records = [{"index": i, "held_out_site": site, **{k: v for k, v in r.items() if k != "index"}}
                   for i, (r, site) in enumerate(zip(records, held_out_sites(splits, cohort)))]
    payload = {"format": SPLITS_FORMAT, **made, "manifest": str(cohort.manifest_path),
               "manifest_sha256": sha256_file(cohort.manifest_path), "splits": records}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def read_splits(path: str | Path, cohort: Cohort | None = None) -> SplitsFile:
    """Read a splits file written by save_splits (any version: a file without `strategy` holds random
    splits); with a cohort, check they belong to it, and that each leave-one-site-out split still
    validates on its site's patients."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        splits = [Split(tuple(s["train"]), tuple(s["val"])) for s in payload["splits"]]
        strategy = payload.get("strategy", RANDOM)
        sites = tuple(s["held_out_site"] if strategy == LEAVE_ONE_SITE_OUT else None for s in payload["splits"])
    except FileNotFoundError:
        raise SplitError(f"splits file {path} not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise SplitError(f"{path} is not a vcpred splits file: {exc}") from None
    if strategy not in STRATEGIES:
        raise SplitError(f"{path} is not a vcpred splits file: unknown strategy {strategy!r} "
                         f"(known: {', '.join(STRATEGIES)})")
    if cohort is not None:
        check_splits(splits, cohort, source=str(path))
        if strategy == LEAVE_ONE_SITE_OUT:
            _check_held_out_sites(splits, sites, cohort, source=str(path))
    return SplitsFile(splits, strategy, sites)


def load_splits(path: str | Path, cohort: Cohort | None = None) -> list[Split]:
    """Read splits written by save_splits; with a cohort, check they belong to it."""
    return read_splits(path, cohort).splits


def recorded_held_out_sites(path: str | Path) -> tuple[str | None, ...]:
    """Each split's held-out site as the splits file records it (None per split for random splits;
    () when the file cannot be read): names for per-split results, never a check."""
    try:
        return read_splits(path).held_out_sites
    except SplitError:
        return ()


def _check_held_out_sites(splits: list[Split], sites: tuple[str | None, ...], cohort: Cohort, *, source: str) -> None:
    """Each leave-one-site-out split validates on exactly the development patients of the site it names
    (the manifest's sites may have changed since the file was made)."""
    site_of = {r.patient_id: r.site for r in cohort.subset("development")}
    for index, (split, site) in enumerate(zip(splits, sites)):
        others = sorted(p for p in split.val_ids if site_of.get(p) != site)
        missed = sorted(p for p in split.train_ids if site_of.get(p) == site)
        if others or missed:
            wrong = (f"validates on {others[:3]}, not of that site" if others
                     else f"trains on {missed[:3]}, of that site")
            raise SplitError(f"{source}: split {index} holds out site {site!r} but {wrong} in {cohort.manifest_path}; "
                             "the manifest's sites changed since the splits were made: make them again")


def check_splits(splits: list[Split], cohort: Cohort, *, source: str = "splits") -> None:
    """Leakage and membership checks: disjoint sides, development patients of this cohort only."""
    development = set(cohort.ids("development"))
    for index, (train, val) in enumerate(splits):
        overlap = set(train) & set(val)
        if overlap:
            raise SplitError(f"{source}: split {index} has patients on both sides: {sorted(overlap)[:5]}")
        foreign = (set(train) | set(val)) - development
        if foreign:
            raise SplitError(f"{source}: split {index} names patients that are not development patients of "
                             f"{cohort.manifest_path}: {_named(sorted(foreign), cohort)}; the splits were made from "
                             f"an earlier manifest: {new_splits_advice(source, cohort.manifest_path)}")


def new_splits_advice(source: str | Path, manifest: str | Path) -> str:
    """The next step for a splits file that no longer fits its manifest: move it aside, make new splits."""
    return (f"move it aside (`mv {source} {source}.old`), then make new splits with `vcpred cohort split {manifest} "
            f"--out {source}` or let `vcpred experiment` make them (it makes a missing splits file); runs trained on "
            "the old splits then count as stale")


def _named(ids: list[str], cohort: Cohort) -> str:
    """Up to five ids, each excluded one with its `exclude` reason."""
    reasons = {e.patient_id: e.reason for e in cohort.excluded}
    shown = [f"{p!r} (excluded: {reasons[p]!r})" if p in reasons else repr(p) for p in ids[:5]]
    return ", ".join(shown) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")

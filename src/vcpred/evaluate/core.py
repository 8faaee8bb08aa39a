"""`evaluate_runs`: everything `vcpred evaluate` computes, from predictions tables only."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from vcpred import console
from vcpred.evaluate.aggregate import aggregate
from vcpred.evaluate.calibration import VariantCalibration, calibration_curves
from vcpred.evaluate.compare import Comparisons, compare_all, test_train_ratio
from vcpred.evaluate.decision import DecisionCurves, decision_curves
from vcpred.evaluate.ensemble import Ensemble, build_ensemble
from vcpred.evaluate.per_split import split_row
from vcpred.evaluate.runs import read_runs
from vcpred.evaluate.selection import MARGIN, Selection, default_reference, select, validation_data
from vcpred.evaluate.sites import VariantSites, variant_sites
from vcpred.evaluate.small_sample import evaluation_sizes
from vcpred.evaluate.subgroups import subgroup_columns, subgroups
from vcpred.evaluate.transfer import Transfer, transfer_check
from vcpred.evaluate.variants import Variant, parse_variant

DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 10)


@dataclass
class Evaluation:
    runs_dir: Path
    aggregate: str
    variants: list[Variant]
    per_split: pd.DataFrame  # one row per variant x split (per_split.csv)
    ensembles: dict[Variant, Ensemble]
    best: Variant
    comparisons: Comparisons
    calibration: dict[str, VariantCalibration]  # variant label -> its ensemble's calibration
    decision_curves: DecisionCurves | None  # None: no ensemble with 2 labelled patients of each class
    selection: Selection
    sites: dict[str, VariantSites]  # variant label -> out-of-split validation AUC pooled and per development site
    subgroups: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    small_sample: dict = field(default_factory=dict)  # evaluation.json `small_sample` (small_sample.evaluation_sizes)
    transfer: Transfer | None = None  # evaluation.json `transfer`: who collapses at the external set (reporting only)


def evaluate_runs(runs_dir: str | Path, *, rule: str = "mean", best: str | None = None,
                  manifest: str | None = None, thresholds: np.ndarray = DEFAULT_THRESHOLDS,
                  alpha: float = 0.05, selection_rule: str = MARGIN, reference: str | None = None) -> Evaluation:
    """Read RUNS, aggregate frames (no AP / AP), score per split and per ensemble, choose the best
    variant (selection.py) and compare every other with it."""
    folder = read_runs(runs_dir)
    for path, reason in folder.skipped:
        console.warn(f"skipped {path}: {reason}")
    groups = subgroup_columns(manifest) if manifest else None
    rows, tables, variants = [], {}, []
    image_free = _image_free(folder.runs)
    for run in console.progress(folder.runs, desc="runs"):
        for ap in (False, True):
            variant = Variant(run.configuration, ap, run.clinical)
            if variant not in variants:
                variants.append(variant)
            tables[variant, run.split] = table = aggregate(run.predictions, ap=ap, rule=rule)
            rows.append(split_row(variant, run, table))
    identical = identical_variants(variants, tables)
    variants = [v for v in variants if v.label not in identical]
    per_split = pd.DataFrame(rows)
    per_split = per_split[~per_split["variant"].isin(identical)].reset_index(drop=True)
    ensembles = _ensembles(per_split, tables, variants)
    sites = groups["site"] if groups is not None and "site" in groups else None
    data = validation_data(tables, variants, sites, test_train_ratio(per_split, *variants))
    evidence = data.evidence()
    _warn_siteless(evidence.pooled, sites)
    base = parse_variant(reference, variants, "--reference") if reference else default_reference(variants, image_free)
    forced = parse_variant(best, variants) if best else None
    selection = select(data, evidence, rule=selection_rule, reference=base, forced=forced)
    chosen = next(v for v in variants if v.label == selection.winner)
    comparisons = replace(compare_all(per_split, tables, ensembles, variants, chosen, alpha),
                          best_rule=selection.best_rule, identical_variants=identical)
    development = {label: variant_sites(table, evidence.eligible) for label, table in evidence.pooled.items()}
    external_groups = subgroups(ensembles, groups) if groups is not None else {}
    return Evaluation(Path(runs_dir), rule, variants, per_split, ensembles, chosen, comparisons,
                      calibration_curves(ensembles), decision_curves(ensembles, thresholds), selection, development,
                      external_groups, folder.skipped, evaluation_sizes(per_split, ensembles),
                      _transfer(per_split, ensembles, base, chosen))


def _transfer(per_split: pd.DataFrame, ensembles: dict[Variant, Ensemble], reference: Variant,
              chosen: Variant) -> Transfer:
    """The transfer check, after the choice and apart from it (the external set chooses nothing): each
    variant's mean internal AUC (summary.csv auc_mean) against its ensemble's external AUC."""
    internal = per_split.groupby("variant", sort=False)["validation_auc"].mean().to_dict()
    return transfer_check(internal, {v.label: e.metrics for v, e in ensembles.items()}, reference.label, chosen.label)


def _image_free(runs: list) -> set[str]:
    """The configurations whose models read no images (recorded in their training config; another tool's
    runs record none and count as image models)."""
    from vcpred.runs import read_record

    first = {run.configuration: run.path for run in reversed(runs)}  # each configuration's first split
    return {name for name, path in first.items() if not read_record(path).image}


def _warn_siteless(pooled: dict[str, pd.DataFrame], sites: pd.Series | None) -> None:
    """Say how many development patients have no site in the manifest (left out of the per-site AUCs)."""
    table = next(iter(pooled.values()), None)
    if sites is None or table is None:
        return
    missing = table.index[table["site"].isna()]
    if len(missing):
        console.warn(f"{len(missing)} development patient(s) have no site in the manifest and are left out of the "
                     f"per-site validation AUCs (e.g. {missing[0]!r})")


def identical_variants(variants: list[Variant], tables: dict) -> dict[str, str]:
    """{label: label of the earlier variant it equals}: the same patients and probabilities (to 1e-12)
    in every split, e.g. 'clinical-only + AP' (one frame, so AP changes nothing). Shown and counted once."""
    splits = {v: sorted(k for w, k in tables if w == v) for v in variants}

    def same(a: Variant, b: Variant) -> bool:
        if splits[a] != splits[b]:
            return False
        for split in splits[a]:
            x, y = tables[a, split], tables[b, split]
            if not x.index.equals(y.index) or not np.allclose(x["probability"], y["probability"], rtol=0, atol=1e-12):
                return False
        return True

    identical: dict[str, str] = {}
    for index, variant in enumerate(variants):
        kept = [v for v in variants[:index] if v.label not in identical]
        twin = next((v for v in kept if same(v, variant)), None)
        if twin is not None:
            identical[variant.label] = twin.label
    return identical


def _ensembles(per_split: pd.DataFrame, tables: dict, variants: list[Variant]) -> dict[Variant, Ensemble]:
    out = {}
    for variant in variants:
        mine = per_split[per_split["variant"] == variant.label]
        thresholds = dict(zip(mine["split"], mine["threshold"]))
        ensemble = build_ensemble(variant, {k: tables[variant, k] for k in thresholds}, thresholds)
        if ensemble is not None:
            out[variant] = ensemble
            if ensemble.threshold_note:  # also in every output; never an unexplained empty cell
                console.warn(f"{variant.label}: ensemble threshold {ensemble.threshold_note}")
    return out

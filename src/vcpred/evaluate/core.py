"""`evaluate_runs`: everything `vcpred evaluate` computes, from predictions tables only."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from vcpred import console
from vcpred.evaluate.aggregate import aggregate
from vcpred.evaluate.calibration import VariantCalibration, calibration_curves
from vcpred.evaluate.compare import Comparisons, choose_best, compare_all
from vcpred.evaluate.decision import DecisionCurves, decision_curves
from vcpred.evaluate.ensemble import Ensemble, build_ensemble
from vcpred.evaluate.per_split import split_row
from vcpred.evaluate.runs import read_runs
from vcpred.evaluate.subgroups import subgroup_columns, subgroups
from vcpred.evaluate.variants import Variant

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
    subgroups: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def evaluate_runs(runs_dir: str | Path, *, rule: str = "mean", best: str | None = None,
                  manifest: str | None = None, thresholds: np.ndarray = DEFAULT_THRESHOLDS,
                  alpha: float = 0.05) -> Evaluation:
    """Read RUNS, aggregate frames (no AP / AP), score per split and per ensemble, compare with best."""
    folder = read_runs(runs_dir)
    for path, reason in folder.skipped:
        console.warn(f"skipped {path}: {reason}")
    rows, tables, variants = [], {}, []
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
    chosen = choose_best(per_split, variants, best)
    comparisons = replace(compare_all(per_split, tables, ensembles, variants, chosen, alpha),
                          best_rule="chosen with --best" if best else "highest mean internal AUC",
                          identical_variants=identical)
    groups = subgroups(ensembles, subgroup_columns(manifest)) if manifest else {}
    return Evaluation(Path(runs_dir), rule, variants, per_split, ensembles, chosen, comparisons,
                      calibration_curves(ensembles), decision_curves(ensembles, thresholds), groups,
                      folder.skipped)


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
    return out

"""Comparisons of every variant against the best one.

- best: the highest mean internal (validation) AUC over splits, or the user's --best; external
  labels never enter this choice;
- per split model: paired DeLong on the external set (and on the validation set when both variants
  saw the same validation patients); reported as the median p and the number of splits significant
  at the Bonferroni level alpha / m (m = number of comparisons, as in the study);
- ensemble: paired DeLong of the two split ensembles on the external set (the primary external p);
- over splits: paired t-test and Wilcoxon signed-rank of the per-split AUCs (the primary internal
  p). They treat splits as independent although their training sets overlap, so they are optimistic.
Primary p-values are adjusted within each set by Bonferroni (min(1, m p)) and Holm.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel, wilcoxon

from vcpred.evaluate.ensemble import Ensemble, check_same_labels
from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.per_split import scored
from vcpred.evaluate.variants import Variant, parse_variant
from vcpred.stats import delong_test

NAN = math.nan


def choose_best(per_split: pd.DataFrame, variants: list[Variant], best: str | None) -> Variant:
    """The variant with the highest mean validation AUC (ties: first by name), or the named one."""
    if best:
        return parse_variant(best, variants)
    means = per_split.groupby("variant")["validation_auc"].mean()
    ranked = sorted(variants, key=lambda v: (-means[v.label], v.label))
    return ranked[0]


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(p_values, dtype=float)
    ok = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), NAN)
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))  # monotone step-down
        adjusted[index] = running
    return adjusted.tolist()


def bonferroni(p_values: list[float]) -> list[float]:
    """min(1, m p) with m = the number of comparisons (NaN when a test could not run)."""
    m = len(p_values)
    return [min(1.0, p * m) if not math.isnan(p) else NAN for p in p_values]


def over_splits(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """Paired t-test and Wilcoxon of per-split AUCs a (variant) vs b (best), paired by split."""
    pairs = pd.concat({"a": a, "b": b}, axis=1).dropna()
    out = {"n_splits": len(pairs), "mean_difference": float((pairs.a - pairs.b).mean()) if len(pairs) else NAN,
           "t_test_p": NAN, "wilcoxon_p": NAN}
    if len(pairs) < 2:
        return out
    if np.allclose(pairs.a, pairs.b, rtol=0, atol=1e-12):  # identical AUCs: no evidence of a difference
        return out | {"t_test_p": 1.0, "wilcoxon_p": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant differences: scipy warns and returns NaN
        out["t_test_p"] = float(ttest_rel(pairs.a, pairs.b).pvalue)
        try:
            out["wilcoxon_p"] = float(wilcoxon(pairs.a, pairs.b).pvalue)
        except ValueError:
            pass
    return out


def paired_delong(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, float] | None:
    """DeLong of a vs b on the same labelled patients (index patient_id); None when too few per class."""
    b = b.loc[a.index]
    y = a["label"].to_numpy(int)
    if min((y == 1).sum(), (y == 0).sum()) < 2:
        return None
    r = delong_test(y, a["probability"].to_numpy(), b["probability"].to_numpy())
    return {"auc": r.auc_a, "auc_best": r.auc_b, "z": r.z, "p_value": r.p_value,
            "difference": r.difference, "difference_ci_low": r.diff_ci_low, "difference_ci_high": r.diff_ci_high}


def per_split_delong(tables: dict, variant: Variant, best: Variant, set_name: str) -> dict:
    """Paired DeLong per common split; median p and the list. tables: (variant, split) -> table."""
    splits = sorted({k for v, k in tables if v == variant} & {k for v, k in tables if v == best})
    results = {}
    for split in splits:
        a, b = scored(tables[variant, split], set_name), scored(tables[best, split], set_name)
        if set(a.index) != set(b.index):
            if set_name == "external":
                raise EvaluationError(f"split {split}: {variant.label} and {best.label} were scored on "
                                      "different external patients; every run must predict the same external set")
            return {"skipped": "validation patients differ between the two variants (different split files)"}
        check_same_labels(a["label"], b["label"], f"split {split}: {variant.label} and {best.label}")
        result = paired_delong(a, b)
        if result:
            results[split] = result
    p = [r["p_value"] for r in results.values()]
    return {"median_p": float(np.median(p)) if p else NAN, "splits": results}


def compare_all(per_split: pd.DataFrame, tables: dict, ensembles: dict[Variant, Ensemble],
                variants: list[Variant], best: Variant, alpha: float = 0.05) -> dict:
    """Every variant other than best against best; see the module docstring for the tests."""
    others = [v for v in variants if v != best]
    m = max(len(others), 1)
    level = alpha / m
    by_variant = per_split.set_index(["variant", "split"])
    rows = []
    for variant in others:
        row = {"variant": variant.label, "best": best.label}
        for set_name, column in (("internal", "validation_auc"), ("external", "external_auc")):
            tests = over_splits(by_variant.loc[variant.label][column], by_variant.loc[best.label][column])
            delong_set = "validation" if set_name == "internal" else "external"
            split_tests = per_split_delong(tables, variant, best, delong_set)
            significant = [r["p_value"] < level for r in split_tests.get("splits", {}).values()]
            split_tests["n_significant"] = int(sum(significant))
            row[set_name] = {"over_splits": tests, "per_split_delong": split_tests}
        if variant in ensembles and best in ensembles:
            a, b = ensembles[variant].labelled, ensembles[best].labelled
            if set(a.index) != set(b.index):
                raise EvaluationError(f"{variant.label} and {best.label} have different labelled external "
                                      "patients; every run must predict the same external set")
            check_same_labels(a["label"], b["label"], f"{variant.label} and {best.label}")
            row["external"]["ensemble_delong"] = paired_delong(a, b)
        rows.append(row)
    _adjust(rows, "internal", lambda r: r["internal"]["over_splits"]["t_test_p"], "paired t-test over splits")
    _adjust(rows, "external", _ensemble_p, "paired DeLong on split ensembles")
    return {"best": best.label, "alpha": alpha, "n_comparisons": len(others), "bonferroni_level": level,
            "comparisons": rows}


def _ensemble_p(row: dict) -> float:
    result = row["external"].get("ensemble_delong")
    return result["p_value"] if result else NAN


def _adjust(rows: list[dict], set_name: str, get_p, method: str) -> None:
    """Store the primary p of each comparison with its Bonferroni and Holm adjustments."""
    p = [get_p(r) for r in rows]
    for row, raw, bonf, hol in zip(rows, p, bonferroni(p), holm(p)):
        row[set_name]["primary"] = {"test": method, "p_value": raw, "p_bonferroni": bonf, "p_holm": hol}

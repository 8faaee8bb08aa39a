"""Comparisons of every variant against the best one.

- best: the highest mean internal (validation) AUC over splits, or the user's --best; external
  labels never enter this choice;
- internal (primary): the Nadeau-Bengio corrected resampled t-test of the per-split validation
  AUCs. Random splits share most of their training patients, so the split AUCs are correlated and
  a plain paired t-test is anti-conservative; the correction inflates the variance by
  (1/J + n_val/n_train). The plain paired t-test and the Wilcoxon signed-rank test (differences
  below 1e-12 are ties) are kept as extra columns;
- external (primary): paired DeLong of the two split ensembles on the external set;
- per split model: paired DeLong on the external set (and on the validation set when both variants
  saw the same validation patients); reported as the median p and the number of splits significant
  at the Bonferroni level alpha / m (m = number of comparisons, as in the study).
Primary p-values are adjusted within each set by Bonferroni (min(1, m p)) and Holm; significance
stars use Holm. Variants with identical predictions are merged before this (core.merge_identical),
so each is compared and counted once.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from scipy.stats import ttest_rel, wilcoxon

from vcpred.evaluate.ensemble import Ensemble, check_same_labels
from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.per_split import scored
from vcpred.evaluate.variants import Variant, parse_variant
from vcpred.stats import delong_test

NAN = math.nan
TIE = 1e-12  # AUC differences smaller than this are rounding, not a difference


def choose_best(per_split: pd.DataFrame, variants: list[Variant], best: str | None) -> Variant:
    """The variant with the highest mean validation AUC (ties: first by name), or the named one."""
    if best:
        return parse_variant(best, variants)
    means = per_split.groupby("variant")["validation_auc"].mean()
    ranked = sorted(variants, key=lambda v: (-means[v.label], v.label))
    return ranked[0]


def best_summary_row(summary: pd.DataFrame) -> pd.Series:
    """The row `choose_best` would pick among summary.csv rows (any subset of variants): the highest
    mean internal (validation) AUC, ties by variant name."""
    internal = summary[summary["set"] == "internal"]
    if internal.empty:
        raise EvaluationError("no internal rows to choose a best variant from")
    return internal.sort_values(["auc_mean", "variant"], ascending=[False, True]).iloc[0]


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


def corrected_resampled_t(best: np.ndarray, variant: np.ndarray, test_train_ratio: float) -> float:
    """Two-sided p of the Nadeau-Bengio corrected resampled t-test over J paired splits.

    d_j = best_j - variant_j; t = mean(d) / sqrt((1/J + n_test/n_train) s^2), s^2 the sample
    variance (ddof 1), Student t with J - 1 degrees of freedom (Nadeau & Bengio 2003)."""
    d = np.array(best, float) - np.array(variant, float)
    j = len(d)
    if j < 2:
        return NAN
    d[np.abs(d) < TIE] = 0.0
    if np.ptp(d) < TIE:  # every split differs by the same amount: none (p = 1), or always that much (t infinite)
        return 1.0 if not d.any() else 0.0
    t = d.mean() / math.sqrt((1 / j + test_train_ratio) * d.var(ddof=1))
    return float(2 * student_t.sf(abs(t), j - 1))


def over_splits(a: pd.Series, b: pd.Series, test_train_ratio: float | None = None) -> dict[str, float]:
    """Tests of per-split AUCs a (variant) vs b (best), paired by split.

    corrected_t_p needs test_train_ratio = n_validation / n_train (internal AUCs only; NaN otherwise)."""
    pairs = pd.concat({"a": a, "b": b}, axis=1).dropna()
    out = {"n_splits": len(pairs), "mean_difference": float((pairs.a - pairs.b).mean()) if len(pairs) else NAN,
           "corrected_t_p": NAN, "t_test_p": NAN, "wilcoxon_p": NAN}
    if len(pairs) < 2:
        return out
    if test_train_ratio is not None:
        out["corrected_t_p"] = corrected_resampled_t(pairs.b.to_numpy(), pairs.a.to_numpy(), test_train_ratio)
    differences = (pairs.b - pairs.a).to_numpy(copy=True)
    differences[np.abs(differences) < TIE] = 0.0
    if not differences.any():  # identical AUCs: no evidence of a difference
        return out | {"t_test_p": 1.0, "wilcoxon_p": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant differences: scipy warns and returns NaN
        out["t_test_p"] = float(ttest_rel(pairs.b, pairs.a).pvalue)
        try:  # zero differences (ties) are dropped, as in Wilcoxon's original test
            out["wilcoxon_p"] = float(wilcoxon(differences, zero_method="wilcox").pvalue)
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
            ratio = test_train_ratio(per_split, variant, best) if set_name == "internal" else None
            tests = over_splits(by_variant.loc[variant.label][column], by_variant.loc[best.label][column], ratio)
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
    _adjust(rows, "internal", lambda r: r["internal"]["over_splits"]["corrected_t_p"],
            "corrected resampled t-test over splits (Nadeau-Bengio)")
    _adjust(rows, "external", _ensemble_p, "paired DeLong on split ensembles")
    return {"best": best.label, "alpha": alpha, "n_comparisons": len(others), "bonferroni_level": level,
            "comparisons": rows}


def test_train_ratio(per_split: pd.DataFrame, *variants: Variant) -> float:
    """Mean n_validation / n_train over the splits of these variants (equal splits: one number)."""
    rows = per_split[per_split["variant"].isin([v.label for v in variants])]
    return float((rows["validation_n"] / rows["n_train"]).mean())


def _ensemble_p(row: dict) -> float:
    result = row["external"].get("ensemble_delong")
    return result["p_value"] if result else NAN


def _adjust(rows: list[dict], set_name: str, get_p, method: str) -> None:
    """Store the primary p of each comparison with its Bonferroni and Holm adjustments."""
    p = [get_p(r) for r in rows]
    for row, raw, bonf, hol in zip(rows, p, bonferroni(p), holm(p)):
        row[set_name]["primary"] = {"test": method, "p_value": raw, "p_bonferroni": bonf, "p_holm": hol}

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

The results are frozen records (`Comparisons`, one `Comparison` per variant), written to
evaluation.json `comparisons` only by outputs.py (jsonio.to_dict) and read back by `read_comparisons`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from scipy.stats import ttest_rel, wilcoxon

from vcpred.evaluate.ensemble import Ensemble, check_same_labels
from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.per_split import scored
from vcpred.evaluate.variants import Variant, parse_variant
from vcpred.jsonio import ABSENT, Absent, from_dict
from vcpred.stats import delong_test

NAN = math.nan
TIE = 1e-12  # AUC differences smaller than this are rounding, not a difference


@dataclass(frozen=True)
class PairedDelong:
    """Paired DeLong test of a variant (auc) against the best (auc_best) on the same labelled patients;
    difference = auc - auc_best with its 95 % CI."""

    auc: float
    auc_best: float
    z: float
    p_value: float
    difference: float
    difference_ci_low: float
    difference_ci_high: float


@dataclass(frozen=True)
class OverSplits:
    """Tests of the per-split AUCs of a variant against the best's, paired by split (NaN where a test
    could not run; corrected_t_p only for the internal AUCs)."""

    n_splits: int
    mean_difference: float
    corrected_t_p: float
    t_test_p: float
    wilcoxon_p: float


@dataclass(frozen=True)
class SplitDelongs:
    """Paired DeLong per common split (split -> result), their median p and how many splits are
    significant at the Bonferroni level; or, when the two variants saw different validation
    patients, `skipped` (why) and no results (median_p and splits ABSENT)."""

    skipped: str | Absent = ABSENT
    median_p: float | Absent = ABSENT
    splits: dict[int, PairedDelong] | Absent = ABSENT
    n_significant: int = 0


@dataclass(frozen=True)
class PrimaryTest:
    """The primary test of one comparison in one set, with its adjusted p-values."""

    test: str
    p_value: float
    p_bonferroni: float
    p_holm: float


@dataclass(frozen=True, kw_only=True)
class SetComparison:
    """A variant against the best in one set (internal: validation patients; external). The external
    set has `ensemble_delong` when both variants have a split ensemble (None when too few of a class)."""

    over_splits: OverSplits
    per_split_delong: SplitDelongs
    ensemble_delong: PairedDelong | None | Absent = ABSENT
    primary: PrimaryTest


@dataclass(frozen=True)
class Comparison:
    """One row of evaluation.json `comparisons.comparisons`: a variant against the best."""

    variant: str
    best: str
    internal: SetComparison
    external: SetComparison


@dataclass(frozen=True)
class Comparisons:
    """evaluation.json `comparisons`: every variant other than the best against it."""

    best: str
    alpha: float
    n_comparisons: int
    bonferroni_level: float
    comparisons: tuple[Comparison, ...]
    best_rule: str = ""
    identical_variants: dict[str, str] = field(default_factory=dict)  # label -> the earlier label it equals

    def of(self, variant: str) -> Comparison | None:
        """The comparison of a variant label with the best (None for the best itself)."""
        return next((c for c in self.comparisons if c.variant == variant), None)


def read_comparisons(data) -> Comparisons:
    """evaluation.json `comparisons` (written by jsonio.to_dict) read back; ValueError when it is not one."""
    return from_dict(Comparisons, data, "comparisons")


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
    t = d.mean() / corrected_standard_error(d, test_train_ratio)
    return float(2 * student_t.sf(abs(t), j - 1))


def corrected_standard_error(differences: np.ndarray, test_train_ratio: float) -> float:
    """Nadeau-Bengio corrected standard error of the mean of J paired per-split differences:
    sqrt((1/J + n_test/n_train) s^2), s^2 their sample variance (ddof 1); NaN for fewer than 2 splits."""
    d = np.asarray(differences, float)
    if len(d) < 2:
        return NAN
    return math.sqrt((1 / len(d) + test_train_ratio) * d.var(ddof=1))


def over_splits(a: pd.Series, b: pd.Series, test_train_ratio: float | None = None) -> OverSplits:
    """Tests of per-split AUCs a (variant) vs b (best), paired by split.

    corrected_t_p needs test_train_ratio = n_validation / n_train (internal AUCs only; NaN otherwise)."""
    pairs = pd.concat({"a": a, "b": b}, axis=1).dropna()
    mean_difference = float((pairs.a - pairs.b).mean()) if len(pairs) else NAN
    if len(pairs) < 2:
        return OverSplits(len(pairs), mean_difference, NAN, NAN, NAN)
    corrected = NAN
    if test_train_ratio is not None:
        corrected = corrected_resampled_t(pairs.b.to_numpy(), pairs.a.to_numpy(), test_train_ratio)
    differences = (pairs.b - pairs.a).to_numpy(copy=True)
    differences[np.abs(differences) < TIE] = 0.0
    if not differences.any():  # identical AUCs: no evidence of a difference
        return OverSplits(len(pairs), mean_difference, corrected, 1.0, 1.0)
    wilcoxon_p = NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant differences: scipy warns and returns NaN
        t_test_p = float(ttest_rel(pairs.b, pairs.a).pvalue)
        try:  # zero differences (ties) are dropped, as in Wilcoxon's original test
            wilcoxon_p = float(wilcoxon(differences, zero_method="wilcox").pvalue)
        except ValueError:
            pass
    return OverSplits(len(pairs), mean_difference, corrected, t_test_p, wilcoxon_p)


def paired_delong(a: pd.DataFrame, b: pd.DataFrame) -> PairedDelong | None:
    """DeLong of a vs b on the same labelled patients (index patient_id); None when too few per class."""
    b = b.loc[a.index]
    y = a["label"].to_numpy(int)
    if min((y == 1).sum(), (y == 0).sum()) < 2:
        return None
    r = delong_test(y, a["probability"].to_numpy(), b["probability"].to_numpy())
    return PairedDelong(float(r.auc_a), float(r.auc_b), float(r.z), float(r.p_value), float(r.difference),
                        float(r.diff_ci_low), float(r.diff_ci_high))


def per_split_delong(tables: dict, variant: Variant, best: Variant, set_name: str, level: float) -> SplitDelongs:
    """Paired DeLong per common split: the results, their median p and how many have p < level
    (Bonferroni). tables: (variant, split) -> table."""
    splits = sorted({k for v, k in tables if v == variant} & {k for v, k in tables if v == best})
    results = {}
    for split in splits:
        a, b = scored(tables[variant, split], set_name), scored(tables[best, split], set_name)
        if set(a.index) != set(b.index):
            if set_name == "external":
                raise EvaluationError(f"split {split}: {variant.label} and {best.label} were scored on "
                                      "different external patients; every run must predict the same external set")
            return SplitDelongs(skipped="validation patients differ between the two variants (different split files)")
        check_same_labels(a["label"], b["label"], f"split {split}: {variant.label} and {best.label}")
        result = paired_delong(a, b)
        if result:
            results[int(split)] = result
    p = [r.p_value for r in results.values()]
    return SplitDelongs(median_p=float(np.median(p)) if p else NAN, splits=results,
                        n_significant=sum(x < level for x in p))


def compare_all(per_split: pd.DataFrame, tables: dict, ensembles: dict[Variant, Ensemble],
                variants: list[Variant], best: Variant, alpha: float = 0.05) -> Comparisons:
    """Every variant other than best against best; see the module docstring for the tests."""
    others = [v for v in variants if v != best]
    m = max(len(others), 1)
    level = alpha / m
    by_variant = per_split.set_index(["variant", "split"])
    found = []  # per variant: (its tests per set, its ensemble DeLong)
    for variant in others:
        tests = {}
        for set_name, column in (("internal", "validation_auc"), ("external", "external_auc")):
            ratio = test_train_ratio(per_split, variant, best) if set_name == "internal" else None
            delong_set = "validation" if set_name == "internal" else "external"
            tests[set_name] = (over_splits(by_variant.loc[variant.label][column], by_variant.loc[best.label][column],
                                           ratio),
                               per_split_delong(tables, variant, best, delong_set, level))
        ensemble: PairedDelong | None | Absent = ABSENT
        if variant in ensembles and best in ensembles:
            a, b = ensembles[variant].labelled, ensembles[best].labelled
            if set(a.index) != set(b.index):
                raise EvaluationError(f"{variant.label} and {best.label} have different labelled external "
                                      "patients; every run must predict the same external set")
            check_same_labels(a["label"], b["label"], f"{variant.label} and {best.label}")
            ensemble = paired_delong(a, b)
        found.append((variant, tests, ensemble))
    internal = primary_tests([t["internal"][0].corrected_t_p for _, t, _ in found],
                             "corrected resampled t-test over splits (Nadeau-Bengio)")
    external = primary_tests([e.p_value if isinstance(e, PairedDelong) else NAN for _, _, e in found],
                             "paired DeLong on split ensembles")
    rows = tuple(
        Comparison(variant.label, best.label,
                   internal=SetComparison(over_splits=t["internal"][0], per_split_delong=t["internal"][1],
                                          primary=primary_internal),
                   external=SetComparison(over_splits=t["external"][0], per_split_delong=t["external"][1],
                                          ensemble_delong=ensemble, primary=primary_external))
        for (variant, t, ensemble), primary_internal, primary_external in zip(found, internal, external))
    return Comparisons(best.label, alpha, len(others), level, rows)


def primary_tests(p_values: list[float], method: str) -> list[PrimaryTest]:
    """The primary p of each comparison in one set with its Bonferroni and Holm adjustments."""
    return [PrimaryTest(method, raw, bonf, hol)
            for raw, bonf, hol in zip(p_values, bonferroni(p_values), holm(p_values))]


def test_train_ratio(per_split: pd.DataFrame, *variants: Variant) -> float:
    """Mean n_validation / n_train over the splits of these variants (equal splits: one number)."""
    rows = per_split[per_split["variant"].isin([v.label for v in variants])]
    return float((rows["validation_n"] / rows["n_train"]).mean())

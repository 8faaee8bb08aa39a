"""Choosing the best variant without chasing noise (docs/evaluation.md, "Choosing the best variant").

The default rule, `margin`, keeps a pre-specified reference (the configuration without images when
there is one, else the first; `--reference` names another) unless a challenger's score beats the
reference's by more than one standard error of the difference; among the challengers that clear
that margin the highest score wins. The score:
- the worst-site out-of-split AUC when at least 2 development sites have 2 cases and 2 controls (a
  model that fails at one scanner should lose however well it ranks on average); its standard error
  is a bootstrap over development patients, stratified by site and label, with a fixed seed and the
  same resamples for every variant (the difference is paired);
- else the mean internal (validation) AUC over splits, with the Nadeau-Bengio corrected resampled
  standard error of the per-split differences (splits share most training patients).
`mean-auc` (the highest mean internal AUC) is the rule vcpred used before; it stays for comparison.
`--best` forces a choice. External labels never enter any of this.

The winner is chosen on the validation patients that then measure it, so its internal AUC is
optimistic: `nested_estimate` chooses again without each split's validation patients, scores that
choice on them, and averages over splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from vcpred.evaluate.compare import TIE, corrected_standard_error
from vcpred.evaluate.out_of_split import pool, validation_rows
from vcpred.evaluate.sites import eligible_sites, with_sites
from vcpred.evaluate.variants import Variant
from vcpred.jsonio import from_dict
from vcpred.stats import MIN_PER_CLASS

MARGIN, MEAN_AUC = "margin", "mean-auc"
RULES = (MARGIN, MEAN_AUC)
FORCED = "--best"
WORST_SITE_SCORE, MEAN_SCORE = "worst-site out-of-split AUC", "mean internal AUC"
BOOTSTRAP_SE = ("bootstrap over development patients stratified by site and label ({n} resamples, seed {seed}) "
                "of the difference of worst-site AUCs")
CORRECTED_SE = "Nadeau-Bengio corrected resampled standard error of the per-split AUC differences"
REPLICATES = 1000
SEED = 26
NAN = math.nan


@dataclass
class Evidence:
    """What a rule reads: per-split validation AUCs and each variant's out-of-split table with sites,
    on the development patients every variant validated."""

    split_aucs: pd.DataFrame  # index split, one column per variant label (NaN: too few of a class)
    pooled: dict[str, pd.DataFrame]  # variant label -> out_of_split table + site, common patients, sorted
    test_train_ratio: float  # mean n_validation / n_train (the corrected standard error needs it)
    eligible: list[str] = field(default_factory=list)  # sites with >= 2 cases and >= 2 controls


@dataclass(frozen=True)
class NestedEstimate:
    """The selected variant's mean internal AUC (chosen on the same patients: optimistic) beside the
    mean over splits k of the AUC on split k of the variant the rule chooses without split k's
    validation patients."""

    selected_auc: float
    nested_auc: float
    optimism: float  # selected_auc - nested_auc
    choices: dict[int, str]  # split -> the variant chosen without its validation patients
    method: str


@dataclass(frozen=True)
class Selection:
    """evaluation.json `selection`: how the best variant was chosen, with every variant's score."""

    rule: str  # margin | mean-auc | --best
    score: str  # the score compared (WORST_SITE_SCORE or MEAN_SCORE)
    score_reason: str  # why this score
    uncertainty: str  # how the standard error of a difference is estimated ('' for mean-auc)
    scores: dict[str, float]
    standard_errors: dict[str, float]  # SE of (variant - reference) score; the reference and mean-auc: none
    reference: str | None  # None for mean-auc
    winner: str
    margin: float  # winner's score - reference's (NaN when the reference wins or there is none)
    margin_se: float  # margin in standard errors
    reason: str
    nested: NestedEstimate | None = None  # None when --best forced the choice

    @property
    def best_rule(self) -> str:
        """evaluation.json comparisons.best_rule: the rule in a phrase."""
        if self.rule == FORCED:
            return "chosen with --best"
        if self.rule == MEAN_AUC:
            return "highest mean internal AUC"
        return (f"the reference {self.reference} unless a challenger's {self.score} is higher by more than one "
                "standard error")


def read_selection(data) -> Selection | None:
    """evaluation.json `selection` read back (None when absent: an evaluation written before it existed);
    ValueError when it is not one."""
    return None if data is None else from_dict(Selection, data, "selection")


def auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The AUC (Mann-Whitney, midranks; per_split's DeLong AUC to rounding), NaN with fewer than 2 of a class."""
    labels = np.asarray(labels, int)
    if min((labels == 1).sum(), (labels == 0).sum()) < MIN_PER_CLASS:
        return NAN
    return float(row_aucs(labels, np.asarray(probabilities, float)[None, :])[0])


@dataclass
class VariantRows:
    """One variant's labelled validation rows as arrays: patient (index into ValidationData.patients),
    split, label, probability."""

    patient: np.ndarray
    split: np.ndarray
    label: np.ndarray
    probability: np.ndarray


@dataclass
class ValidationData:
    """Every variant's labelled validation rows (out_of_split.validation_rows), read once; `evidence`
    pools them per patient, over all splits or without one split and the patients it validated. Arrays,
    because the nested estimate pools once per split and variant."""

    patients: np.ndarray  # every patient id, sorted
    labels: np.ndarray  # per patient: its label (out_of_split.pool refused conflicting ones)
    sites: np.ndarray  # per patient: its development site (None: unknown)
    rows: dict[str, VariantRows]  # variant label -> its rows
    test_train_ratio: float  # mean n_validation / n_train

    @property
    def splits(self) -> list[int]:
        return sorted({int(k) for rows in self.rows.values() for k in np.unique(rows.split)})

    def evidence(self, leave_out: int | None = None) -> Evidence:
        """Per-split AUCs and out-of-split tables on the patients every variant validated; with
        leave_out = k, without split k and without the patients it validated (the nested estimate's
        selection data)."""
        hidden = np.zeros(len(self.patients), bool)
        if leave_out is not None:
            for rows in self.rows.values():
                hidden[rows.patient[rows.split == leave_out]] = True
        splits = [k for k in self.splits if k != leave_out]
        aucs, means, counts = {}, {}, {}
        common = np.ones(len(self.patients), bool)
        for label, rows in self.rows.items():
            kept = (rows.split != leave_out) & ~hidden[rows.patient]
            aucs[label] = {k: auc(rows.label[kept & (rows.split == k)], rows.probability[kept & (rows.split == k)])
                           for k in splits}
            counts[label] = np.bincount(rows.patient[kept], minlength=len(self.patients))
            means[label] = np.bincount(rows.patient[kept], rows.probability[kept], minlength=len(self.patients))
            common &= counts[label] > 0
        pooled = {label: pd.DataFrame({"label": self.labels[common], "probability": means[label][common] /
                                       counts[label][common], "n_splits": counts[label][common],
                                       "site": self.sites[common]},
                                      index=pd.Index(self.patients[common], name="patient_id"))
                  for label in self.rows}
        eligible = eligible_sites(pd.Series(self.labels[common]), pd.Series(self.sites[common]))
        return Evidence(pd.DataFrame(aucs).sort_index(), pooled, self.test_train_ratio, eligible)


def validation_data(tables: dict, variants: list[Variant], sites: pd.Series | None,
                    test_train_ratio: float) -> ValidationData:
    """tables: (variant, split) -> aggregated table (aggregate.aggregate); sites: patient_id -> site."""
    stacked = {v.label: validation_rows({k: t for (w, k), t in tables.items() if w == v}) for v in variants}
    labels = pd.concat([pool(rows)["label"] for rows in stacked.values()])
    labels = labels[~labels.index.duplicated()].sort_index()
    patients = labels.index.to_numpy(dtype=object)
    site = with_sites(labels.to_frame(), sites)["site"].to_numpy(dtype=object)
    codes = pd.Index(patients)
    rows = {label: VariantRows(codes.get_indexer(r.index), r["split"].to_numpy(int), r["label"].to_numpy(int),
                               r["probability"].to_numpy(float)) for label, r in stacked.items()}
    return ValidationData(patients, labels.to_numpy(int), site, rows, test_train_ratio)


def default_reference(variants: list[Variant], image_free: set[str]) -> Variant:
    """The pre-specified, simplest variant: the first configuration without images (no AP), else the
    first variant."""
    return next((v for v in variants if v.configuration in image_free and not v.ap), variants[0])


def worst_site_scores(evidence: Evidence) -> dict[str, float]:
    """Per variant: the lowest AUC over the eligible sites."""
    return {label: min(auc(*_site(t, site)) for site in evidence.eligible) for label, t in evidence.pooled.items()}


def _site(table: pd.DataFrame, site: str) -> tuple[np.ndarray, np.ndarray]:
    part = table[table["site"] == site]
    return part["label"].to_numpy(int), part["probability"].to_numpy(float)


def bootstrap_worst_site(evidence: Evidence, labels: list[str], replicates: int = REPLICATES,
                         seed: int = SEED) -> dict[str, np.ndarray]:
    """Per variant of `labels`: its worst-site AUC in each of `replicates` resamples of the development
    patients, drawn with replacement within each (site, label) stratum; the resamples depend on the seed
    only, so they are the same for every variant (paired differences)."""
    rng = np.random.default_rng(seed)
    first = next(iter(evidence.pooled.values()))
    worst = {label: np.full(replicates, np.inf) for label in labels}
    for site in evidence.eligible:
        at_site = np.flatnonzero((first["site"] == site).to_numpy())
        outcome = first["label"].to_numpy(int)[at_site]
        cases, controls = at_site[outcome == 1], at_site[outcome == 0]
        rows = np.concatenate([cases[rng.integers(0, len(cases), (replicates, len(cases)))],
                               controls[rng.integers(0, len(controls), (replicates, len(controls)))]], axis=1)
        drawn = np.r_[np.ones(len(cases), int), np.zeros(len(controls), int)]
        for label in labels:
            scores = evidence.pooled[label]["probability"].to_numpy(float)[rows]
            worst[label] = np.minimum(worst[label], row_aucs(drawn, scores))
    return worst


def row_aucs(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The AUC of each row of scores (k, n) against the same labels (n,): the Mann-Whitney statistic
    from midranks, one ranking per row (DeLong's placements rank three times)."""
    ranks = rankdata(scores, axis=1)
    cases = labels == 1
    m, n = int(cases.sum()), int((~cases).sum())
    return (ranks[:, cases].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def worst_site_errors(evidence: Evidence, reference: str, challengers: list[str], replicates: int = REPLICATES,
                      seed: int = SEED) -> dict[str, float]:
    """Per challenger: the bootstrap standard error of its worst-site AUC minus the reference's."""
    draws = bootstrap_worst_site(evidence, [reference, *challengers], replicates, seed)
    return {label: float(np.std(draws[label] - draws[reference], ddof=1)) for label in challengers}


def mean_scores(evidence: Evidence) -> dict[str, float]:
    return {label: float(evidence.split_aucs[label].mean()) for label in evidence.split_aucs.columns}


def mean_errors(evidence: Evidence, reference: str) -> dict[str, float]:
    """Per challenger: the corrected resampled standard error of its per-split AUC minus the reference's."""
    out = {}
    for label in evidence.split_aucs.columns:
        if label != reference:
            d = (evidence.split_aucs[label] - evidence.split_aucs[reference]).dropna().to_numpy()
            out[label] = corrected_standard_error(d, evidence.test_train_ratio)
    return out


@dataclass(frozen=True)
class Decision:
    score: str
    score_reason: str
    uncertainty: str
    scores: dict[str, float]
    standard_errors: dict[str, float]
    winner: str
    margin: float
    margin_se: float
    reason: str


def decide(evidence: Evidence, reference: str, rule: str, *, replicates: int = REPLICATES, seed: int = SEED,
           every_error: bool = True) -> Decision:
    """The rule applied to the evidence (see the module docstring). every_error=False estimates the
    standard error only for the challengers that score higher (the others cannot win): the nested
    estimate's folds."""
    if rule == MEAN_AUC:
        scores = mean_scores(evidence)
        winner = min(scores, key=lambda label: (-_ranked(scores[label]), label))
        return Decision(MEAN_SCORE, "the rule compares mean internal AUCs", "", scores, {}, winner, NAN, NAN,
                        f"{winner} has the highest mean internal AUC ({scores[winner]:.4f})")
    if len(evidence.eligible) >= 2:
        scores = worst_site_scores(evidence)
        challengers = [label for label in scores if label != reference
                       and (every_error or _higher(scores[label] - scores[reference]))]
        errors = worst_site_errors(evidence, reference, challengers, replicates, seed)
        why = (f"{len(evidence.eligible)} development sites have at least {MIN_PER_CLASS} cases and "
               f"{MIN_PER_CLASS} controls ({', '.join(evidence.eligible)})")
        score, uncertainty = WORST_SITE_SCORE, BOOTSTRAP_SE.format(n=replicates, seed=seed)
    else:
        scores, errors = mean_scores(evidence), mean_errors(evidence, reference)
        score, uncertainty, why = MEAN_SCORE, CORRECTED_SE, _no_sites_reason(evidence)
    winner, margin, margin_se, reason = _margin_rule(scores, errors, reference, score)
    return Decision(score, why, uncertainty, scores, errors, winner, margin, margin_se, reason)


def _ranked(score: float) -> float:
    return score if math.isfinite(score) else -math.inf


def _no_sites_reason(evidence: Evidence) -> str:
    first = next(iter(evidence.pooled.values()), None)
    if first is None or first["site"].isna().all():
        return "the development sites are unknown (evaluate with --manifest to use them)"
    return (f"fewer than 2 development sites have at least {MIN_PER_CLASS} cases and {MIN_PER_CLASS} controls "
            f"({', '.join(evidence.eligible) or 'none'})")


def _higher(difference: float) -> bool:
    return math.isfinite(difference) and difference > TIE


def _clears(difference: float, se: float) -> bool:
    """More than one standard error better (a zero SE: any real improvement; an unknown SE: never)."""
    if not _higher(difference):
        return False
    return se == 0 or (math.isfinite(se) and difference > se)


def _in_se(difference: float, se: float) -> float:
    if se == 0:
        return math.copysign(math.inf, difference) if difference else 0.0
    return difference / se if math.isfinite(se) else NAN


def _margin_rule(scores: dict[str, float], errors: dict[str, float], reference: str,
                 score: str) -> tuple[str, float, float, str]:
    """(winner, margin, margin in SE, why) under the margin rule."""
    base = scores[reference]
    challengers = [label for label in scores if label != reference]
    if not challengers:
        return reference, NAN, NAN, f"{reference} is the only variant evaluated"
    cleared = [label for label in challengers if _clears(scores[label] - base, errors.get(label, NAN))]
    if cleared:
        winner = min(cleared, key=lambda label: (-scores[label], label))
        margin = scores[winner] - base
        z = _in_se(margin, errors[winner])
        return winner, margin, z, f"{winner} beats {reference} by {margin:.3f} = {z:.1f} SE ({score})"
    higher = [label for label in challengers if _higher(scores[label] - base)]
    if not higher:
        return reference, NAN, NAN, f"no challenger's {score} is higher than {reference}'s ({_text(base)})"
    closest = max(higher, key=lambda label: (_ranked(_in_se(scores[label] - base, errors.get(label, NAN))), label))
    d, se = scores[closest] - base, errors.get(closest, NAN)
    size = f"{_in_se(d, se):.1f} SE" if math.isfinite(se) else "an SE that could not be estimated"
    return reference, NAN, NAN, (f"{reference} kept: no challenger beats it by more than one SE ({score}); the "
                                 f"closest, {closest}, is higher by {d:.3f} = {size}")


def _text(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "n/a"


def nested_estimate(data: ValidationData, evidence: Evidence, reference: str, rule: str, winner: str, *,
                    replicates: int = REPLICATES, seed: int = SEED) -> NestedEstimate:
    """For each split k: the rule's choice without split k's validation patients (and without split k),
    scored by its validation AUC on split k; their mean beside the winner's mean internal AUC."""
    choices, scored = {}, []
    for split in evidence.split_aucs.index:
        choice = decide(data.evidence(leave_out=int(split)), reference, rule, replicates=replicates, seed=seed,
                        every_error=False).winner
        choices[int(split)] = choice
        value = evidence.split_aucs.loc[split, choice]
        if math.isfinite(value):
            scored.append(float(value))
    selected = float(evidence.split_aucs[winner].mean())
    nested = float(np.mean(scored)) if scored else NAN
    return NestedEstimate(selected, nested, selected - nested, choices,
                          "for each split k, the same rule chooses among the variants without split k's validation "
                          "patients (the other splits' data only); the chosen variant's validation AUC on split k, "
                          "averaged over k. Only the choice is nested: the split models, and each run's best epoch, "
                          "were chosen on these validation patients too")


def select(data: ValidationData, evidence: Evidence, *, rule: str = MARGIN, reference: Variant,
           forced: Variant | None = None, replicates: int = REPLICATES, seed: int = SEED) -> Selection:
    """The best variant by the rule (or forced with --best), with every variant's score and, unless
    forced, the nested estimate of the winner's internal AUC."""
    decision = decide(evidence, reference.label, rule, replicates=replicates, seed=seed)
    ref = reference.label if rule == MARGIN else None
    if forced is not None:
        margin = decision.scores[forced.label] - decision.scores[reference.label] if ref else NAN
        se = decision.standard_errors.get(forced.label, NAN)
        return Selection(FORCED, decision.score, decision.score_reason, decision.uncertainty, decision.scores,
                         decision.standard_errors, ref, forced.label, margin,
                         _in_se(margin, se) if forced.label != ref else NAN,
                         f"chosen with --best (the {rule} rule would choose {decision.winner})")
    nested = nested_estimate(data, evidence, reference.label, rule, decision.winner, replicates=replicates, seed=seed)
    return Selection(rule, decision.score, decision.score_reason, decision.uncertainty, decision.scores,
                     decision.standard_errors, ref, decision.winner, decision.margin, decision.margin_se,
                     decision.reason, nested)

"""evaluate.selection and evaluate.sites on constructed tables (no training, no files): the margin
rule keeps the reference against noise, takes a clear winner, uses the worst site when sites exist,
and the nested estimate is what its definition says."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from vcpred.evaluate.out_of_split import out_of_split
from vcpred.evaluate.selection import (
    FORCED,
    MARGIN,
    MEAN_AUC,
    MEAN_SCORE,
    WORST_SITE_SCORE,
    Evidence,
    decide,
    default_reference,
    select,
    validation_data,
)
from vcpred.evaluate.sites import variant_sites
from vcpred.evaluate.variants import Variant

RATIO = 0.25  # n_validation / n_train of 5 random splits at 20 %


def split_evidence(aucs: dict[str, list[float]]) -> Evidence:
    """Evidence holding only per-split AUCs (no sites: the mean internal AUC is the score)."""
    frame = pd.DataFrame(aucs)
    empty = pd.DataFrame({"label": [], "probability": [], "site": []})
    return Evidence(frame, {label: empty for label in aucs}, RATIO, [])


def corrected_se(a: list[float], b: list[float]) -> float:
    d = np.array(a) - np.array(b)
    return math.sqrt((1 / len(d) + RATIO) * d.var(ddof=1))


REFERENCE = [0.70, 0.72, 0.68, 0.71, 0.69]


def test_a_noisy_winner_within_one_se_is_not_chosen():
    noisy = list(np.add(REFERENCE, [0.05, -0.03, 0.04, -0.02, 0.03]))  # higher mean (+0.014), noisy
    evidence = split_evidence({"clinical-only": REFERENCE, "cnn + AP": noisy})
    assert 0.014 < corrected_se(noisy, REFERENCE)  # within one corrected SE
    margin = decide(evidence, "clinical-only", MARGIN)
    assert margin.winner == "clinical-only" and margin.score == MEAN_SCORE
    assert margin.standard_errors["cnn + AP"] == pytest.approx(corrected_se(noisy, REFERENCE))
    assert "no challenger beats it by more than one SE" in margin.reason and "cnn + AP" in margin.reason
    assert decide(evidence, "clinical-only", MEAN_AUC).winner == "cnn + AP"  # the old rule chases it


def test_a_clear_winner_is_chosen_and_the_best_of_those_that_clear_wins():
    clear = list(np.add(REFERENCE, [0.06, 0.05, 0.07, 0.055, 0.065]))
    clearer = list(np.add(REFERENCE, [0.09, 0.08, 0.10, 0.085, 0.095]))
    noisy_top = list(np.add(REFERENCE, [0.30, -0.10, 0.25, -0.05, 0.05]))  # highest mean, not > 1 SE
    evidence = split_evidence({"clinical-only": REFERENCE, "cnn": clear, "vit": clearer, "lucky": noisy_top})
    result = decide(evidence, "clinical-only", MARGIN)
    se = corrected_se(clearer, REFERENCE)
    assert result.winner == "vit"
    assert result.margin == pytest.approx(0.09) and result.margin_se == pytest.approx(0.09 / se)
    assert result.reason == f"vit beats clinical-only by 0.090 = {0.09 / se:.1f} SE (mean internal AUC)"
    assert decide(split_evidence({"clinical-only": REFERENCE, "cnn": clear}), "clinical-only", MARGIN).winner == "cnn"


def sited_tables(seed: int = 0, sizes=(100, 100, 60), n_splits: int = 5):
    """Three development sites; 'clinical' is moderate everywhere, 'image' excellent at A and B and at
    chance at the smaller site C. Each patient is validated by exactly one split (folds), so its
    out-of-split probability is that split's."""
    rng = np.random.default_rng(seed)
    sites = np.repeat(["A", "B", "C"], sizes)
    label = np.concatenate([np.r_[np.ones(n // 2), np.zeros(n - n // 2)] for n in sizes]).astype(int)
    ids = np.array([f"P{i:03d}" for i in range(len(label))])
    clinical = 1 / (1 + np.exp(-(1.0 * label + rng.normal(0, 1, len(label)))))
    strength = np.where(sites == "C", 0.0, 4.0)
    image = 1 / (1 + np.exp(-(strength * label + rng.normal(0, 1, len(label)))))
    fold = rng.permutation(np.arange(len(label)) % n_splits)
    tables = {}
    for name, prob in (("clinical", clinical), ("image", image)):
        variant = Variant(name, False)
        for k in range(n_splits):
            mine = fold == k
            tables[variant, k] = pd.DataFrame({"set": "validation", "label": label[mine].astype(float),
                                               "probability": prob[mine]}, index=pd.Index(ids[mine], name="patient_id"))
    return tables, pd.Series(sites, index=ids), [Variant("clinical", False), Variant("image", False)]


def test_worst_site_is_the_score_when_sites_exist_and_a_collapsed_site_loses():
    tables, sites, variants = sited_tables()
    clinical, image = variants
    data = validation_data(tables, variants, sites, RATIO)
    evidence = data.evidence()
    assert evidence.eligible == ["A", "B", "C"]
    assert evidence.split_aucs["image"].mean() > evidence.split_aucs["clinical"].mean()  # image wins on average
    assert decide(evidence, "clinical", MEAN_AUC).winner == "image"
    margin = decide(evidence, "clinical", MARGIN)
    assert margin.score == WORST_SITE_SCORE and margin.winner == "clinical"
    assert margin.scores["image"] < margin.scores["clinical"]
    # the same with the image model as the reference: clinical-only replaces it, by more than one SE
    swapped = decide(evidence, "image", MARGIN)
    assert swapped.winner == "clinical" and swapped.margin_se > 1
    assert swapped.margin == pytest.approx(margin.scores["clinical"] - margin.scores["image"])
    # without sites the same tables fall back to the mean internal AUC, and say why
    siteless = validation_data(tables, variants, None, RATIO).evidence()
    fallback = decide(siteless, "clinical", MARGIN)
    assert fallback.score == MEAN_SCORE and "unknown" in fallback.score_reason


def test_the_bootstrap_is_seeded_and_paired():
    tables, sites, variants = sited_tables()
    evidence = validation_data(tables, variants, sites, RATIO).evidence()
    first, again = decide(evidence, "image", MARGIN), decide(evidence, "image", MARGIN)
    assert first.standard_errors == again.standard_errors
    assert decide(evidence, "image", MARGIN, seed=1).standard_errors != first.standard_errors
    twin = {**evidence.pooled, "twin": evidence.pooled["image"]}  # identical to the reference: zero SE
    same = Evidence(evidence.split_aucs.assign(twin=evidence.split_aucs["image"]), twin, RATIO, evidence.eligible)
    assert decide(same, "image", MARGIN).standard_errors["twin"] == 0


def test_per_site_auc_is_sklearns_on_the_pooled_out_of_split_table():
    tables, sites, variants = sited_tables(n_splits=3)
    for k, table in list(tables.items()):  # patients validated twice: pooled = mean of their two splits
        variant, split = k
        extra = tables[variant, (split + 1) % 3].iloc[:5].assign(probability=lambda t: 1 - t["probability"])
        tables[k] = pd.concat([table, extra])
    evidence = validation_data(tables, variants, sites, RATIO).evidence()
    for variant in variants:
        pooled = out_of_split({k: t for (v, k), t in tables.items() if v == variant}).join(sites.rename("site"))
        found = variant_sites(evidence.pooled[variant.label], evidence.eligible)
        mine = evidence.pooled[variant.label]
        assert mine["probability"].to_numpy() == pytest.approx(pooled["probability"].to_numpy())
        assert found.pooled.auc == pytest.approx(roc_auc_score(pooled["label"], pooled["probability"]))
        assert found.pooled.n == len(pooled) and found.pooled.auc_ci_low < found.pooled.auc < found.pooled.auc_ci_high
        for site, part in pooled.groupby("site"):
            assert found.sites[site].auc == pytest.approx(roc_auc_score(part["label"], part["probability"]))
            assert found.sites[site].n == len(part) and found.sites[site].n_cases == int(part["label"].sum())
        worst = min(found.sites, key=lambda s: found.sites[s].auc)
        assert found.worst_site == worst and found.worst_site_auc == found.sites[worst].auc


def test_best_overrides_the_rule_and_says_what_the_rule_would_choose():
    tables, sites, variants = sited_tables()
    data = validation_data(tables, variants, sites, RATIO)
    forced = select(data, data.evidence(), rule=MARGIN, reference=variants[0], forced=variants[1])
    assert forced.rule == FORCED and forced.winner == "image" and forced.nested is None
    assert forced.best_rule == "chosen with --best"
    assert forced.reason == "chosen with --best (the margin rule would choose clinical)"
    assert forced.margin == pytest.approx(forced.scores["image"] - forced.scores["clinical"])


def test_the_nested_estimate_chooses_without_each_split_and_scores_the_choice_on_it():
    """Folds (each patient validated once): leaving split k out leaves the other splits as they are, so
    the estimate can be computed by hand from the per-split AUCs."""
    rng = np.random.default_rng(3)
    ids = np.array([f"P{i:03d}" for i in range(150)])
    label = (rng.random(150) < 0.4).astype(float)
    fold = np.arange(150) % 5
    variants = [Variant(f"model-{i}", False) for i in range(4)]  # equal quality: the selected mean is lucky
    tables = {}
    for variant in variants:
        prob = 1 / (1 + np.exp(-(label + rng.normal(0, 1.2, 150))))
        for k in range(5):
            mine = fold == k
            tables[variant, k] = pd.DataFrame({"set": "validation", "label": label[mine], "probability": prob[mine]},
                                              index=pd.Index(ids[mine], name="patient_id"))
    data = validation_data(tables, variants, None, RATIO)
    selection = select(data, data.evidence(), rule=MEAN_AUC, reference=variants[0])
    aucs = pd.DataFrame({v.label: [roc_auc_score(tables[v, k]["label"], tables[v, k]["probability"]) for k in range(5)]
                         for v in variants})
    assert selection.winner == aucs.mean().idxmax()
    expected_choices = {k: aucs.drop(index=k).mean().idxmax() for k in range(5)}
    expected = np.mean([aucs.loc[k, expected_choices[k]] for k in range(5)])
    nested = selection.nested
    assert nested.choices == expected_choices
    assert nested.nested_auc == pytest.approx(expected)
    assert nested.selected_auc == pytest.approx(aucs.mean().max())
    assert nested.optimism == pytest.approx(aucs.mean().max() - expected) and nested.optimism > 0


def test_leaving_a_split_out_hides_its_validation_patients_from_the_other_splits():
    tables, sites, variants = sited_tables(n_splits=3)
    shared = tables[variants[0], 0].index[:4]  # validated by split 0 and again by split 1
    for variant in variants:
        tables[variant, 1] = pd.concat([tables[variant, 1], tables[variant, 0].loc[shared]])
    data = validation_data(tables, variants, sites, RATIO)
    full, without = data.evidence(), data.evidence(leave_out=0)
    assert set(shared) <= set(full.pooled["clinical"].index)
    assert not set(tables[variants[0], 0].index) & set(without.pooled["clinical"].index)
    assert list(without.split_aucs.index) == [1, 2]
    assert without.split_aucs.loc[2, "clinical"] == full.split_aucs.loc[2, "clinical"]


def test_the_default_reference_is_the_configuration_without_images():
    variants = [Variant("cnn", False), Variant("cnn", True), Variant("clinical-only", False), Variant("vit", False)]
    assert default_reference(variants, {"clinical-only"}) == Variant("clinical-only", False)
    assert default_reference(variants, set()) == Variant("cnn", False)


def test_the_mean_auc_rule_is_the_earlier_choose_best():
    from vcpred.evaluate.compare import choose_best

    aucs = {"b": [0.7, 0.8, 0.75], "a": [0.75, 0.75, 0.75], "c": [0.6, 0.9, 0.6]}  # a and b tie: the first name
    variants = [Variant(name, False) for name in aucs]
    per_split = pd.DataFrame([{"variant": n, "split": k, "validation_auc": x}
                              for n, values in aucs.items() for k, x in enumerate(values)])
    assert decide(split_evidence(aucs), "c", MEAN_AUC).winner == choose_best(per_split, variants, None).label == "a"
    assert decide(split_evidence({"only": [0.7, 0.8]}), "only", MARGIN).reason == "only is the only variant evaluated"

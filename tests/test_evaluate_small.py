"""Small cohorts (issue 28): one small-sample rule (vcpred.evaluate.small_sample) that evaluate writes
into evaluation.json, summary.csv and tables.md next to the best variant and the p-values, that the
model card repeats, and calibration curves whose quantile bins adapt to n, with the slope's interval.
Every number is recomputed here independently (pandas, scikit-learn, scipy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from test_evaluate import cohort, make_runs
from vcpred.cli import main
from vcpred.evaluate.calibration import calibration_curves
from vcpred.evaluate.ensemble import Ensemble
from vcpred.evaluate.variants import Variant

EPS = 1e-6  # the clip before logit, as in vcpred.stats.calibration


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def slope_reference(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(slope, its Wald 95 % interval) fitted independently: sklearn's unpenalised logistic regression on
    logit(p), the standard error from a finite-difference Hessian of the log-likelihood."""
    lp = logit(np.clip(p, EPS, 1 - EPS))
    fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(lp[:, None], y)
    beta = np.array([fit.intercept_[0], fit.coef_[0][0]])

    def gradient(b):
        return np.array([np.sum(y - expit(b[0] + b[1] * lp)), np.sum((y - expit(b[0] + b[1] * lp)) * lp)])

    hessian = np.array([approx_fprime(beta, lambda b, i=i: gradient(b)[i], 1e-6) for i in range(2)])
    se = math.sqrt(np.linalg.inv(-hessian)[1, 1])
    return beta[1], beta[1] - 1.959964 * se, beta[1] + 1.959964 * se


def ensemble(n: int, seed: int = 0) -> Ensemble:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    y = (rng.random(n) < expit(2 * logit(p))).astype(float)  # a slope of about 0.5: too extreme
    frame = pd.DataFrame({"label": y, "probability": p}, index=pd.Index([f"P{i}" for i in range(n)]))
    return Ensemble(Variant("m", False), frame, 0.5, {})


@pytest.mark.parametrize("n, bins", [(10, 2), (26, 2), (46, 4), (60, 6), (300, 10)])  # no edge on a patient
def test_the_calibration_curve_has_quantile_bins_of_at_least_10_patients(n, bins):
    """10 patients gave 10 equal-width bins of about one patient each (a curve that zig-zags between 0
    and 1); now at most n // 10 quantile bins, 2 at the least and 10 at the most."""
    ens = ensemble(n)
    found = calibration_curves({ens.variant: ens})["m"]
    y, p = ens.predictions["label"].to_numpy(), ens.predictions["probability"].to_numpy()
    groups = pd.qcut(p, bins, labels=False)  # the same equal-count bins, by pandas
    assert list(found.curve.count) == list(np.bincount(groups))
    assert min(found.curve.count) >= min(10, n // 2)
    assert found.curve.observed_fraction == pytest.approx([y[groups == k].mean() for k in range(bins)], abs=1e-12)
    assert found.curve.mean_predicted == pytest.approx([p[groups == k].mean() for k in range(bins)], abs=1e-12)
    slope, low, high = slope_reference(y, p)
    assert found.slope == pytest.approx(slope, abs=1e-6)
    assert (found.slope_ci_low, found.slope_ci_high) == pytest.approx((low, high), abs=1e-4)


def test_the_rule_is_one_constant_shared_with_the_export_recalibration():
    from vcpred.bundle import export_calibration
    from vcpred.evaluate.small_sample import MIN_PER_CLASS, SampleSize

    assert export_calibration.MIN_PER_CLASS == MIN_PER_CLASS == 10
    assert SampleSize("x", 9, 40).small and SampleSize("x", 40, 9).small and not SampleSize("x", 10, 10).small
    assert not SampleSize("x", 0, 0).small  # no patients: nothing measured, not a small sample
    assert SampleSize("the external set", 3, 7).warning("so what") == (
        "small sample: the external set has 3 case(s) and 7 control(s), fewer than 10 of each; so what")


def evaluate(runs, out) -> dict:
    assert main(["--quiet", "evaluate", str(runs), "--out", str(out)]) == 0
    return json.loads((out / "evaluation.json").read_text())


def test_a_small_evaluation_warns_next_to_the_best_and_the_p_values(tmp_path):
    """20 development patients (6 validation patients a split) and 8 external ones: the best variant and
    its p-values rest on a few patients, and every output says so."""
    patients = cohort(n_dev=20, n_ext=8, n_unlabelled=1, seed=0)
    evaluation = evaluate(make_runs(tmp_path / "runs", patients), tmp_path / "eval")
    per_split = pd.read_csv(tmp_path / "eval" / "per_split.csv")
    small = evaluation["small_sample"]
    # internal: the split whose validation set has the fewest of a class, recomputed from per_split.csv
    first = per_split.groupby("split").first()
    fewest = np.minimum(first["validation_n_cases"], first["validation_n"] - first["validation_n_cases"])
    split = int(fewest.idxmin())
    assert (small["internal"]["cases"], small["internal"]["controls"]) == (
        first.loc[split, "validation_n_cases"], first.loc[split, "validation_n"] - first.loc[split, "validation_n_cases"])
    assert small["internal"]["small"] and f"split {split}" in small["internal"]["warning"]
    external = patients[patients["set"] == "external"]["label"]
    assert (small["external"]["cases"], small["external"]["controls"]) == ((external == 1).sum(), (external == 0).sum())
    assert small["external"]["small"] and small["minimum_per_class"] == 10
    assert small["warnings"] == [small["internal"]["warning"], small["external"]["warning"]]
    summary = pd.read_csv(tmp_path / "eval" / "summary.csv")
    assert summary["small_sample"].all()
    tables = (tmp_path / "eval" / "tables.md").read_text()
    best_line = next(i for i, line in enumerate(tables.splitlines()) if "Best configuration" in line)
    warning = next(i for i, line in enumerate(tables.splitlines()) if line.startswith("**Warning:** Small sample:"))
    assert 0 < warning - best_line <= 4  # right under the sentence that names the best
    assert f"**{evaluation['best']}** (best; small sample, see the warning above)" in tables
    assert tables.count(" (small sample) |") >= 2  # the challengers' p-values, internal and external


def test_a_large_evaluation_has_no_warning(tmp_path, monkeypatch):
    monkeypatch.setattr("test_evaluate.N_DEV", 200)  # the training patients its config.yaml records
    patients = cohort(n_dev=200, n_ext=100)
    evaluation = evaluate(make_runs(tmp_path / "runs", patients, configs={"a": (1.2, []), "b": (0.8, [])}),
                          tmp_path / "eval")
    assert evaluation["small_sample"]["warnings"] == [] and not evaluation["small_sample"]["internal"]["small"]
    assert "small sample" not in (tmp_path / "eval" / "tables.md").read_text().lower()
    assert not pd.read_csv(tmp_path / "eval" / "summary.csv")["small_sample"].any()


@pytest.fixture(scope="module")
def no_external(tmp_path_factory):
    """30 development patients and no external set: two clinical configurations trained, evaluated and
    the first exported with the evaluation (its card)."""
    from tiny_store import build_tiny_cohort
    from vcpred.models import ModelSpec
    from vcpred.training import TrainConfig, TrainingParams, train_run

    root = tmp_path_factory.mktemp("no-external")
    manifest, store, splits = build_tiny_cohort(root / "cohort", n_development=30, n_external=0)
    params = TrainingParams(epochs=1, batch_size=8, lr=1e-3, augment=False, precision="fp32")
    for name, columns in (("clin-a", ("age", "sex")), ("clin-b", ("age",))):
        spec = ModelSpec(weights="random", image=False, clinical_columns=columns)
        for split in range(3):
            train_run(TrainConfig(name, manifest, store, splits, spec, params), split,
                      root / "runs" / name / f"split-{split:02d}")
    evaluation = evaluate(root / "runs", root / "eval")
    assert main(["--quiet", "export", str(root / "runs"), "--configuration", "clin-a", "--eval", str(root / "eval"),
                 "--out", str(root / "model")]) == 0
    return evaluation, (root / "model" / "MODEL_CARD.md").read_text()


def test_the_card_says_what_was_measured_when_there_is_no_external_patient(no_external):
    evaluation, card = no_external
    assert "used only to measure performance" not in card and "calibration on the external set" not in card
    assert "- none: the cohort has no external patients, so no performance or calibration was measured" in card
    assert "There is no external set: no patient outside the development set was scored" in card
    assert "| external | n/a (no external patients) |" in card
    assert "External patients: none in the cohort, so this calibration was measured on the development " \
           "patients' out-of-split probabilities only." in card
    assert evaluation["small_sample"]["external"] is None  # nothing to be small: there is no external set


def test_the_card_carries_the_evaluations_small_sample_warning(no_external):
    evaluation, card = no_external
    warning = evaluation["small_sample"]["internal"]["warning"]
    assert warning and f"- **{warning[0].upper()}{warning[1:]}.**" in card.split("## Performance")[1]
    # the development patients the calibration table was measured on are few too, and the card says so
    calibration = card.split("## Calibration and recalibration")[1]
    assert "**Small sample: the out-of-split set of " in calibration and "fewer than 10 of each" in calibration


def test_the_reports_comparison_tables_carry_the_warning(report_artefacts):
    """The session's tiny evaluation is a small sample: the report says so above Tables 2 and 3, marks
    the best variant and every p-value, in the words of evaluation.json."""
    from html import unescape

    from vcpred.report.inputs import load_inputs
    from vcpred.report.tables import tables_section

    inputs = load_inputs(report_artefacts.evaluation(), manifest=str(report_artefacts.image_manifest()))
    evaluation = inputs.evaluation
    section = unescape(tables_section(inputs))
    warnings = evaluation["small_sample"]["warnings"]
    assert warnings and all(f"{w[0].upper()}{w[1:]}." in section for w in warnings)
    assert section.index('id="small-sample"') < section.index("<table")  # above the tables
    assert f"<strong>{evaluation['best']}</strong> (best; small sample)" in section
    internal = inputs.summary[(inputs.summary["set"] == "internal") & ~inputs.summary["best"]]
    assert section.count(" (small sample)</td>") >= internal["p_value"].notna().sum() > 0

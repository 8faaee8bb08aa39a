"""vcpred.stats against pROC's golden values on aSAH, sklearn, and its own invariants."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import vcpred.stats as stats
from conftest import DATA
from vcpred.errors import VcpredError
from vcpred.stats import calibration, delong_ci, delong_test, net_benefit, roc_auc, youden_threshold
from vcpred.stats.decision import net_benefit_treat_all
from vcpred.stats.errors import StatsError
from vcpred.stats.metrics import sensitivity_specificity

REFERENCE = DATA / "reference"
TOL = 1e-6


@pytest.fixture(scope="module")
def asah() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "aSAH.csv")


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((REFERENCE / "delong_golden.json").read_text())


def test_public_names():
    assert set(stats.__all__) == {"roc_auc", "delong_ci", "delong_test", "youden_threshold",
                                  "calibration", "net_benefit", "DeLongResult",
                                  "CalibrationResult", "CalibrationCurve",
                                  "MIN_PER_CLASS"}  # 2 cases and 2 controls: the rule training shares


@pytest.mark.parametrize("marker", ["s100b", "ndka", "wfns"])
def test_golden_single_marker(asah, golden, marker):
    y, score, want = asah["outcome"].to_numpy(), asah[marker].to_numpy(), golden[marker]
    auc, low, high = delong_ci(y, score)
    threshold, sens, spec = youden_threshold(y, score)
    got = {"auc": auc, "ci_low": low, "ci_high": high, "youden_threshold": threshold,
           "sensitivity": sens, "specificity": spec}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=TOL), key
    assert roc_auc(y, score) == pytest.approx(want["auc"], abs=TOL)


@pytest.mark.parametrize("pair", ["s100b_vs_ndka", "s100b_vs_wfns", "ndka_vs_wfns"])
def test_golden_paired_delong(asah, golden, pair):
    a, b = pair.split("_vs_")
    result = delong_test(asah["outcome"], asah[a], asah[b])
    want = golden[pair]
    got = {"auc1": result.auc_a, "auc2": result.auc_b, "z": result.z, "p_value": result.p_value,
           "diff_ci_low": result.diff_ci_low, "diff_ci_high": result.diff_ci_high}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=TOL), key


def test_golden_max_abs_error_is_tiny(asah, golden):
    errors = []
    for marker in ("s100b", "ndka", "wfns"):
        auc, low, high = delong_ci(asah["outcome"], asah[marker])
        t, se, sp = youden_threshold(asah["outcome"], asah[marker])
        want = golden[marker]
        errors += [abs(auc - want["auc"]), abs(low - want["ci_low"]), abs(high - want["ci_high"]),
                   abs(t - want["youden_threshold"]), abs(se - want["sensitivity"]),
                   abs(sp - want["specificity"])]
    assert max(errors) < 1e-9  # golden values carry 12 significant digits


labels_and_scores = st.integers(min_value=4, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 2 <= sum(y) <= len(y) - 2),
        st.lists(st.integers(0, 6), min_size=n, max_size=n),  # few values: many ties
        st.lists(st.integers(-3000, 3000).map(lambda v: v / 1000), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(labels_and_scores)
def test_auc_equals_sklearn(data):
    y, tied, smooth = data
    assert roc_auc(y, tied) == pytest.approx(roc_auc_score(y, tied), abs=1e-12)
    assert roc_auc(y, smooth) == pytest.approx(roc_auc_score(y, smooth), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(labels_and_scores)
def test_delong_swap_symmetry(data):
    y, a, b = data
    ab, ba = delong_test(y, a, b), delong_test(y, b, a)
    assert ab.auc_a - ab.auc_b == pytest.approx(roc_auc(y, a) - roc_auc(y, b), abs=1e-12)
    assert ab.z == pytest.approx(-ba.z, abs=1e-9)
    assert ab.p_value == pytest.approx(ba.p_value, abs=1e-12)
    assert ab.diff_ci_low == pytest.approx(-ba.diff_ci_high, abs=1e-12)
    assert ab.diff_ci_high == pytest.approx(-ba.diff_ci_low, abs=1e-12)
    assert 0.0 <= ab.p_value <= 1.0


@settings(max_examples=40, deadline=None)
@given(labels_and_scores)
def test_monotone_transform_invariance(data):
    y, tied, smooth = data
    for score in (np.asarray(tied, float), np.asarray(smooth)):
        moved = np.exp(score) * 3 + 1  # strictly increasing
        assert delong_ci(y, moved) == pytest.approx(delong_ci(y, score), abs=1e-12)
        _, se, sp = youden_threshold(y, score)
        assert youden_threshold(y, moved)[1:] == pytest.approx((se, sp), abs=1e-12)
        test = delong_test(y, score, moved)
        assert test.z == 0.0 and test.p_value == 1.0


def test_youden_threshold_reproduces_its_sens_spec():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    score = rng.integers(0, 8, 50) + y
    t, se, sp = youden_threshold(y, score)
    assert sensitivity_specificity(y, score, t) == pytest.approx((se, sp))
    assert t not in set(score.tolist())  # a midpoint between distinct scores


def test_constant_scores():
    y = [0, 0, 1, 1, 0, 1]
    assert roc_auc(y, [2.0] * 6) == 0.5
    assert delong_ci(y, [2.0] * 6) == (0.5, 0.5, 0.5)
    assert youden_threshold(y, [2.0] * 6) == (-np.inf, 1.0, 0.0)
    result = delong_test(y, [2.0] * 6, [1.0] * 6)
    assert (result.z, result.p_value) == (0.0, 1.0)


def test_perfect_separation_ci_is_degenerate():
    y = [0, 0, 0, 1, 1, 1]
    assert delong_ci(y, [1, 2, 3, 4, 5, 6]) == (1.0, 1.0, 1.0)
    assert youden_threshold(y, [1, 2, 3, 4, 5, 6]) == (3.5, 1.0, 1.0)


@pytest.mark.parametrize("y, score, needle", [
    ([0, 0, 0, 0], [1, 2, 3, 4], "0 case(s)"),
    ([0, 0, 1, 0], [1, 2, 3, 4], "at least 2"),
    ([0, 2, 1, 1], [1, 2, 3, 4], "only 0"),
    ([0, np.nan, 1, 1], [1, 2, 3, 4], "NaN"),
    (["a", "b", "a", "b"], [1, 2, 3, 4], "0/1"),
    ([0, 0, 1, 1], [1, 2, np.nan, 4], "y_score holds 1 NaN"),
    ([0, 0, 1, 1], [1, 2, 3], "same length"),
])
def test_bad_input_names_the_argument(y, score, needle):
    with pytest.raises(StatsError, match=None) as info:
        roc_auc(y, score)
    assert needle in str(info.value)
    assert isinstance(info.value, VcpredError)


def test_delong_test_length_mismatch_names_score_b():
    with pytest.raises(StatsError, match="score_b"):
        delong_test([0, 0, 1, 1], [1, 2, 3, 4], [1, 2, 3])


def test_calibration_matches_unpenalised_logistic_regression():
    rng = np.random.default_rng(0)
    lp = rng.normal(0, 1.5, 400)
    y = rng.random(400) < 1 / (1 + np.exp(-(0.3 + 0.7 * lp)))
    prob = 1 / (1 + np.exp(-lp))
    result = calibration(y.astype(int), prob)
    fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(lp[:, None], y)
    assert result.slope == pytest.approx(fit.coef_[0, 0], abs=1e-5)
    assert result.slope_fit_intercept == pytest.approx(fit.intercept_[0], abs=1e-5)
    # CITL: the intercept solves sum(y) = sum(expit(c + lp)).
    fitted = 1 / (1 + np.exp(-(result.intercept + lp)))
    assert fitted.sum() == pytest.approx(y.sum(), abs=1e-6)
    assert result.brier == pytest.approx(np.mean((prob - y) ** 2))
    assert result.curve.count.sum() == 400 and result.converged


def test_calibration_perfect_model_and_errors():
    rng = np.random.default_rng(1)
    prob = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < prob).astype(int)
    result = calibration(y, prob)
    assert result.slope == pytest.approx(1.0, abs=0.15)
    assert result.intercept == pytest.approx(0.0, abs=0.1)
    with pytest.raises(StatsError, match="prob must lie in"):
        calibration([0, 0, 1, 1], [0.1, 0.2, 1.3, 0.4])
    separated = calibration([0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0])  # 0/1 clipped, fit diverges
    assert not separated.converged and np.isnan(separated.slope)


def test_net_benefit():
    y = np.array([1, 1, 0, 0, 0])
    prob = np.array([0.9, 0.4, 0.6, 0.2, 0.1])
    pt = np.array([0.3, 0.5])
    # pt 0.3: treat 0.9, 0.4, 0.6 -> tp 2, fp 1; pt 0.5: treat 0.9, 0.6 -> tp 1, fp 1
    want = [2 / 5 - 1 / 5 * 0.3 / 0.7, 1 / 5 - 1 / 5 * 1.0]
    assert net_benefit(y, prob, pt) == pytest.approx(want)
    assert net_benefit_treat_all(y, pt) == pytest.approx([0.4 - 0.6 * 0.3 / 0.7, 0.4 - 0.6])
    with pytest.raises(StatsError, match="strictly between 0 and 1"):
        net_benefit(y, prob, [0.0, 0.5])


def test_youden_tie_returns_lowest_threshold_like_proc_first_row():
    # thresholds 1.5 and 3.5 both give J = 0.5; pROC lists both, ascending, and we take the first
    assert youden_threshold([0, 1, 0, 1], [1, 2, 3, 4]) == (1.5, 1.0, 0.5)


def test_delong_ci_level():
    rng = np.random.default_rng(7)
    y = np.r_[0, 0, 1, 1, rng.integers(0, 2, 40)]
    score = rng.normal(size=44) + y
    _, low90, high90 = delong_ci(y, score, level=0.90)
    _, low95, high95 = delong_ci(y, score)
    assert low95 < low90 < high90 < high95
    with pytest.raises(StatsError, match="level"):
        delong_ci(y, score, level=95)


def test_calibration_curve_bins():
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    prob = np.array([0.05, 0.15, 0.15, 0.55, 0.6, 0.95, 1.0, 0.0])
    curve = calibration(y, prob).curve
    assert curve.bin_low.tolist() == pytest.approx([0.0, 0.1, 0.5, 0.6, 0.9])
    assert curve.count.tolist() == [2, 2, 1, 1, 2]  # 1.0 falls in the last bin
    assert curve.observed_fraction.tolist() == pytest.approx([0.0, 0.5, 1.0, 0.0, 1.0])
    assert calibration(y, prob, n_bins=2, strategy="quantile").curve.count.sum() == 8

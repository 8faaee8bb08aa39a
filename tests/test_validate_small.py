"""`vcpred validate` on a small cohort (issue 28): the small-sample rule on the page and in metrics.json,
a calibration curve in quantile bins of at least 10 patients with the slope's 95 % interval, and
`--recalibrate` refused below the documented minimum (10 cases and 10 controls) unless --force-small,
which writes the warning into the new model's bundle.json and card and onto the page. Numbers are
recomputed here independently (pandas, scikit-learn, scipy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from vcpred.cli import main
from vcpred.evaluate.small_sample import MIN_PER_CLASS
from vcpred.predict import load_bundle

CLINICAL = dict(image=False, clinical_columns=("age", "sex"))
EPS = 1e-6  # the clip before logit, as in vcpred.stats.calibration


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def validate(model, manifest, out, *extra) -> int:
    return main(["validate", "--model", str(model), "--manifest", str(manifest), "--out", str(out), *extra])


def slope_reference(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(slope, Wald 95 % interval): sklearn's unpenalised fit on logit(p), SE from a finite-difference Hessian."""
    lp = logit(np.clip(p, EPS, 1 - EPS))
    fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(lp[:, None], y)
    beta = np.array([fit.intercept_[0], fit.coef_[0][0]])

    def gradient(b):
        r = y - expit(b[0] + b[1] * lp)
        return np.array([r.sum(), (r * lp).sum()])

    hessian = np.array([approx_fprime(beta, lambda b, i=i: gradient(b)[i], 1e-6) for i in range(2)])
    se = math.sqrt(np.linalg.inv(-hessian)[1, 1])
    return beta[1], beta[1] - 1.959964 * se, beta[1] + 1.959964 * se


@pytest.fixture(scope="module")
def small(artefacts, tmp_path_factory):
    """The tiny clinical model validated on the tiny cohort's 10 external patients (5 cases, 5 controls)."""
    model = artefacts.exported("clinical", **CLINICAL)
    manifest, _, _ = artefacts.tiny_cohort()
    out = tmp_path_factory.mktemp("small") / "out"
    assert validate(model, manifest, out, "--set", "external") == 0
    return model, manifest, out


def test_ten_patients_are_flagged_on_the_page_and_in_metrics_json(small):
    _, _, out = small
    metrics = json.loads((out / "metrics.json").read_text())
    table = pd.read_csv(out / "predictions.csv")
    y = table["label"].to_numpy(int)
    assert metrics["small_sample"] == {
        "where": "the validation cohort", "cases": int(y.sum()), "controls": int((y == 0).sum()),
        "minimum_per_class": 10, "small": True, "warning": metrics["small_sample"]["warning"]}
    assert metrics["small_sample"]["warning"].startswith(
        "small sample: the validation cohort has 5 case(s) and 5 control(s), fewer than 10 of each;")
    html = (out / "validation.html").read_text()
    assert 'id="small-sample"' in html and "Small sample: the validation cohort has 5 case(s)" in html


def test_the_calibration_curve_has_two_bins_of_five_and_the_slope_its_interval(small):
    """10 patients were drawn in 10 equal-width bins (a zig-zag of 0s and 1s) and the slope had no
    caveat; now 2 quantile bins of 5 and the slope's Wald 95 % interval, on the page too."""
    _, _, out = small
    metrics = json.loads((out / "metrics.json").read_text())
    table = pd.read_csv(out / "predictions.csv")
    y, p = table["label"].to_numpy(int), table["probability"].to_numpy()
    curve = metrics["calibration_curve"]["clinical"]["curve"]
    upper = p > np.median(p)  # 10 distinct probabilities: the median falls between the 5th and the 6th
    assert curve["count"] == [5, 5]
    assert curve["observed_fraction"] == pytest.approx([y[~upper].mean(), y[upper].mean()], abs=1e-12)
    assert curve["mean_predicted"] == pytest.approx([p[~upper].mean(), p[upper].mean()], abs=1e-12)
    slope, low, high = slope_reference(y, p)
    assert metrics["calibration_slope"] == pytest.approx(slope, abs=1e-6)
    assert (metrics["calibration_slope_ci_low"], metrics["calibration_slope_ci_high"]) == pytest.approx((low, high),
                                                                                                       abs=1e-4)
    html = (out / "validation.html").read_text()
    interval = f"95 % CI {low:.2f} to {high:.2f}, Wald"
    assert f"{slope:.3f} ({interval})" in html  # in the numbers table
    assert "in 2 quantile bins of about 5 patients" in html
    assert f"With 10 patients (5 events) the curve and the calibration slope are imprecise: slope {slope:.3f} " \
           f"({interval})." in html


def test_recalibration_below_the_minimum_is_refused_before_scoring(small, tmp_path, capsys):
    model, manifest, _ = small
    assert validate(model, manifest, tmp_path / "out", "--set", "external", "--recalibrate", str(tmp_path / "m")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot recalibrate on {manifest}: the patients to score are 5 case(s) and 5 "
                          "control(s), fewer than the 10 of each a recalibration needs")
    assert "--force-small" in err and "nothing was scored" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "m").exists()


def test_force_small_is_only_for_recalibrate(small, tmp_path, capsys):
    model, manifest, _ = small
    assert validate(model, manifest, tmp_path / "out", "--force-small") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --force-small lets --recalibrate fit") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    assert f"{MIN_PER_CLASS} of each" in " ".join(capsys.readouterr().out.split())  # the help names the minimum


def test_a_forced_small_recalibration_says_so_in_the_model_its_card_and_the_page(small, tmp_path, capsys):
    model, manifest, _ = small
    new = tmp_path / "m"
    assert validate(model, manifest, tmp_path / "out", "--set", "external", "--recalibrate", str(new),
                    "--force-small") == 0
    assert "small sample: the recalibration cohort has 5 case(s) and 5 control(s)" in capsys.readouterr().err
    record = load_bundle(new).meta.recalibration  # every hash checked
    small_sample = record["small_sample"]
    assert (small_sample["cases"], small_sample["controls"], small_sample["minimum_per_class"]) == (5, 5, 10)
    assert small_sample["forced"] is True and "--force-small" in small_sample["warning"]
    sentence = small_sample["warning"][0].upper() + small_sample["warning"][1:]
    assert f"**Warning: {sentence}.**" in (new / "MODEL_CARD.md").read_text()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["recalibration"]["small_sample"]["warning"] == small_sample["warning"]
    html = (tmp_path / "out" / "validation.html").read_text()
    assert 'id="small-recalibration"' in html and sentence in html

"""`vcpred export`'s recalibration (issue 26): fitted on the development patients' out-of-split
probabilities, its cross-fitted calibration recorded in bundle.json and the card, applied by
prediction with the thresholds mapped so no patient changes category; refused below the minimum
and turned off by --no-recalibrate; composed by `vcpred validate --recalibrate`. Every fit and
calibration number is recomputed here independently (sklearn, scipy) from the runs' predictions.csv."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from vcpred.bundle import export_configuration
from vcpred.bundle.export_calibration import FOLDS, MIN_PER_CLASS, SEED, export_calibration
from vcpred.cli import main
from vcpred.cohort import load_manifest, make_splits, save_splits
from vcpred.models import ModelSpec
from vcpred.predict import load_bundle, predict_patient
from vcpred.training import TrainConfig, TrainingParams, train_run

EPS = 1e-6  # the clip before logit, as in vcpred.stats.calibration
CLINICAL = ModelSpec(image=False, clinical_columns=("age",), weights="random")  # sex gives the label away
COHORT = {"manifest": "m.csv", "manifest_sha256": None, "synthetic": True}


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def weaken_age(manifest) -> None:
    """Ages that tell the classes apart only partly (the tiny cohort's nearly separate them, and a
    calibration model cannot be fitted on probabilities that separate)."""
    rng = np.random.default_rng(3)
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["age"] = str(72 + 6 * int(row["label"]) + int(rng.integers(-8, 9)))
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A clinical-only configuration trained on 5 splits of 96 development patients (32 cases): enough
    out-of-split patients to recalibrate. Clinical-only: a logistic regression, seconds to train."""
    from tiny_store import build_tiny_cohort

    folder = tmp_path_factory.mktemp("recal")
    manifest, store, _ = build_tiny_cohort(folder / "cohort", n_development=96, n_external=10)
    weaken_age(manifest)
    cohort = load_manifest(manifest)
    splits = save_splits(folder / "splits5.json", make_splits(cohort, n_splits=5, val_fraction=0.3, seed=0),
                         cohort=cohort, seed=0, val_fraction=0.3)
    params = TrainingParams(epochs=1, batch_size=8, lr=1e-3, augment=False, precision="fp32")
    for split in range(5):
        train_run(TrainConfig("clin", manifest, store, splits, CLINICAL, params), split,
                  folder / "runs" / "clin" / f"split-{split:02d}")
    return folder / "runs", manifest


@pytest.fixture(scope="module")
def bundles(runs, tmp_path_factory):
    """(recalibrated, not recalibrated) exports of the same runs."""
    folder = tmp_path_factory.mktemp("bundles")
    return (export_configuration(runs[0], "clin", folder / "recal"),
            export_configuration(runs[0], "clin", folder / "raw", recalibrate=False))


def pooled(runs_folder) -> pd.DataFrame:
    """Each development patient's mean validation probability over the splits that validated it, read
    here from the runs' predictions.csv (clinical-only: one row per patient)."""
    tables = [pd.read_csv(path) for path in sorted((runs_folder / "clin").glob("split-*/predictions.csv"))]
    rows = pd.concat(tables)
    rows = rows[(rows["set"] == "validation") & rows["label"].notna()]
    return rows.groupby("patient_id").agg(label=("label", "first"), probability=("probability", "mean"))


def slope_model(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of logit P(y) = a + b logit(p), by sklearn's unpenalised logistic regression."""
    fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit(np.clip(p, EPS, 1 - EPS))[:, None], y)
    return float(fit.intercept_[0]), float(fit.coef_[0][0])


def calibration_reference(y: np.ndarray, p: np.ndarray) -> dict:
    lp = logit(np.clip(p, EPS, 1 - EPS))
    _, slope = slope_model(y, p)
    citl = brentq(lambda c: float(np.sum(y - expit(c + lp))), -30, 30, xtol=1e-14)
    return {"mean_minus_prevalence": p.mean() - y.mean(), "calibration_slope": slope, "calibration_intercept": citl}


def test_the_recalibration_is_fitted_on_the_out_of_split_predictions(runs, bundles):
    table = pooled(runs[0])
    y, p = table["label"].to_numpy(int), table["probability"].to_numpy()
    assert min(y.sum(), len(y) - y.sum()) >= MIN_PER_CLASS  # the fixture is above the minimum
    intercept, slope = slope_model(y, p)
    raw = json.loads((bundles[0] / "bundle.json").read_text())
    record = raw["recalibration"]
    assert (record["intercept"], record["slope"]) == pytest.approx((intercept, slope), abs=1e-6)
    assert record["fitted_at"] == "export" and record["cohort"]["set"] == "development"
    assert record["cohort"]["n"] == len(y) and record["cohort"]["events"] == int(y.sum())
    assert record["cohort"]["patients"] == list(table.index)
    # round trip: the typed bundle carries the same record and the validation calibration
    meta = load_bundle(bundles[0]).meta
    assert meta.recalibration == record and meta.validation_calibration["recalibrated"] is True


def test_the_validation_calibration_is_cross_fitted_over_patients(runs, bundles):
    table = pooled(runs[0])
    y, p = table["label"].to_numpy(int), table["probability"].to_numpy()
    crossed = np.empty_like(p)
    for train, held_out in StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED).split(p, y):
        a, b = slope_model(y[train], p[train])
        crossed[held_out] = expit(a + b * logit(np.clip(p[held_out], EPS, 1 - EPS)))
    validation = load_bundle(bundles[0]).meta.validation_calibration
    assert (validation["folds"], validation["seed"], validation["patients"]) == (5, 0, len(y))
    for key, expected in [("before", calibration_reference(y, p)), ("after", calibration_reference(y, crossed))]:
        for name, value in expected.items():
            assert validation[key][name] == pytest.approx(value, abs=1e-6), (key, name)
    # not the apparent calibration: on the patients it was fitted on, the slope would be exactly 1
    assert abs(validation["after"]["calibration_slope"] - 1) > 1e-3
    card = (bundles[0] / "MODEL_CARD.md").read_text()
    section = card.split("## Calibration and recalibration\n", 1)[1].split("\n## ", 1)[0]
    after = validation["after"]
    assert f"{after['calibration_slope']:.2f}" in section and "cross-fitting" in section
    assert f"{validation['before']['calibration_slope']:.2f} → {after['calibration_slope']:.2f}" in section


def test_prediction_applies_it_and_no_patient_changes_category(runs, bundles):
    recalibrated, raw = (load_bundle(b) for b in bundles)
    a, b = recalibrated.meta.recalibration["intercept"], recalibrated.meta.recalibration["slope"]
    assert recalibrated.threshold == pytest.approx(expit(a + b * logit(raw.threshold)), abs=1e-12)
    for mine, theirs in zip(recalibrated.meta.splits, raw.meta.splits):
        assert mine.threshold == pytest.approx(expit(a + b * logit(theirs.threshold)), abs=1e-12)
    assert recalibrated.meta.model_id != raw.meta.model_id
    # the threshold `vcpred evaluate` computes (the report checks a bundle against it) is still known
    assert recalibrated.meta.split_models_threshold == raw.threshold == raw.meta.split_models_threshold
    changed = 0
    for record in load_manifest(runs[1]).records:
        before = predict_patient(raw, record, explain=False, strict_keys=False).result
        after = predict_patient(recalibrated, record, explain=False, strict_keys=False).result
        p = np.clip(before["probability"], EPS, 1 - EPS)
        assert after["probability"] == pytest.approx(expit(a + b * logit(p)), abs=1e-12)
        assert after["category"] == before["category"] and after["borderline"] == before["borderline"]
        assert after["recalibration"]["fitted_at"] == "export"
        changed += abs(after["probability"] - before["probability"]) > 1e-3
    assert changed > 0.8 * len(load_manifest(runs[1]).records)  # the probabilities do change


def test_no_recalibrate_exports_the_split_models_probabilities_and_says_so(runs, bundles, tmp_path, capsys):
    meta = load_bundle(bundles[1]).meta
    assert meta.recalibration is None
    validation = meta.validation_calibration
    assert validation["recalibrated"] is False and validation["reason"] == "turned off (--no-recalibrate)"
    assert validation["before"] is not None and validation["after"] is None
    card = (bundles[1] / "MODEL_CARD.md").read_text()
    assert "Not recalibrated: turned off (--no-recalibrate)" in card
    assert main(["export", str(runs[0]), "--configuration", "clin", "--out", str(tmp_path / "m"),
                 "--no-recalibrate"]) == 0
    assert "not recalibrated: turned off (--no-recalibrate)" in capsys.readouterr().out
    assert main(["export", str(runs[0]), "--configuration", "clin", "--out", str(tmp_path / "n")]) == 0
    assert "recalibrated on the out-of-split probabilities of" in capsys.readouterr().out


def tables_of(labels: list[int], probabilities: list[float]) -> dict[int, pd.DataFrame]:
    """One split's aggregated table holding these validation patients (and no external ones)."""
    index = pd.Index([f"P{i:03d}" for i in range(len(labels))], name="patient_id")
    return {0: pd.DataFrame({"set": "validation", "label": labels, "probability": probabilities}, index=index)}


def overlapping(cases: int, controls: int) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(1)
    labels = [1] * cases + [0] * controls
    return labels, list(expit(0.4 * rng.normal(size=len(labels)) + 0.3 * np.array(labels)))


def test_too_few_development_patients_are_not_recalibrated():
    done = export_calibration(tables_of(*overlapping(MIN_PER_CLASS, 30)), enabled=True, cohort=COHORT)
    assert done.record is not None and done.validation["after"] is not None
    refused = export_calibration(tables_of(*overlapping(MIN_PER_CLASS - 1, 30)), enabled=True, cohort=COHORT)
    assert refused.record is None and refused.validation["after"] is None
    assert refused.validation["reason"] == ("the 39 development patients with out-of-split predictions hold 9 "
                                            "case(s) and 30 control(s); recalibration needs at least 10 of each")
    assert refused.line.startswith("not recalibrated: the 39 development patients")
    assert refused.validation["before"]["n"] == 39  # the split models' own calibration is still measured


def test_probabilities_that_separate_the_classes_are_not_recalibrated():
    labels = [1] * 12 + [0] * 12
    probabilities = [0.6 + 0.01 * i for i in range(12)] + [0.1 + 0.01 * i for i in range(12)]
    refused = export_calibration(tables_of(labels, probabilities), enabled=True, cohort=COHORT)
    assert refused.record is None and "does not converge" in refused.validation["reason"]


def test_the_shared_tiny_export_is_below_the_minimum(artefacts):
    """The session's tiny clinical model: too few out-of-split patients, so exported as before."""
    folder = artefacts.exported("clinical", image=False, clinical_columns=("age", "sex"))
    meta = load_bundle(folder).meta
    assert meta.recalibration is None and "needs at least 10 of each" in meta.validation_calibration["reason"]
    assert "Not recalibrated: the" in (folder / "MODEL_CARD.md").read_text()


def test_validate_recalibrate_composes_with_the_exports_recalibration(runs, bundles, tmp_path, capsys):
    manifest = runs[1]
    exported = load_bundle(bundles[0]).meta.recalibration
    assert main(["validate", "--model", str(bundles[0]), "--manifest", str(manifest), "--out", str(tmp_path / "v"),
                 "--recalibrate", str(tmp_path / "m2"), "--force-small"]) == 0  # its 10 external patients
    out = capsys.readouterr().out
    assert "the model is already recalibrated (at export on the development patients' out-of-split " \
           "probabilities" in out and "composing" in out
    record = load_bundle(tmp_path / "m2").meta.recalibration
    assert record["previous"] == exported
    assert record["slope"] == pytest.approx(exported["slope"] * record["fit"]["slope"], abs=1e-12)
    assert record["intercept"] == pytest.approx(record["fit"]["intercept"]
                                                + record["fit"]["slope"] * exported["intercept"], abs=1e-12)
    assert "fitted at export on the development patients" in (tmp_path / "m2" / "MODEL_CARD.md").read_text()


def test_the_report_shows_the_validation_calibration_before_and_after(bundles):
    from vcpred.report.model_card import card_section

    meta = load_bundle(bundles[0]).meta
    before, after = meta.validation_calibration["before"], meta.validation_calibration["after"]
    html = card_section(SimpleNamespace(model_dir=bundles[0], bundle=meta, chosen="clin"))
    assert (f"calibration slope {before['calibration_slope']:.2f} → {after['calibration_slope']:.2f}" in html
            and "cross-fitted over 5 folds" in html and "Calibration and recalibration" in html)
    raw = load_bundle(bundles[1]).meta
    html = card_section(SimpleNamespace(model_dir=bundles[1], bundle=raw, chosen="clin"))
    assert f"calibration slope {before['calibration_slope']:.2f}, " in html and "not recalibrated: turned off" in html


def test_precision_auto_reads_the_bf16_check_on_the_recalibrated_scale():
    """A slope b spreads probabilities, and bf16's rounding with them: auto bounds the change of the
    probability reported by the recorded change times the map's steepest slope (2 at p = 0.5 for a = 0, b = 2)."""
    from vcpred.models.precision import choose
    from vcpred.predict.bundle import recalibrated_check

    check = {"max_probability_change": 6e-4, "tolerance": 1e-3, "patients": 8}
    assert recalibrated_check(check, None) is check
    scaled = recalibrated_check(check, {"intercept": 0.0, "slope": 2.0})
    assert scaled["recalibration_gain"] == pytest.approx(2.0, rel=1e-6)
    assert scaled["max_probability_change"] == pytest.approx(1.2e-3, rel=1e-6)
    assert choose("auto", check, native=True)[0] == "bf16" and choose("auto", scaled, native=True)[0] == "fp32"
    shrinking = recalibrated_check(check, {"intercept": 0.0, "slope": 0.5})  # b < 1 is steep near 0 and 1
    assert shrinking["recalibration_gain"] > 1

"""The site-shift check (vcpred.evaluate.site_shift, `vcpred cohort shift`, the report's section; issue 26).

The cohort (tests/site_shift_support.py): development sites A and B acquired identically, external site D
with larger pixels, another contrast curve, more noise and a stronger bias field. The check must find D and
find nothing between A and B; its summaries and AUCs are recomputed here from the store's files with numpy
and scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import write_manifest
from site_shift_support import OTHER_SCANNER, ROUTINE, build_site_store
from vcpred.cli import main
from vcpred.cohort import load_manifest
from vcpred.evaluate import shift_command
from vcpred.evaluate.site_shift import (
    DEFAULT_FOLDS, DEFAULT_PERMUTATIONS, Classifier, check_site_shift,
)
from vcpred.imaging.store import npz_path

GROUPS = [("A", "development", 40, ROUTINE), ("B", "development", 40, ROUTINE), ("D", "external", 30, OTHER_SCANNER)]
CLASSIFIER = Classifier(folds=5, seed=0, permutations=10)


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """(cohort, store, the check's result)."""
    cohort, store = build_site_store(tmp_path_factory.mktemp("sites"), GROUPS)
    return cohort, store, check_site_shift(cohort, store, CLASSIFIER)


def by_name(shift) -> dict:
    return {s.name: s for s in shift.separations}


def raw(store: Path, patient_id: str) -> dict:
    """The patient's arrays read straight from its npz (not through vcpred's store reader)."""
    with np.load(npz_path(store, patient_id)) as npz:
        return {k: npz[k] for k in ("frames", "frame_offsets", "main_slice", "crop_box", "spacing")}


def neighbour_steps(image: np.ndarray) -> np.ndarray:
    return np.concatenate([np.abs(np.diff(image, axis=0)).ravel(), np.abs(np.diff(image, axis=1)).ravel()])


def test_the_external_site_acquired_differently_is_easy_to_tell_apart(sites):
    _, _, shift = sites
    found = by_name(shift)
    external, site_d = found["external set vs the development set"], found["site D vs the development patients of "
                                                                             "the other sites"]
    for separation in (external, site_d):
        assert separation.auc >= 0.9 and separation.level == "easy"
        assert separation.auc > separation.chance_high
    assert (external.n_group, external.n_rest) == (30, 80)
    assert "easy to tell apart" in external.verdict and "an external AUC measures transfer" in external.verdict
    assert shift.headline is external


def test_the_external_set_and_its_one_site_are_fitted_once(sites, monkeypatch):
    """The external set against the development set and its only site against the other sites' development
    patients are the same rows and labels: the same numbers, computed once."""
    from vcpred.evaluate import site_shift

    cohort, store, shift = sites
    calls = []
    real = site_shift.cross_validated_auc
    monkeypatch.setattr(site_shift, "cross_validated_auc", lambda *a: calls.append(1) or real(*a))
    again = by_name(check_site_shift(cohort, store, CLASSIFIER))
    external, site_d = again["external set vs the development set"], again[
        "site D vs the development patients of the other sites"]
    assert (external.auc, external.chance_mean, external.chance_sd) == (site_d.auc, site_d.chance_mean,
                                                                         site_d.chance_sd)
    assert external.auc == by_name(shift)["external set vs the development set"].auc
    assert len(calls) == (len(again) - 1) * (1 + CLASSIFIER.permutations)  # each comparison and its shuffles


def test_identically_acquired_sites_are_not_told_apart(sites):
    """A and B share one acquisition: each is compared with the other's 40 patients alone (D is no part of it),
    so their AUCs are one number. A cross-validated AUC of unrelated scores at 40 vs 40 patients has SD about
    0.10 (measured over 40 draws of pure-noise features), so 0.25 is 2.5 SD; the seed is fixed."""
    _, _, shift = sites
    found = by_name(shift)
    site_a = found["site A vs the development patients of the other sites"]
    site_b = found["site B vs the development patients of the other sites"]
    assert (site_a.n_group, site_a.n_rest) == (40, 40)
    assert site_a.auc == pytest.approx(site_b.auc)
    assert abs(site_a.auc - 0.5) < 0.25
    assert site_a.level == "hard" and site_a.auc < site_a.chance_high
    assert "cannot be told apart" in site_a.verdict and "shuffled" in site_a.verdict
    assert 0.35 < site_a.chance_mean < 0.65 and 0 < site_a.chance_sd < 0.2


def test_the_summaries_equal_numpy_on_the_stored_arrays(sites):
    cohort, store, shift = sites
    rows = []
    for record in cohort.records:
        arrays = raw(store, record.patient_id)
        top, left, bottom, right = arrays["crop_box"]
        crop = arrays["main_slice"][top:bottom, left:right].astype(np.float64)
        frame = arrays["frames"][list(arrays["frame_offsets"]).index(0), 0].astype(np.float64)
        rows.append({"site": record.site, "pixel_mm": arrays["spacing"][1], "crop_px": bottom - top,
                     "crop_cv": crop.std() / crop.mean(), "crop_p95": np.percentile(crop, 95),
                     "crop_noise": np.median(neighbour_steps(crop)),
                     "frame_noise": np.median(neighbour_steps((frame - frame.mean()) / frame.std()))})
    expected = pd.DataFrame(rows)
    table = shift.summaries[shift.summaries["kind"] == "site"].set_index(["group", "measure"])
    for site, part in expected.groupby("site"):
        for measure in ("pixel_mm", "crop_px", "crop_cv", "crop_p95", "crop_noise", "frame_noise"):
            q1, median, q3 = np.percentile(part[measure], [25, 50, 75])
            got = table.loc[(site, measure)]
            assert (got["median"], got["q1"], got["q3"]) == pytest.approx((median, q1, q3), rel=1e-9), (site, measure)
            assert got["n"] == len(part)
    # what the sites were drawn with shows through: D's pixels are larger, so its 40 mm crop has fewer of them
    assert table.loc[("D", "crop_px"), "median"] < table.loc[("A", "crop_px"), "q1"]


def independent_features(store: Path, patient_id: str) -> np.ndarray:
    """The documented features: the z-scored main frame's histogram (12 bins of 0.5 over -3..3, two open
    tails) as fractions, and the median |neighbour difference| at lags 1 and 2."""
    arrays = raw(store, patient_id)
    frame = arrays["frames"][list(arrays["frame_offsets"]).index(0), 0].astype(np.float64)
    z = (frame - frame.mean()) / frame.std()
    histogram = np.histogram(z, np.r_[-np.inf, np.arange(-3, 3.01, 0.5), np.inf])[0] / z.size
    lags = [np.median(np.concatenate([np.abs(z[k:] - z[:-k]).ravel(), np.abs(z[:, k:] - z[:, :-k]).ravel()]))
            for k in (1, 2)]
    return np.r_[histogram, lags]


def test_the_aucs_equal_scikit_learn_cross_validation_on_independent_features(sites):
    cohort, store, shift = sites
    features = np.vstack([independent_features(store, r.patient_id) for r in cohort.records])
    site = np.array([r.site for r in cohort.records])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    cases = {"external set vs the development set": (np.ones(len(site), bool), site == "D"),
             "site A vs the development patients of the other sites": (site != "D", site == "A")}
    for name, (rows, in_group) in cases.items():
        scores = cross_val_predict(model, features[rows], in_group[rows].astype(int),
                                   cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
        assert by_name(shift)[name].auc == pytest.approx(roc_auc_score(in_group[rows], scores), abs=1e-12), name


def test_the_command_writes_json_markdown_and_tables(sites, tmp_path, capsys):
    cohort, store, _ = sites
    out = tmp_path / "shift"
    args = ["cohort", "shift", str(cohort.manifest_path), "--store", str(store), "--out", str(out),
            "--permutations", "0"]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "The external set is easy to tell apart" in said and f"to {out}" in said
    record = json.loads((out / "site_shift.json").read_text())
    assert record["generator"] == "vcpred cohort shift" and record["classifier"]["permutations"] == 0
    assert [s["name"] for s in record["separations"]][0] == "external set vs the development set"
    assert record["summaries"]["site"]["D"]["pixel_mm"]["median"] > 1.0
    assert record["scanners"] == {"A": {"Vendor A M1": 40}, "B": {"Vendor B M1": 40}, "D": {"Vendor D M1": 30}}
    separability = pd.read_csv(out / "separability.csv")
    assert separability["chance_mean"].isna().all() and (separability["auc"] > 0).all()
    assert len(pd.read_csv(out / "patients.csv")) == len(cohort.records)
    markdown = (out / "site_shift.md").read_text()
    assert "| site D vs the development patients of the other sites | 30 | 80 | 5 |" in markdown
    assert main(args) == 0  # an earlier result of the command is replaced


def test_the_command_defaults_are_the_checks(sites):
    assert (shift_command.DEFAULT_FOLDS, shift_command.DEFAULT_PERMUTATIONS) == (DEFAULT_FOLDS, DEFAULT_PERMUTATIONS)


def rewritten_manifest(cohort, folder: Path, change) -> Path:
    """The cohort's manifest with `change(table)` applied, written into folder."""
    table = pd.read_csv(cohort.manifest_path, dtype=str, keep_default_na=False)
    table = change(table)
    return write_manifest(folder, table.to_dict("records"), header=list(table.columns), make_images=False)


def no_site_column(table):
    return table.drop(columns="site")


def one_site(table):
    return table.assign(site="A")


def a_blank_site(table):
    table.loc[3, "site"] = ""
    return table


def a_patient_not_prepared(table):
    extra = table.iloc[[0]].assign(patient_id="NEW1")
    return pd.concat([table, extra], ignore_index=True)


@pytest.mark.parametrize("change,message", [
    (no_site_column, "has no site column"),
    (one_site, "names one site (A)"),
    (a_blank_site, "1 patient(s) have no site (P003)"),
    (a_patient_not_prepared, "1 of 111 patient(s)"),
])
def test_a_cohort_the_check_cannot_compare_is_one_clear_error(sites, tmp_path, capsys, change, message):
    cohort, store, _ = sites
    manifest = rewritten_manifest(cohort, tmp_path / "cohort", change)
    assert main(["cohort", "shift", str(manifest), "--store", str(store), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_missing_store_and_bad_options_are_clear_errors(sites, tmp_path, capsys):
    cohort, store, _ = sites
    base = ["cohort", "shift", str(cohort.manifest_path), "--out", str(tmp_path / "out")]
    assert main([*base, "--store", str(tmp_path / "nothing")]) == 2
    assert "is not a prepared store" in capsys.readouterr().err
    assert main([*base, "--store", str(store), "--folds", "1"]) == 2
    assert "--folds must be 2 or more" in capsys.readouterr().err
    assert main([*base, "--store", str(store), "--permutations", "1"]) == 2
    assert "--permutations must be 0" in capsys.readouterr().err


def test_a_site_too_small_to_cross_validate_is_said_so(tmp_path):
    cohort, store = build_site_store(tmp_path, [("A", "development", 12, ROUTINE), ("B", "development", 1, ROUTINE),
                                                ("D", "external", 6, OTHER_SCANNER)])
    found = by_name(check_site_shift(cohort, store, Classifier(permutations=0)))
    small = found["site B vs the development patients of the other sites"]
    assert small.auc is None and small.level == "too few" and "too few patients (1 against 12)" in small.verdict
    assert found["site D vs the development patients of the other sites"].folds == 5


def test_the_report_section_shows_the_check(sites, monkeypatch):
    from vcpred.report import site_shift as section

    cohort, store, shift = sites
    monkeypatch.setattr(section, "CLASSIFIER", CLASSIFIER)
    # the fixture's check stands for the one the section would make: the same patients, files and classifier
    monkeypatch.setattr(section, "_done", {section._key(cohort, store, CLASSIFIER): shift})
    html = str(section.site_shift_section(SimpleNamespace(cohort=cohort, store_dir=store)))
    assert f'<section id="{section.ANCHOR}">' in html
    assert shift.headline.verdict in html  # the same numbers as the check itself
    assert "site D vs the development patients of the other sites" in html and "crop_noise_rel" in html
    missing = str(section.site_shift_section(SimpleNamespace(cohort=cohort, store_dir=None)))
    assert "not found: no site-shift check" in missing
    single = load_manifest(rewritten_manifest(cohort, store.parent / "single", one_site), check_files=False)
    assert "No site-shift check: " in str(section.site_shift_section(SimpleNamespace(cohort=single, store_dir=store)))

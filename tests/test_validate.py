"""`vcpred validate`: an exported model scored on a labelled cohort exactly as `vcpred predict` scores
it, every metric recomputed here independently (sklearn, scipy, R's pROC for the DeLong CI), the
equality with `vcpred evaluate`'s split ensemble, unreadable patients listed and left out, and
logistic recalibration written as a new model directory."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from conftest import siblings, snapshot
from predict_support import BODY, T2_LUMBAR
from vcpred.cli import main
from vcpred.predict import load_bundle

CLINICAL = dict(image=False, clinical_columns=("age", "sex"))
CNN = dict(backbone="resnet_test", method="lora")
EPS = 1e-6  # the clip before logit, as in vcpred.stats.calibration


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def _has_proc() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(pROC)"], capture_output=True, timeout=60).returncode == 0


def proc_ci(labels: np.ndarray, scores: np.ndarray, folder: Path) -> tuple[float, float, float]:
    """R's pROC: auc and its DeLong 95 % CI (as in tests/test_stats_proc.py)."""
    pd.DataFrame({"y": labels, "p": scores}).to_csv(folder / "roc.csv", index=False)
    script = folder / "ci.R"
    script.write_text('suppressMessages(library(pROC)); a <- commandArgs(trailingOnly = TRUE); d <- read.csv(a[1]);'
                      'r <- roc(d$y, d$p, direction = "<", levels = c(0, 1), quiet = TRUE);'
                      'ci <- as.numeric(ci.auc(r, method = "delong")); write.csv(data.frame(low = ci[1], auc = ci[2],'
                      ' high = ci[3]), a[2], row.names = FALSE)')
    subprocess.run(["Rscript", str(script), str(folder / "roc.csv"), str(folder / "ci.csv")], check=True,
                   capture_output=True, timeout=120)
    row = pd.read_csv(folder / "ci.csv").iloc[0]
    return float(row.auc), float(row.low), float(row.high)


def calibration_reference(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(intercept (calibration-in-the-large), slope, slope-model intercept), fitted independently:
    the slope by sklearn's unpenalised logistic regression on logit(p), the intercept with the slope
    fixed at 1 (offset logit(p)) by solving its score equation sum(y - expit(c + lp)) = 0."""
    lp = logit(np.clip(p, EPS, 1 - EPS))
    fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(lp[:, None], y)
    citl = brentq(lambda c: float(np.sum(y - expit(c + lp))), -30, 30, xtol=1e-14)
    return citl, float(fit.coef_[0][0]), float(fit.intercept_[0])


def validate(model, manifest, out, *extra) -> int:
    return main(["validate", "--model", str(model), "--manifest", str(manifest), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def clinical_validation(artefacts, tmp_path_factory):
    """The clinical-only tiny model validated on the tiny cohort's external patients."""
    model = artefacts.exported("clinical", **CLINICAL)
    manifest, _, _ = artefacts.tiny_cohort()
    out = tmp_path_factory.mktemp("validate") / "out"
    assert validate(model, manifest, out, "--set", "external") == 0
    return model, manifest, out


def test_every_metric_is_recomputed_independently(clinical_validation, tmp_path):
    model, manifest, out = clinical_validation
    metrics = json.loads((out / "metrics.json").read_text())
    table = pd.read_csv(out / "predictions.csv")
    y, p = table["label"].to_numpy(int), table["probability"].to_numpy()
    bundle = load_bundle(model)
    assert len(table) == metrics["n"] == 10 and metrics["events"] == y.sum() == 5 and metrics["controls"] == 5
    assert set(table["set"]) == {"external"} and metrics["threshold"] == bundle.threshold
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    positive = p >= bundle.threshold
    assert metrics["sensitivity"] == pytest.approx(positive[y == 1].mean(), abs=1e-12)
    assert metrics["specificity"] == pytest.approx((~positive)[y == 0].mean(), abs=1e-12)
    citl, slope, _ = calibration_reference(y, p)
    assert metrics["calibration_intercept"] == pytest.approx(citl, abs=1e-6)
    assert metrics["calibration_slope"] == pytest.approx(slope, abs=1e-6)
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    # the per-model spread: the probability is the mean of the split models', low/high their range
    splits = table[[c for c in table.columns if c.startswith("p_split_")]].to_numpy()
    assert splits.shape == (10, 2)
    assert np.allclose(table["probability"], splits.mean(axis=1)) and np.allclose(table["low"], splits.min(axis=1))
    assert np.allclose(table["sd"], splits.std(axis=1, ddof=1)) and np.allclose(table["high"], splits.max(axis=1))
    assert [m["auc"] for m in metrics["split_models"]] == pytest.approx([roc_auc_score(y, s) for s in splits.T])
    if _has_proc():
        auc, low, high = proc_ci(y, p, tmp_path)
        assert (metrics["auc"], metrics["auc_ci_low"], metrics["auc_ci_high"]) == pytest.approx((auc, low, high),
                                                                                               abs=1e-9)


def test_the_scores_are_those_of_predict(clinical_validation, tmp_path):
    model, manifest, out = clinical_validation
    assert main(["--quiet", "predict", "--model", str(model), "--manifest", str(manifest), "--out",
                 str(tmp_path / "p")]) == 0
    predicted = pd.read_csv(tmp_path / "p" / "predictions.csv").set_index("patient_id")
    validated = pd.read_csv(out / "predictions.csv").set_index("patient_id")
    joined = validated.join(predicted, suffixes=("", "_predict"))
    for column in ("probability", "sd", "low", "high", "threshold"):
        assert np.allclose(joined[column], joined[f"{column}_predict"], rtol=0, atol=1e-6), column
    assert (joined["category"] == joined["category_predict"]).all()


def test_it_equals_the_evaluations_split_ensemble(artefacts, tmp_path):
    """The acceptance rule of issue 19 on the tiny cohort: validate on the external patients gives the
    evaluation's ensemble AUC (and CI, sensitivity, specificity, calibration) of the exported variant."""
    runs = artefacts.trained_runs("clinical", **CLINICAL)
    manifest, _, _ = artefacts.tiny_cohort()
    assert main(["--quiet", "evaluate", str(runs), "--out", str(tmp_path / "eval")]) == 0
    # the split models' own probabilities, as the evaluation scores them (an export's recalibration changes
    # the calibration and the threshold's scale, not the AUC or who is called high risk)
    assert main(["--quiet", "export", str(runs), "--configuration", "clinical", "--out", str(tmp_path / "model"),
                 "--no-recalibrate"]) == 0
    assert validate(tmp_path / "model", manifest, tmp_path / "val", "--set", "external") == 0
    ensemble = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["ensembles"]["clinical"]
    metrics = json.loads((tmp_path / "val" / "metrics.json").read_text())
    for key in ("auc", "auc_ci_low", "auc_ci_high", "threshold", "sensitivity", "specificity", "calibration_slope",
                "calibration_intercept", "brier"):
        assert metrics[key] == pytest.approx(ensemble[key], abs=1e-4), key
    assert (metrics["n"], metrics["events"]) == (ensemble["n"], ensemble["n_cases"])


def test_the_outputs_the_page_and_the_figures(clinical_validation, capsys):
    model, _, out = clinical_validation
    assert sorted(p.name for p in out.iterdir()) == [".vcpred-output.json", "excluded.csv", "figures",
                                                     "metrics.json", "predictions.csv", "validation.html"]
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["calibration.png", "decision_curve.png", "roc.png"]
    assert all((out / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in ("roc.png", "calibration.png"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["generator"] == "vcpred validate" and metrics["not_computed"] == {} and metrics["excluded"] == []
    assert metrics["ci_method"] == "DeLong" and metrics["model"]["model_id"] == load_bundle(model).meta.model_id
    assert metrics["cohort"]["set"] == "external" and metrics["cohort"]["is_training_manifest"] is True
    curve = metrics["calibration_curve"]["clinical"]["curve"]
    assert sum(curve["count"]) == 10 and len(metrics["decision_curve"]["thresholds"]) == 91
    html = (out / "validation.html").read_text()
    assert "Research use only, not a medical device" in html and html.count("data:image/png;base64,") == 3
    assert "nan" not in html.replace("nanc", "") and "External validation of" in html


def test_the_training_manifests_development_patients_are_left_out(artefacts, tmp_path, capsys):
    """The model's training and validation patients are never scored (tests/test_validate_overlap.py: also
    renamed, re-saved or marked external)."""
    manifest, _, _ = artefacts.tiny_cohort()
    assert validate(artefacts.exported("clinical", **CLINICAL), manifest, tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert "24 patient(s) of this cohort are the model's own (24 it was trained or tuned on" in err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n"] == 10 and metrics["development_patients_scored"] == 0
    assert [e["patient_id"] for e in metrics["excluded"]] == [f"P{i:03d}" for i in range(24)]
    assert all("trained or tuned on this patient" in e["reason"] for e in metrics["excluded"])


def test_a_patient_without_a_clinical_value_is_left_out_with_the_reason(artefacts, tmp_path):
    manifest, _, _ = artefacts.tiny_cohort()
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table = table[table["set"] == "external"]
    table.loc[table["patient_id"] == "P104", "age"] = ""
    table["image_t2"] = [str(manifest.parent / p) for p in table["image_t2"]]
    table.to_csv(tmp_path / "manifest.csv", index=False)
    assert validate(artefacts.exported("clinical", **CLINICAL), tmp_path / "manifest.csv", tmp_path / "out") == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # P104 has no age, which this model needs: left out with the reason (--allow-missing would impute it)
    assert [(e["patient_id"], "age" in e["reason"]) for e in metrics["excluded"]] == [("P104", True)]
    assert metrics["n"] == 9


def _own_copy(path: Path, stamp: int) -> Path:
    """The real T2 as a file of its own bytes (another gzip time stamp, the same pixels): validate
    scores the same image files under two ids once (vcpred.validate.same_images)."""
    data = bytearray(T2_LUMBAR.read_bytes())
    data[4:8] = stamp.to_bytes(4, "little")  # the gzip header's MTIME
    path.write_bytes(bytes(data))
    return path


def _image_manifest(folder: Path) -> Path:
    """Real-T2 patients, each its own copy, with the ROI moved a little per patient (so the CNN's
    probabilities differ), one with a missing image, one whose image is not an image, one without a label."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.nii.gz").write_bytes(b"not a NIfTI file")
    header = "patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label"
    rows = []
    for i, (dr, dc) in enumerate([(0, 0), (-6, 3), (5, -4), (-3, -6), (8, 6), (2, 9)]):
        r0, c0, r1, c1 = BODY.row_min + dr, BODY.col_min + dc, BODY.row_max + dr, BODY.col_max + dc
        image = _own_copy(folder / f"R{i}.nii.gz", i + 1)
        rows.append(f"R{i},external,{image},{BODY.slice},{r0},{c0},{r1},{c1},{i % 2}")
    rows += [f"MISSING,external,{folder / 'gone.nii.gz'},19,103,140,127,171,1",
             f"BROKEN,external,{folder / 'broken.nii.gz'},19,103,140,127,171,0",
             f"UNLABELLED,external,{T2_LUMBAR},19,103,140,127,171,"]
    path = folder / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_unreadable_patients_are_listed_and_the_others_scored(artefacts, tmp_path, capsys):
    model = artefacts.exported("resnetlora", **CNN)
    manifest = _image_manifest(tmp_path / "cohort")
    assert validate(model, manifest, tmp_path / "out") == 0
    captured = capsys.readouterr()
    out = tmp_path / "out"
    excluded = pd.read_csv(out / "excluded.csv").set_index("patient_id")
    assert list(excluded.index) == ["MISSING", "BROKEN", "UNLABELLED"]
    assert "gone.nii.gz" in excluded.loc["MISSING", "reason"] and "no label" in excluded.loc["UNLABELLED", "reason"]
    assert "3 patient(s) excluded" in captured.out and "MISSING: " in captured.out and "BROKEN: " in captured.out
    table = pd.read_csv(out / "predictions.csv")
    assert list(table["patient_id"]) == [f"R{i}" for i in range(6)] and table["probability"].nunique() == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["patient_id"] for e in metrics["excluded"]] == ["MISSING", "BROKEN", "UNLABELLED"]
    assert metrics["auc"] == pytest.approx(roc_auc_score(table["label"], table["probability"]), abs=1e-12)
    assert "MISSING" in (out / "validation.html").read_text()
    # exactly as predict scores them (predict --manifest refuses a manifest naming a missing file: without it)
    readable = tmp_path / "readable.csv"
    readable.write_text("".join(line for line in manifest.read_text().splitlines(keepends=True) if "MISSING" not in line))
    assert main(["--quiet", "predict", "--model", str(model), "--manifest", str(readable), "--precision", "fp32",
                 "--out", str(tmp_path / "p")]) == 0  # validate's default precision
    predicted = pd.read_csv(tmp_path / "p" / "predictions.csv").set_index("patient_id")
    assert np.allclose(table["probability"], predicted.loc[table["patient_id"], "probability"], rtol=0, atol=1e-5)


def test_too_few_patients_of_a_class_say_why_and_draw_nothing_they_cannot(artefacts, tmp_path):
    """One case among the patients: no AUC, CI or calibration, each with the real reason (the classes are
    both present, one is too small), and no figure that needs them; the page never shows 'nan'."""
    manifest, _, _ = artefacts.tiny_cohort()
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table = table[table["set"] == "external"]
    table = table[(table["label"] == "0") | (table["patient_id"] == "P101")]
    table["image_t2"] = [str(manifest.parent / p) for p in table["image_t2"]]
    small = tmp_path / "small.csv"
    table.to_csv(small, index=False)
    assert validate(artefacts.exported("clinical", **CLINICAL), small, tmp_path / "out") == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["n"], metrics["events"]) == (6, 1) and metrics["auc"] is None and metrics["brier"] is None
    reason = metrics["not_computed"]["auc"]
    assert "has 1 case and 5 controls" in reason and "both classes" not in reason
    assert metrics["sensitivity"] is not None and "sensitivity" not in metrics["not_computed"]
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == []
    html = (tmp_path / "out" / "validation.html").read_text()
    assert "not drawn (needs at least 2 labelled cases and 2 controls; has 1 case and 5 controls)" in html
    assert "nan" not in html


def test_a_cohort_where_no_patient_can_be_read_replaces_nothing(artefacts, tmp_path, capsys):
    manifest, _, _ = artefacts.tiny_cohort()
    out = tmp_path / "out"
    assert validate(artefacts.exported("clinical", **CLINICAL), manifest, out, "--set", "external") == 0  # an earlier result
    before = snapshot(out)
    broken = tmp_path / "broken.csv"
    broken.write_text("patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label\n"
                      f"A,external,{tmp_path / 'gone.nii.gz'},19,103,140,127,171,1\n")
    assert validate(artefacts.exported("resnetlora", **CNN), broken, out) == 2
    err = capsys.readouterr().err
    assert "patient 'A' excluded" in err and "none of the 1 patient(s)" in err and "left as it was" in err
    assert snapshot(out) == before and siblings(out) == ["broken.csv", "out"]


def test_recalibration_writes_a_new_model_and_leaves_the_original(artefacts, tmp_path, capsys):
    model = artefacts.exported("clinical", **CLINICAL)
    manifest, _, _ = artefacts.tiny_cohort()
    original = snapshot(model)
    new = tmp_path / "recalibrated"
    assert validate(model, manifest, tmp_path / "out", "--set", "external", "--recalibrate", str(new),
                    "--force-small") == 0  # 5 cases and 5 controls: below the minimum (test_validate_small.py)
    assert snapshot(model) == original  # the original bundle is untouched
    assert "recalibrated (intercept" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    y, p = table["label"].to_numpy(int), table["probability"].to_numpy()
    _, slope, intercept = calibration_reference(y, p)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    r = metrics["recalibration"]
    assert (r["intercept"], r["slope"]) == pytest.approx((intercept, slope), abs=1e-6)
    # the new bundle loads (every hash checked) and records where the update came from
    recalibrated = load_bundle(new)
    record = recalibrated.meta.recalibration
    assert record["cohort"]["n"] == 10 and record["cohort"]["events"] == 5 and record["cohort"]["set"] == "external"
    assert record["cohort"]["manifest"] == str(manifest) and len(record["cohort"]["manifest_sha256"]) == 64
    assert record["recalibrated_from"] == load_bundle(model).meta.model_id
    assert (record["intercept"], record["slope"]) == pytest.approx((intercept, slope), abs=1e-6)
    assert recalibrated.meta.model_id.startswith("clinical+recal@")
    threshold = expit(intercept + slope * logit(load_bundle(model).threshold))
    assert recalibrated.threshold == pytest.approx(threshold, abs=1e-9)
    assert "## Recalibration (model updating)" in (new / "MODEL_CARD.md").read_text()
    # predict with it: the probability mapped through the update, the same category
    assert main(["--quiet", "predict", "--model", str(new), "--manifest", str(manifest), "--out",
                 str(tmp_path / "p")]) == 0
    predicted = pd.read_csv(tmp_path / "p" / "predictions.csv").set_index("patient_id").loc[table["patient_id"]]
    assert np.allclose(predicted["probability"], expit(intercept + slope * logit(np.clip(p, EPS, 1 - EPS))), atol=1e-9)
    assert list(predicted["category"]) == list(table["category"])
    # on the cohort it was fitted on it is calibrated by construction (apparent), with the same AUC; validate
    # leaves those patients out of a validation of the new model (tests/test_validate_overlap.py)
    apparent = r["apparent"]
    assert apparent["calibration_slope"] == pytest.approx(1, abs=1e-6)
    assert apparent["calibration_intercept"] == pytest.approx(0, abs=1e-6)
    assert apparent["auc"] == pytest.approx(metrics["auc"], abs=1e-12)
    assert validate(new, manifest, tmp_path / "again", "--set", "external") == 2
    assert "every labelled patient" in capsys.readouterr().err


def test_recalibrating_twice_composes_the_updates(artefacts, tmp_path):
    """Two recalibrations on two halves of the external patients (a model's recalibration patients are left
    out of its validation); the composed update is checked on predictions in test_validate_overlap.py."""
    model = artefacts.exported("clinical", **CLINICAL)
    manifest, _, _ = artefacts.tiny_cohort()
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table["image_t2"] = [str(manifest.parent / p) for p in table["image_t2"]]
    halves = []
    for name, ids in (("first", [f"P10{i}" for i in range(6)]), ("second", [f"P10{i}" for i in range(6, 10)])):
        table[table["patient_id"].isin(ids)].to_csv(tmp_path / f"{name}.csv", index=False)
        halves.append(tmp_path / f"{name}.csv")
    assert validate(model, halves[0], tmp_path / "a", "--recalibrate", str(tmp_path / "m1"), "--force-small") == 0
    assert validate(tmp_path / "m1", halves[1], tmp_path / "b", "--recalibrate", str(tmp_path / "m2"),
                    "--force-small") == 0
    first, second = (load_bundle(tmp_path / m).meta.recalibration for m in ("m1", "m2"))
    assert second["previous"]["intercept"] == first["intercept"]
    assert second["slope"] == pytest.approx(first["slope"] * second["fit"]["slope"])
    assert second["intercept"] == pytest.approx(second["fit"]["intercept"] + second["fit"]["slope"] * first["intercept"])
    assert validate(tmp_path / "m2", manifest, tmp_path / "c", "--set", "external") == 2  # all 10 recalibrated on


def test_recalibration_never_writes_over_the_model_or_out(artefacts, tmp_path, capsys):
    model = artefacts.exported("clinical", **CLINICAL)
    manifest, _, _ = artefacts.tiny_cohort()
    copy = shutil.copytree(model, tmp_path / "model")
    before = snapshot(copy)
    assert validate(copy, manifest, tmp_path / "out", "--recalibrate", str(copy), "--force") == 2
    assert "must be a new folder outside the model directory" in capsys.readouterr().err
    assert validate(copy, manifest, tmp_path / "out", "--recalibrate", str(tmp_path / "out")) == 2
    assert "must be different folders" in capsys.readouterr().err
    assert snapshot(copy) == before and not (tmp_path / "out").exists()


def test_out_holding_other_files_is_refused_before_the_work(artefacts, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    manifest, _, _ = artefacts.tiny_cohort()
    assert validate(artefacts.exported("clinical", **CLINICAL), manifest, tmp_path / "mine") == 2
    assert "is not empty and is not an earlier `vcpred validate` output" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"

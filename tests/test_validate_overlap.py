"""Issue 27: `vcpred validate` scored the model's own training patients as external validation when the
manifest was re-saved (CRLF), its `set` column edited, or the model directory copied away from its runs
(AUC 0.825 reported against 0.617), and a recalibrated model on its own recalibration cohort ("intercept
-0.00, slope 1.00", no warning). The bundle now records who it was trained, tuned and recalibrated on
(ids and image digests) and validate leaves them out, whatever the manifest's bytes; its checks come
before any patient is scored."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from vcpred.bundle.files import BUNDLE_FILE, CARD_FILE, write_bundle_json
from vcpred.cli import main
from vcpred.predict import load_bundle

CLINICAL = dict(image=False, clinical_columns=("age", "sex"))
EPS = 1e-6  # the clip before logit, as in vcpred.stats.calibration


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def validate(model, manifest, out, *extra) -> int:
    return main(["validate", "--model", str(model), "--manifest", str(manifest), "--out", str(out), *extra])


def image_bytes(patient_id: str) -> bytes:
    """Stand-in image content of one patient (the tiny cohort's image files are empty)."""
    return f"the scan of {patient_id}\n".encode() * 50


@pytest.fixture(scope="module")
def own(artefacts, tmp_path_factory):
    """The session's clinical runs and tiny cohort copied, each patient's image file given its own bytes,
    exported, then the runs deleted: a model directory away from its runs. Returns (model, manifest)."""
    runs = artefacts.trained_runs("clinical", **CLINICAL)
    manifest, _, _ = artefacts.tiny_cohort()
    work = tmp_path_factory.mktemp("own")
    cohort = Path(shutil.copytree(manifest.parent, work / manifest.parent.name))
    copied = Path(shutil.copytree(runs, work / runs.name))  # runs find their inputs relative to themselves
    for image in (cohort / "images").iterdir():
        image.write_bytes(image_bytes(image.name.removesuffix(".nii.gz")))
    assert main(["--quiet", "export", str(copied), "--configuration", "clinical", "--out", str(work / "model")]) == 0
    shutil.rmtree(copied)
    return work / "model", cohort / "manifest.csv"


def rows(manifest: Path) -> pd.DataFrame:
    """The manifest's rows as text, image paths absolute (to write it elsewhere)."""
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table["image_t2"] = [str(manifest.parent / p) for p in table["image_t2"]]
    return table


def write_csv(table: pd.DataFrame, path: Path, *, crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, lineterminator="\r\n" if crlf else "\n")
    return path


def renamed_with_its_images(table: pd.DataFrame, old: str, new: str, folder: Path) -> pd.DataFrame:
    """The patient `old` renamed `new`, its image file copied to another path."""
    folder.mkdir(parents=True, exist_ok=True)
    row = table["patient_id"] == old
    copy = folder / f"{new}.nii.gz"
    shutil.copyfile(table.loc[row, "image_t2"].item(), copy)
    table.loc[row, ["patient_id", "image_t2"]] = [new, str(copy)]
    return table


def test_export_records_who_the_model_was_trained_and_tuned_on(own, artefacts):
    model, manifest = own
    meta = load_bundle(model).meta
    known = meta.training_patients
    splits = json.loads((manifest.parent / "splits.json").read_text())["splits"]
    used = {pid for k in (0, 1) for pid in splits[k]["train"] + splits[k]["val"]}  # the exported splits 0 and 1
    assert known.patients == sorted(used) and len(used) == 24 and not any(p.startswith("P1") for p in used)
    assert known.images == {pid: [hashlib.sha256(image_bytes(pid)).hexdigest()] for pid in used}
    assert "splits 0, 1 of splits.json" in known.source
    raw = json.loads((model / BUNDLE_FILE).read_text())["training_patients"]
    assert raw["patients"] == known.patients  # in bundle.json itself, covered by its meta_sha256
    # the shared tiny cohort's image files are empty: the same patients, recognised by id only
    assert load_bundle(artefacts.exported("clinical", **CLINICAL)).meta.training_patients.images == {}


def test_image_digests_ignore_names_and_need_content(tmp_path):
    from vcpred.bundle.known_patients import input_digest

    for folder, names in (("a", ("1.dcm", "2.dcm")), ("b", ("z.dcm", "y.dcm"))):
        (tmp_path / folder).mkdir()
        for name, content in zip(names, (b"slice one", b"slice two")):
            (tmp_path / folder / name).write_bytes(content)
    assert input_digest(tmp_path / "a") == input_digest(tmp_path / "b") is not None
    (tmp_path / "b" / "extra.dcm").write_bytes(b"another slice")
    assert input_digest(tmp_path / "a") != input_digest(tmp_path / "b")
    (tmp_path / "empty.nii.gz").touch()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert input_digest(tmp_path / "empty.nii.gz") is None and input_digest(tmp_path / "gone") is None
    assert input_digest(tmp_path / "loop") is None


def test_the_training_patients_are_left_out_whatever_the_manifest_says(own, tmp_path, capsys):
    """The issue's case: a re-saved (CRLF) manifest whose development rows were marked external, one
    training patient renamed (its images copied), one spelt in lower case, and a model directory whose
    runs are gone. Only the true external patients are scored: the numbers of the true cohort."""
    model, manifest = own
    elsewhere = Path(shutil.copytree(model, tmp_path / "moved" / "model"))
    table = rows(manifest)
    table["set"] = "external"
    table = renamed_with_its_images(table, "P003", "NEW003", tmp_path / "scans")
    table.loc[table["patient_id"] == "P005", "patient_id"] = "p005"
    edited = write_csv(table, tmp_path / "edited" / "manifest.csv", crlf=True)
    assert validate(elsewhere, edited, tmp_path / "out", "--set", "external") == 0
    err = capsys.readouterr().err
    assert "24 patient(s) of this cohort are the model's own (24 it was trained or tuned on" in err
    assert "NEW003 (the images of P003)" in err and "left out of every number" in err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n"] == 10 and metrics["events"] == 5
    left_out = {e["patient_id"]: (e["known_as"], e["by"], e["role"]) for e in metrics["overlap"]["left_out"]}
    assert len(left_out) == 24 and left_out["NEW003"] == ("P003", "images", "training")
    assert left_out["p005"] == ("P005", "id", "training") and left_out["P001"] == ("P001", "id", "training")
    excluded = pd.read_csv(tmp_path / "out" / "excluded.csv").set_index("patient_id")
    assert len(excluded) == 24 and excluded["reason"].str.contains("trained or tuned on this patient").all()
    assert "identical image files" in excluded.loc["NEW003", "reason"]
    html = (tmp_path / "out" / "validation.html").read_text()
    assert 'id="overlap"' in html and "24 left out: 24 it was trained or tuned on" in html
    # the same numbers as the true external cohort
    assert validate(model, manifest, tmp_path / "true", "--set", "external") == 0
    true = json.loads((tmp_path / "true" / "metrics.json").read_text())
    assert (metrics["auc"], metrics["brier"]) == (true["auc"], true["brier"]) and true["overlap"]["left_out"] == []


def _subset(manifest: Path, ids: list[str], path: Path) -> Path:
    table = rows(manifest)
    return write_csv(table[table["patient_id"].isin(ids)], path)


FIRST, SECOND = [f"P10{i}" for i in range(6)], [f"P10{i}" for i in range(6, 10)]  # 3 + 3 and 2 + 2 cases + controls


def test_a_recalibrated_model_leaves_out_its_recalibration_patients(own, tmp_path, capsys):
    model, manifest = own
    first = _subset(manifest, FIRST, tmp_path / "first.csv")
    assert validate(model, first, tmp_path / "v1", "--recalibrate", str(tmp_path / "m1"), "--force-small") == 0
    capsys.readouterr()
    # on its own recalibration cohort: nothing left to score, said so (it printed "intercept -0.00, slope 1.00")
    assert validate(tmp_path / "m1", first, tmp_path / "v2") == 2
    err = capsys.readouterr().err
    assert "6 patient(s) of this cohort are the model's own (6 it was recalibrated on" in err
    assert "every labelled patient of" in err and "recalibrated on" in err and not (tmp_path / "v2").exists()
    # the whole external set, one recalibration patient renamed: the 4 others are scored
    table = renamed_with_its_images(rows(manifest), "P100", "R100", tmp_path / "scans")
    assert validate(tmp_path / "m1", write_csv(table, tmp_path / "all.csv"), tmp_path / "v3", "--set", "external") == 0
    metrics = json.loads((tmp_path / "v3" / "metrics.json").read_text())
    assert metrics["n"] == 4 and sorted(pd.read_csv(tmp_path / "v3" / "predictions.csv")["patient_id"]) == SECOND
    left_out = {e["patient_id"]: (e["known_as"], e["by"], e["role"]) for e in metrics["overlap"]["left_out"]}
    assert left_out["R100"] == ("P100", "images", "recalibration") and len(left_out) == 6
    assert metrics["overlap"]["recalibration_patients"] == 6 and metrics["overlap"]["training_patients"] == 24
    record = load_bundle(tmp_path / "m1").meta.recalibration  # who it was recalibrated on: ids and image digests
    assert record["cohort"]["patients"] == FIRST
    assert record["cohort"]["images"] == {pid: [hashlib.sha256(image_bytes(pid)).hexdigest()] for pid in FIRST}


def test_recalibrating_a_recalibrated_model_says_it_composes_and_does(own, tmp_path, capsys):
    model, manifest = own
    assert validate(model, _subset(manifest, FIRST, tmp_path / "first.csv"), tmp_path / "v1", "--recalibrate",
                    str(tmp_path / "m1"), "--force-small") == 0
    capsys.readouterr()
    second = _subset(manifest, SECOND, tmp_path / "second.csv")
    assert validate(tmp_path / "m1", second, tmp_path / "v2", "--recalibrate", str(tmp_path / "m2"),
                    "--force-small") == 0
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("the model is already recalibrated"))
    assert "composing: this update is fitted on its recalibrated probabilities and applied after it" in line
    first, record = load_bundle(tmp_path / "m1").meta.recalibration, load_bundle(tmp_path / "m2").meta.recalibration
    assert record["composed"] == line and record["previous"] == first
    # what it says is what it does: m2 = the new fit applied after m1 = the composed update on the raw ensemble
    predicted = {}
    for name, folder in (("raw", model), ("m1", tmp_path / "m1"), ("m2", tmp_path / "m2")):
        assert main(["--quiet", "predict", "--model", str(folder), "--manifest", str(second), "--out",
                     str(tmp_path / f"p-{name}")]) == 0
        predicted[name] = pd.read_csv(tmp_path / f"p-{name}" / "predictions.csv")["probability"].to_numpy()
    fit = record["fit"]
    after_m1 = expit(fit["intercept"] + fit["slope"] * logit(np.clip(predicted["m1"], EPS, 1 - EPS)))
    on_raw = expit(record["intercept"] + record["slope"] * logit(np.clip(predicted["raw"], EPS, 1 - EPS)))
    assert np.allclose(predicted["m2"], after_m1, atol=1e-6) and np.allclose(predicted["m2"], on_raw, atol=1e-9)


@pytest.fixture
def scoring_spy(monkeypatch):
    """Counts the patients validate starts to score (vcpred.predict.predict_patient)."""
    import vcpred.predict

    calls = []
    real = vcpred.predict.predict_patient

    def spy(*args, **kwargs):
        calls.append(args[1].patient_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(vcpred.predict, "predict_patient", spy)
    return calls


def test_an_out_that_cannot_be_written_is_refused_before_scoring(own, tmp_path, capsys, scoring_spy):
    model, manifest = own
    (tmp_path / "a-file").write_text("not a folder")
    for out, recalibrate in ((tmp_path / "a-file" / "out", ()),
                             (tmp_path / "out", ("--recalibrate", str(tmp_path / "a-file" / "model")))):
        assert validate(model, manifest, out, "--set", "external", *recalibrate) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot create output folder") and "a-file" in err
    assert scoring_spy == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_too_few_cases_to_recalibrate_are_refused_before_scoring(own, tmp_path, capsys, scoring_spy):
    model, manifest = own
    controls = _subset(manifest, ["P100", "P101", "P102", "P104", "P106"], tmp_path / "one-case.csv")
    assert validate(model, controls, tmp_path / "out", "--recalibrate", str(tmp_path / "m")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot recalibrate on") and "are 1 case(s) and 4 control(s)" in err
    assert "nothing was scored" in err and len(err.strip().splitlines()) == 1
    assert scoring_spy == [] and not (tmp_path / "out").exists() and not (tmp_path / "m").exists()
    # the model's own patients do not count: 2 cases and 2 controls, all of them training patients
    assert validate(model, _subset(manifest, ["P000", "P003", "P001", "P002"], tmp_path / "own.csv"),
                    tmp_path / "out", "--recalibrate", str(tmp_path / "m")) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "after leaving out the model's own 4 are 0 case(s) and 0 control(s)" in err
    assert scoring_spy == []


def as_exported_before(model: Path, folder: Path) -> Path:
    """A copy of the model directory as an earlier vcpred exported it: bundle.json without
    `training_patients` (the copy's hashes rewritten)."""
    model = Path(shutil.copytree(model, folder))
    meta = json.loads((model / BUNDLE_FILE).read_text())
    files = {k: v for k, v in meta.pop("files").items() if k != CARD_FILE}
    del meta["meta_sha256"], meta["training_patients"]
    write_bundle_json(model, meta, files)
    assert load_bundle(model).meta.training_patients is None
    return model


def test_a_model_that_does_not_record_its_patients_says_so(artefacts, tmp_path, capsys):
    """A bundle exported before training_patients was recorded still loads; validate says what it cannot check."""
    model = as_exported_before(artefacts.exported("clinical", **CLINICAL), tmp_path / "old")
    manifest, _, _ = artefacts.tiny_cohort()
    assert validate(model, manifest, tmp_path / "out") == 0
    captured = capsys.readouterr()
    assert "the model does not record the patients it was trained on" in captured.out
    # its source runs are readable here: scoring the manifest they were trained on is still warned about
    assert "23 scored patient(s) are development patients of the manifest the model was trained on" in captured.err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["overlap"]["training_patients_recorded"] is False and metrics["n"] == 33
    assert "does not record the patients it was trained on" in (tmp_path / "out" / "validation.html").read_text()


def test_recalibrating_a_model_that_does_not_record_its_patients_records_their_images(own, tmp_path, capsys):
    """An older export (no `training_patients`) recalibrated here: the recalibration patients' image
    digests are recorded all the same, so a later validate finds them renamed (it stored none)."""
    model, manifest = own
    old = as_exported_before(model, tmp_path / "old")
    first = _subset(manifest, FIRST, tmp_path / "first.csv")
    assert validate(old, first, tmp_path / "v1", "--recalibrate", str(tmp_path / "m1"), "--force-small") == 0
    record = load_bundle(tmp_path / "m1").meta.recalibration
    assert record["cohort"]["images"] == {pid: [hashlib.sha256(image_bytes(pid)).hexdigest()] for pid in FIRST}
    capsys.readouterr()
    table = renamed_with_its_images(rows(manifest), "P100", "R100", tmp_path / "scans")
    assert validate(tmp_path / "m1", write_csv(table, tmp_path / "all.csv"), tmp_path / "v2", "--set", "external") == 0
    assert "R100 (the images of P100)" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "v2" / "metrics.json").read_text())
    left_out = {e["patient_id"]: (e["known_as"], e["by"], e["role"]) for e in metrics["overlap"]["left_out"]}
    assert left_out["R100"] == ("P100", "images", "recalibration") and len(left_out) == 6 and metrics["n"] == 4


def test_the_same_images_under_two_ids_are_scored_once(own, tmp_path, capsys):
    """Two external patients' image files copied under new ids (one with the opposite label): each
    copy is left out, named on the console, the page and metrics.json, and the numbers are those of
    the cohort without the copies (they counted one image twice)."""
    model, manifest = own
    table = rows(manifest)
    external = table[table["set"] == "external"]
    copies = external[external["patient_id"].isin(["P101", "P104"])].copy()
    copies["patient_id"] = ["COPY101", "COPY104"]
    copies.loc[copies["patient_id"] == "COPY104", "label"] = "1" if copies.iloc[1]["label"] == "0" else "0"
    (tmp_path / "scans").mkdir()
    for index, row in copies.iterrows():  # the same bytes under another file name
        copies.loc[index, "image_t2"] = str(shutil.copyfile(row["image_t2"], tmp_path / "scans" / f"{row['patient_id']}.nii.gz"))
    cohort = write_csv(pd.concat([external, copies]), tmp_path / "with-copies.csv")
    assert validate(model, cohort, tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert ("2 patient(s) of this cohort have the same image files as another patient: COPY101 (same images as P101), "
            "COPY104 (same images as P104); 1 of them with the opposite label") in err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [(e["patient_id"], e["same_as"], e["labels_opposite"]) for e in metrics["same_images"]["left_out"]] == [
        ("COPY101", "P101", False), ("COPY104", "P104", True)]
    excluded = pd.read_csv(tmp_path / "out" / "excluded.csv").set_index("patient_id")
    assert excluded.loc["COPY101", "reason"].startswith("same images as P101 (row ")
    assert "the labels are opposite" in excluded.loc["COPY104", "reason"]
    assert sorted(pd.read_csv(tmp_path / "out" / "predictions.csv")["patient_id"]) == sorted(external["patient_id"])
    html = (tmp_path / "out" / "validation.html").read_text()
    assert 'id="same-images"' in html and "COPY104 (same images as P104)" in html
    assert validate(model, write_csv(external, tmp_path / "external.csv"), tmp_path / "true") == 0
    true = json.loads((tmp_path / "true" / "metrics.json").read_text())
    assert (metrics["n"], metrics["auc"], metrics["brier"]) == (true["n"], true["auc"], true["brier"]) == (
        10, true["auc"], true["brier"])
    assert true["same_images"]["left_out"] == []

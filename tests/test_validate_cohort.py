"""`vcpred validate` and what the manifest says of each patient (issues 27 and 28): patients excluded in
its `exclude` column are listed with their reason in excluded.csv, metrics.json and the page, and
counted truly; one impossible clinical value leaves that patient out alone (the one clinical-value
policy, applied per patient as `predict --manifest` applies it); the risk is worded as `vcpred
predict` words it; imputed clinical values are counted in metrics.json and on the page. The session's
clinical-only tiny model on the tiny cohort's external patients keeps these fast."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vcpred.cli import main
from vcpred.predict.risk import BORDERLINE_REASON

CLINICAL = dict(image=False, clinical_columns=("age", "sex"))  # as tests/test_validate.py: the same runs


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def validate(model, manifest, out, *extra) -> int:
    return main(["validate", "--model", str(model), "--manifest", str(manifest), "--out", str(out), *extra])


def rows(manifest: Path, set_name: str | None = "external") -> pd.DataFrame:
    """The manifest's rows (of one set) as text, image paths absolute, with an empty exclude column."""
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table["image_t2"] = [str(manifest.parent / p) for p in table["image_t2"]]
    table["exclude"] = ""
    return table[table["set"] == set_name] if set_name else table


def edited(table: pd.DataFrame, path: Path, **cells: dict[str, str]) -> Path:
    """table with cells changed ({column: {patient_id: text}}), written to path."""
    table = table.copy()
    for column, values in cells.items():
        for pid, text in values.items():
            table.loc[table["patient_id"] == pid, column] = text
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model(artefacts):
    return artefacts.exported("clinical", **CLINICAL)


def test_patients_excluded_in_the_manifest_are_listed_and_counted(model, artefacts, tmp_path, capsys):
    manifest, _, _ = artefacts.tiny_cohort()
    path = edited(rows(manifest), tmp_path / "manifest.csv",
                  exclude={"P102": "series misses slice 12", "P107": "no vertebra visible"},
                  age={"P104": ""})  # needed by the model, not imputed: left out too
    out = tmp_path / "out"
    assert validate(model, path, out) == 0
    captured = capsys.readouterr()
    # the count is of the patients scored, not of those tried (issue 28: "scored 11" for 7)
    assert "scored 7 patient(s)" in captured.out
    assert "3 left out: 2 excluded in the manifest, 1 that could not be predicted" in captured.out
    excluded = pd.read_csv(out / "excluded.csv")
    assert list(excluded["patient_id"]) == ["P102", "P104", "P107"]  # manifest order, whatever the reason
    reasons = dict(zip(excluded["patient_id"], excluded["reason"]))
    assert reasons["P102"] == "excluded in the manifest: series misses slice 12"
    assert reasons["P107"] == "excluded in the manifest: no vertebra visible"
    # validate has no --clinical option: the advice names what it has (issue 28)
    assert "age" in reasons["P104"] and "--allow-missing" in reasons["P104"]
    assert "(--clinical" not in reasons["P104"] and "manifest" in reasons["P104"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 7 and metrics["cohort"]["patients"] == 10
    assert metrics["cohort"]["excluded_in_manifest"] == 2
    assert [(e["patient_id"], e["set"], e["reason"]) for e in metrics["excluded"]] == \
        list(excluded[["patient_id", "set", "reason"]].itertuples(index=False, name=None))
    html = (out / "validation.html").read_text()
    assert "excluded in the manifest: series misses slice 12" in html and "P107" in html
    assert "3 (2 excluded in the manifest)" in html
    assert list(pd.read_csv(out / "predictions.csv")["patient_id"]) == [
        f"P10{i}" for i in range(10) if i not in (2, 4, 7)]


def test_a_set_whose_patients_are_all_excluded_says_so(model, artefacts, tmp_path, capsys):
    manifest, _, _ = artefacts.tiny_cohort()
    table = rows(manifest, None)
    reasons = {f"P10{i}": "study unreadable" for i in range(10)}
    path = edited(table, tmp_path / "manifest.csv", exclude=reasons)
    assert validate(model, path, tmp_path / "out", "--set", "external") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "all 10 external patient(s)" in err and "are excluded in the manifest" in err
    assert "P100 (study unreadable)" in err and "no external patients" not in err
    assert not (tmp_path / "out").exists()


def test_an_impossible_clinical_value_leaves_out_that_patient_alone(model, artefacts, tmp_path):
    """The manifest's clinical values under the one policy, per patient: age 500 and a decimal comma
    are those patients' reasons, the others are scored (before: the whole validation stopped)."""
    manifest, _, _ = artefacts.tiny_cohort()
    path = edited(rows(manifest), tmp_path / "manifest.csv", age={"P103": "500", "P105": "74,5"})
    out = tmp_path / "out"
    assert validate(model, path, out) == 0
    excluded = pd.read_csv(out / "excluded.csv", dtype=str)
    assert list(excluded["patient_id"]) == ["P103", "P105"]
    reasons = dict(zip(excluded["patient_id"], excluded["reason"]))
    assert "age" in reasons["P103"] and "500" in reasons["P103"]
    assert "74,5" in reasons["P105"]
    assert json.loads((out / "metrics.json").read_text())["n"] == 8


def test_the_risk_is_worded_as_predict_words_it(model, artefacts, tmp_path):
    manifest, _, _ = artefacts.tiny_cohort()
    path = edited(rows(manifest), tmp_path / "manifest.csv")
    assert validate(model, path, tmp_path / "out") == 0
    assert main(["--quiet", "predict", "--model", str(model), "--manifest", str(path), "--out",
                 str(tmp_path / "p")]) == 0
    validated = pd.read_csv(tmp_path / "out" / "predictions.csv").set_index("patient_id")
    predicted = pd.read_csv(tmp_path / "p" / "predictions.csv").set_index("patient_id")
    assert list(validated["risk"]) == list(predicted.loc[validated.index, "risk"])
    for _, row in validated.iterrows():  # one rule: borderline first, else the category
        assert row["risk"] == ("borderline" if row["borderline"] else row["category"])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    counts = validated["risk"].value_counts().to_dict()
    assert {k: v for k, v in metrics["risk"].items() if v} == counts and sum(metrics["risk"].values()) == 10
    html = (tmp_path / "out" / "validation.html").read_text()
    assert "high risk of collapse" in html and "low risk of collapse" in html
    assert f"borderline: {BORDERLINE_REASON}" in html


def test_imputed_clinical_values_are_counted_on_the_page_and_in_metrics(model, artefacts, tmp_path, capsys):
    manifest, _, _ = artefacts.tiny_cohort()
    path = edited(rows(manifest), tmp_path / "manifest.csv", age={"P101": "", "P106": ""}, sex={"P106": "",
                                                                                               "P108": ""})
    out = tmp_path / "out"
    assert validate(model, path, out, "--allow-missing") == 0
    table = pd.read_csv(out / "predictions.csv", dtype={"imputed": str}, keep_default_na=False).set_index("patient_id")
    assert table.loc[["P101", "P106", "P108"], "imputed"].tolist() == ["age", "age;sex", "sex"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["imputed"] == {"patients": 3, "of": 10, "columns": {"age": 2, "sex": 2}}
    html = (out / "validation.html").read_text()
    assert "3 of 10 scored patients (age 2, sex 2)" in html
    assert "3 of 10 scored patient(s) had missing clinical values imputed" in capsys.readouterr().out

"""One clinical-input policy for `vcpred predict`, `predict --manifest` and the viewer (issue 15):
impossible values (age 300, BMI -4, -70 days, NaN, unknown categories) are refused everywhere with a
message naming the value; values outside the training range are accepted and flagged in
prediction.json, the report, predictions.csv/summary.json and the viewer's answer.

Before this, `vcpred predict --clinical age=300,sex=F` predicted without a word, an unknown category
was a warning in the CLI but a 422 in the viewer, and the viewer accepted BMI -4 and -70 days
(inside its "plausible" window, the training range widened by its own width: BMI 15-40 gave
-10 to 65, days 1-90 gave -88 to 179) with a warning only.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from starlette.testclient import TestClient

from predict_support import BODY, BOX_TEXT, T2_LUMBAR
from vcpred.cli import main
from vcpred.cohort.clinical_policy import LIMITS
from vcpred.errors import ConfigError
from vcpred.models.clinical import ClinicalPreprocessor, ColumnEncoding
from vcpred.predict import load_bundle
from vcpred.predict.bundle import Bundle
from vcpred.predict.clinical_input import ClinicalValueError, check_clinical, form_fields

VIT = dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))  # training ages 64-83


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def bundle(artefacts) -> Bundle:
    return load_bundle(artefacts.exported("vitlora", **VIT))


def with_columns(bundle: Bundle) -> Bundle:
    """The bundle as if it also used bmi, days_to_mri and steroid (the demo's columns): only the clinical
    description changes, which is all the policy reads (refusals happen before the networks run)."""
    extra = [ColumnEncoding("bmi", "numeric", 23.0, 23.2, 3.5), ColumnEncoding("days_to_mri", "numeric", 12, 15, 9),
             ColumnEncoding("steroid", "numeric", 0, 0.1, 0.3)]
    models = [dataclasses.replace(m, preprocessor=ClinicalPreprocessor(m.preprocessor.columns + extra))
              for m in bundle.models]
    ranges = {**bundle.clinical_ranges, "bmi": {"min": 15.0, "max": 40.0}, "days_to_mri": {"min": 1.0, "max": 90.0},
              "steroid": {"min": 0.0, "max": 1.0, "values": [0.0, 1.0]}}
    meta = dataclasses.replace(bundle.meta, clinical_columns=[*bundle.clinical_columns, "bmi", "days_to_mri", "steroid"],
                               clinical_ranges=ranges)
    return dataclasses.replace(bundle, meta=meta, models=models)


def one_patient(model, out, clinical: str, *extra) -> list[str]:
    return ["predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice", str(BODY.slice),
            "--roi-box", BOX_TEXT, "--clinical", clinical, "--out", str(out), *extra]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------- the policy itself ----------

GOOD = {"age": "74", "sex": "F", "bmi": "23", "days_to_mri": "10", "steroid": "0"}


@pytest.mark.parametrize("changes, words", [
    ({"age": "300"}, "age=300 years is impossible: age must be above 0 and at most 125"),
    ({"age": "0"}, "age=0 years is impossible"),
    ({"age": "-74"}, "age=-74 years is impossible"),
    ({"bmi": "-4"}, "bmi=-4 kg/m² is impossible: bmi must be from 7 to 150"),
    ({"bmi": "0"}, "bmi=0 kg/m² is impossible"),
    ({"bmi": "400"}, "bmi=400 kg/m² is impossible"),
    ({"days_to_mri": "-70"}, "days_to_mri=-70 days from fracture to MRI is impossible"),
    ({"steroid": "2"}, "steroid=2 is impossible: steroid must be 0 or 1"),
    ({"age": float("nan")}, "age=nan must be a number (finite"),
    ({"age": "nan"}, "clinical value(s) age needed by this model but not given"),  # the manifest's missing token
    ({"age": float("inf")}, "age=inf must be a number (finite"),
    ({"age": "1e400"}, "age='1e400' must be a number (finite"),
    ({"age": True}, "age=True must be a number"),
    ({"age": "old"}, "age='old' must be a number (finite"),
    ({"sex": "X"}, "sex='X' is not a category the model knows; use one of F, M"),
    ({"weight": "70"}, "unknown clinical value(s) weight"),
    ({"sex": ""}, "clinical value(s) sex needed by this model but not given"),
])
def test_impossible_values_are_refused_with_the_value_named(bundle, changes, words):
    with pytest.raises(ClinicalValueError) as caught:
        check_clinical(with_columns(bundle), {**GOOD, **changes}, allow_missing=False)
    assert words in str(caught.value) and caught.value.status == 422


def test_values_outside_the_training_range_are_accepted_and_flagged(bundle):
    check = check_clinical(with_columns(bundle), {**GOOD, "age": 90, "bmi": "45.5", "days_to_mri": 0},
                           allow_missing=False)
    assert check.values == {"age": 90.0, "sex": "F", "bmi": 45.5, "days_to_mri": 0.0, "steroid": 0.0}
    assert [(f["name"], f["value"], f["training_min"], f["training_max"]) for f in check.flags] == [
        ("age", 90.0, 64.0, 83.0), ("bmi", 45.5, 15.0, 40.0), ("days_to_mri", 0.0, 1.0, 90.0)]
    assert check.warnings[0] == ("age=90 years is outside the training range 64 to 83 (development min-max): "
                                 "the model extrapolates")
    inside = check_clinical(with_columns(bundle), GOOD, allow_missing=False)
    assert inside.flags == [] and inside.warnings == []


def test_the_form_carries_the_limits_the_page_checks(bundle):
    fields = {f["name"]: f for f in form_fields(with_columns(bundle))}
    assert fields["age"]["limits"] == {"low": 0, "high": 125, "low_open": True,
                                       "why": "an age is above 0 and no one has lived past 125 years"}
    assert (fields["age"]["min"], fields["age"]["max"]) == (64.0, 83.0)
    assert fields["steroid"]["values"] == [0.0, 1.0]
    assert fields["sex"] == {"name": "sex", "kind": "categorical", "unit": "", "choices": ["F", "M"]}


# ---------- one table: the manifest, training, predict and the viewer (issue 27) ----------

def with_every_column(bundle: Bundle) -> Bundle:
    """with_columns plus bmd_tscore and diabetes: every column of the policy table."""
    wide = with_columns(bundle)
    extra = [ColumnEncoding("bmd_tscore", "numeric", -2.8, -2.7, 0.9), ColumnEncoding("diabetes", "numeric", 0, 0.1, 0.3)]
    models = [dataclasses.replace(m, preprocessor=ClinicalPreprocessor(m.preprocessor.columns + extra))
              for m in wide.models]
    ranges = {**wide.clinical_ranges, "bmd_tscore": {"min": -5.5, "max": 0.5},
              "diabetes": {"min": 0.0, "max": 1.0, "values": [0.0, 1.0]}}
    meta = dataclasses.replace(wide.meta, clinical_columns=[*wide.clinical_columns, "bmd_tscore", "diabetes"],
                               clinical_ranges=ranges)
    return dataclasses.replace(wide, meta=meta, models=models)


def policy_cases() -> list:
    """(column, value, allowed) around every limit of the table, and the non-finite extremes."""
    cases = []
    for name, limit in LIMITS.items():
        if limit.values is not None:
            cases += [(name, v, True) for v in limit.values] + [(name, v, False) for v in (2.0, 0.5, -1.0)]
        else:
            cases += [(name, limit.low, not limit.low_open), (name, limit.low - 0.5, False),
                      (name, limit.high, True), (name, limit.high + 0.5, False)]
        cases += [(name, 1e300, False), (name, -1e300, False)]
    return cases


@pytest.mark.parametrize("name, value, allowed", policy_cases())
def test_the_policy_table_holds_everywhere(bundle, tmp_path, name, value, allowed):
    """The same value is refused, or accepted, by cohort check (so by every command that loads the
    manifest), by the clinical features training fits, by predict and by the viewer (its server-side
    check is predict's; its page checks the limits the form carries)."""
    from conftest import MANIFEST_HEADER, patient_row, write_manifest
    from vcpred.cohort import PatientRecord, Roi, check_manifest

    rows = [patient_row(i, label=i % 2) for i in range(4)]
    rows[1][name] = repr(value)
    header = MANIFEST_HEADER + ([] if name in MANIFEST_HEADER else [name])
    problems = check_manifest(write_manifest(tmp_path, rows, header=header)).problems
    assert [(p.row, p.column) for p in problems] == ([] if allowed else [(3, name)])

    records = [PatientRecord(f"P{i}", "development", 0, {}, Roi(7, 100, 80, 140, 120), clinical={name: v}, row=i + 2)
               for i, v in enumerate([value, None])]
    wide = with_every_column(bundle)
    fields = {f["name"]: f for f in form_fields(wide)}
    limit = LIMITS[name]
    assert fields[name]["limits"] == {"low": limit.low, "high": limit.high, "low_open": limit.low_open,
                                      "why": limit.why}
    assert fields[name]["values"] == (list(limit.values) if limit.values else None)
    if allowed:
        ClinicalPreprocessor.fit(records, [name], {name: "numeric"})
        assert check_clinical(wide, {name: value}, allow_missing=True).values[name] == value
        return
    assert "is impossible" in problems[0].message
    with pytest.raises(ConfigError, match="is impossible"):
        ClinicalPreprocessor.fit(records, [name], {name: "numeric"})
    with pytest.raises(ClinicalValueError, match="is impossible"):
        check_clinical(wide, {name: value}, allow_missing=True)


# ---------- the CLI, one patient ----------

def test_cli_refuses_an_impossible_age_it_used_to_predict_silently(bundle, tmp_path, capsys):
    assert main(one_patient(bundle.path, tmp_path / "out", "age=300,sex=F")) == 2
    line = error_line(capsys)
    assert "age=300 years is impossible" in line and "125" in line
    assert not (tmp_path / "out").exists()


def test_cli_refuses_an_unknown_category_the_viewer_refused(bundle, tmp_path, capsys):
    assert main(one_patient(bundle.path, tmp_path / "out", "age=74,sex=X")) == 2
    assert "sex='X' is not a category the model knows; use one of F, M" in error_line(capsys)


def test_cli_flags_a_value_outside_the_training_range_in_every_output(bundle, tmp_path, capsys):
    assert main(one_patient(bundle.path, tmp_path / "out", "age=90,sex=F")) == 0
    err = capsys.readouterr().err
    assert "age=90 years is outside the training range 64 to 83" in err
    result = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert result["clinical_flags"] == [{"name": "age", "value": 90.0, "training_min": 64.0, "training_max": 83.0,
                                         "range_source": "development min-max",
                                         "message": result["warnings"][0]}]
    report = (tmp_path / "out" / "report.html").read_text()
    assert "90.0 (outside the training range 64 to 83: the model extrapolates)" in report


# ---------- predict --manifest ----------

def test_manifest_lists_a_patient_with_an_impossible_value_as_failed_and_flags_the_others(bundle, tmp_path):
    header = "patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label,age,sex"
    where = f"{T2_LUMBAR},{BODY.slice},{BOX_TEXT}"
    rows = [f"A,external,{where},1,74,F", f"B,external,{where},0,300,F", f"C,external,{where},0,-3,M",
            f"D,external,{where},0,90,M", f"E,external,{where},1,70,X", f"F,external,{where},1,1e300,F",
            f"G,external,{where},1,=1+2,F"]  # issue 27: refused for that patient, not the whole manifest
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    assert main(["--quiet", "predict", "--model", str(bundle.path), "--manifest", str(manifest),
                 "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False).set_index("patient_id")
    assert table.loc["A", "error"] == "" and table.loc["D", "error"] == ""
    assert "age=300 years is impossible" in table.loc["B", "error"]
    assert "age=-3 years is impossible" in table.loc["C", "error"]
    assert "sex='X' is not a category the model knows" in table.loc["E", "error"]
    assert "age=1e+300 years is impossible" in table.loc["F", "error"]
    assert "age='=1+2' must be a number" in table.loc["G", "error"]
    assert table.loc["D", "outside_training_range"] == "age" and table.loc["A", "outside_training_range"] == ""
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failed"] == 5 and summary["outside_training_range"] == 1


# ---------- the viewer ----------

@pytest.fixture
def viewer(bundle, tmp_path):
    """A viewer client for the bundle with the demo's extra columns (refusals need no inference)."""
    from test_serve import BASE, PAGE_HEADERS, open_patient  # noqa: F401 (the helpers of the serve tests)
    from vcpred.serve.app import create_app
    from vcpred.serve.settings import ServeSettings

    app = create_app(with_columns(bundle), ServeSettings(workdir=tmp_path, port=8000))
    with TestClient(app, base_url=BASE, headers=PAGE_HEADERS) as client:
        yield client


@pytest.fixture(scope="module")
def patient(tmp_path_factory) -> dict:
    import csv

    from vcpred.synth import generate_cohort

    out = tmp_path_factory.mktemp("synth")
    generate_cohort(out, n_development=0, n_external=1, sequences=("t2",))
    row = next(csv.DictReader(open(out / "manifest.csv")))
    return {"folder": out / row["image_t2"], "slice": int(row["roi_slice"]),
            "box": [int(row[f"roi_{k}"]) for k in ("row_min", "col_min", "row_max", "col_max")]}


@pytest.mark.parametrize("changes, words", [
    ({"bmi": -4}, "bmi=-4 kg/m² is impossible"),
    ({"days_to_mri": -70}, "days_to_mri=-70 days from fracture to MRI is impossible"),
    ({"age": 300}, "age=300 years is impossible"),
    ({"age": 1e300}, "age=1e+300 years is impossible"),  # the manifest's and training's limit too (issue 27)
    ({"age": 1e400}, "age=inf must be a number (finite"),
    ({"sex": "X"}, "sex='X' is not a category the model knows"),
])
def test_the_viewer_refuses_what_it_used_to_accept_with_a_warning(viewer, patient, changes, words):
    from test_serve import open_patient

    study = open_patient(viewer, patient)
    body = {"slice": patient["slice"], "box": patient["box"], "clinical": {**GOOD, **changes}}
    if changes.get("age") == 1e400:  # Python's json writes inf as Infinity, which is not JSON: send the text
        answer = viewer.post(f"/api/studies/{study}/predict", headers={"Content-Type": "application/json"},
                             content=json.dumps(body).replace("Infinity", "1e400"))
    else:
        answer = viewer.post(f"/api/studies/{study}/predict", json=body)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["error"]
    info = viewer.get("/api/model").json()
    assert {f["name"]: f["limits"]["low"] for f in info["clinical"] if f["kind"] == "numeric"}["bmi"] == 7

"""One clinical-value policy for the manifest and training (issue 27); predict and the viewer apply the
same table (test_clinical_input.py, test_the_policy_table_holds_everywhere).

Before this, `cohort check` and training accepted ages of -5, 500 and 1e300 that `predict` refused as
impossible (1e300 only gave a numpy overflow warning while training), and one `24,5` (a decimal
comma) or `=1+2` in a numeric column silently made the whole column categorical.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from vcpred.cli import main
from vcpred.cohort import PatientRecord, Roi, check_manifest, load_manifest
from vcpred.errors import ConfigError, ManifestError
from vcpred.models.clinical import ClinicalPreprocessor


def _rows(n: int = 8, **columns) -> list[dict]:
    """n development patients; columns: name -> one value per patient."""
    rows = [patient_row(i, label=i % 2) for i in range(n)]
    for name, values in columns.items():
        for row, value in zip(rows, values):
            row[name] = value
    return rows


def _problems(tmp_path: Path, rows: list[dict], header: list[str] | None = None) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning would be a failure
        return check_manifest(write_manifest(tmp_path, rows, header=header)).problems


# ---------- cohort check: impossible values are problems on their row ----------

@pytest.mark.parametrize("value, shown", [(-5, "age=-5 years"), (500, "age=500 years"),
                                          ("1e300", "age=1e+300 years"), (0, "age=0 years")])
def test_an_impossible_age_is_a_problem_on_its_row(tmp_path, value, shown):
    rows = _rows()
    rows[2]["age"] = value
    problems = _problems(tmp_path, rows)
    assert [(p.row, p.column, p.patient_id) for p in problems] == [(4, "age", "P002")]
    assert f"{shown} is impossible: age must be above 0 and at most 125" in problems[0].message
    with pytest.raises(ManifestError, match="row 4, patient 'P002', column 'age'"):
        load_manifest(tmp_path / "manifest.csv")


def test_impossible_values_of_every_known_column_are_named_with_the_allowed_range(tmp_path):
    header = MANIFEST_HEADER + ["bmi", "bmd_tscore", "days_to_mri", "steroid"]
    rows = _rows(bmi=[23] * 8, bmd_tscore=[-2.5] * 8, days_to_mri=[10] * 8, steroid=[0] * 8)
    rows[1]["bmi"], rows[2]["bmd_tscore"], rows[3]["days_to_mri"], rows[4]["steroid"] = 400, -12, -70, 2
    problems = [str(p) for p in _problems(tmp_path, rows, header)]
    assert problems == [
        "row 3, patient 'P001', column 'bmi': bmi=400 kg/m² is impossible: bmi must be from 7 to 150 (a BMI below "
        "7 kg/m² is not compatible with life, above 150 is beyond recorded adults (a typo, e.g. the weight)); "
        "correct the value, or leave the cell empty when it is unknown",
        "row 4, patient 'P002', column 'bmd_tscore': bmd_tscore=-12 T-score is impossible: bmd_tscore must be from "
        "-10 to 10 (densitometers report T-scores within about -7 to +7); correct the value, or leave the cell "
        "empty when it is unknown",
        "row 5, patient 'P003', column 'days_to_mri': days_to_mri=-70 days from fracture to MRI is impossible: "
        "days_to_mri must be from 0 to 36500 (the MRI cannot come before the fracture, nor 100 years after it); "
        "correct the value, or leave the cell empty when it is unknown",
        "row 6, patient 'P004', column 'steroid': steroid=2 is impossible: steroid must be 0 or 1 (a yes/no flag "
        "is 1 or 0); correct the value, or leave the cell empty when it is unknown"]


def test_a_column_vcpred_knows_no_limits_of_takes_any_finite_number(tmp_path):
    rows = _rows(creatinine=[-3, 0, 1e6, 2.5, "", "NA", 7, 8])
    path = write_manifest(tmp_path, rows, header=MANIFEST_HEADER + ["creatinine"])
    cohort = load_manifest(path)
    assert cohort.clinical_columns["creatinine"] == "numeric"
    assert [r.clinical["creatinine"] for r in cohort.records][:6] == [-3.0, 0.0, 1e6, 2.5, None, None]


# ---------- cohort check: a stray text cell is a problem, not a type change ----------

@pytest.mark.parametrize("cell", ['"24,5"', "=1+2", "n.d.", "23 kg/m2"])
def test_one_text_cell_in_a_numeric_column_is_a_problem_not_a_type_change(tmp_path, cell):
    rows = _rows(bmi=[22.5, 23, "", 24.1, 21, 25, 26, 27.5])
    rows[5]["bmi"] = cell  # row 7
    problems = _problems(tmp_path, rows, MANIFEST_HEADER + ["bmi"])
    shown = cell.strip('"')
    assert [(p.row, p.column) for p in problems] == [(None, "bmi")]
    assert problems[0].message.startswith(f"column bmi is numeric except row 7 ({shown!r})")
    assert "leave the cell empty" in problems[0].message


def test_decimal_commas_everywhere_still_make_a_numeric_column_with_every_row_named(tmp_path):
    rows = _rows(bmi=['"24,5"', '"22,1"', "23", "", '"25,0"', "21", "22", "26"])
    [problem] = _problems(tmp_path, rows, MANIFEST_HEADER + ["bmi"])
    assert problem.column == "bmi" and "row 2 ('24,5'), row 3 ('22,1') and row 6 ('25,0')" in problem.message
    assert "24.5" in problem.message  # the way to write it


def test_several_stray_cells_are_one_problem_naming_each_row(tmp_path):
    rows = _rows(age=[70, "=1+2", 72, "old", 74, 75, 76, "x"])
    [problem] = _problems(tmp_path, rows)
    assert str(problem).startswith("column 'age': column age is numeric except row 3 ('=1+2'), row 5 ('old') "
                                   "and row 9 ('x')")


def test_a_column_of_words_stays_categorical_and_empty_cells_stay_missing(tmp_path):
    rows = _rows(smoker=["yes", "no", "", "NA", "yes", "ex", "no", "1"])
    cohort = load_manifest(write_manifest(tmp_path, rows, header=MANIFEST_HEADER + ["smoker"]))
    assert cohort.clinical_columns["smoker"] == "categorical" and cohort.clinical_columns["sex"] == "categorical"
    assert [r.clinical["smoker"] for r in cohort.records] == ["yes", "no", None, None, "yes", "ex", "no", "1"]


def test_cohort_check_prints_the_problems(tmp_path, capsys):
    rows = _rows(bmi=[22.5, 23, 24, 25, 26, '"24,5"', 27, 28])
    rows[1]["age"] = "1e300"
    path = write_manifest(tmp_path, rows, header=MANIFEST_HEADER + ["bmi"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["cohort", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert "2 problem(s):" in captured.out
    assert "column bmi is numeric except row 7 ('24,5')" in captured.out
    assert "row 3, patient 'P001', column 'age': age=1e+300 years is impossible" in captured.out
    assert "overflow" not in captured.err and "Warning" not in captured.err


# ---------- training: the features refuse what the manifest refuses ----------

def _record(index: int, **clinical) -> PatientRecord:
    return PatientRecord(f"P{index:03d}", "development", index % 2, {}, Roi(7, 100, 80, 140, 120),
                         clinical=clinical, row=index + 2)


@pytest.mark.parametrize("value, words", [(-5.0, "age=-5 years is impossible"), (500.0, "age=500 years is impossible"),
                                          (1e300, "age=1e+300 years is impossible"),
                                          (float("inf"), "age=inf is not a finite number"),
                                          ("24,5", "age='24,5' is not a number")])
def test_clinical_features_refuse_what_cohort_check_refuses(value, words):
    records = [_record(i, age=70.0 + i) for i in range(6)] + [_record(6, age=value)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError) as raised:
            ClinicalPreprocessor.fit(records, ["age"], {"age": "numeric"})
        message = str(raised.value)
        assert "\n" not in message and "row 8 (patient 'P006')" in message and words in message
        fitted = ClinicalPreprocessor.fit(records[:6], ["age"], {"age": "numeric"})
        with pytest.raises(ConfigError, match=words.replace("+", r"\+")):
            fitted.transform(records)


def test_train_refuses_a_manifest_with_an_impossible_age_naming_its_row(tiny, tmp_path, capsys):
    manifest, store, splits = tiny
    cohort = tmp_path / "cohort"
    shutil.copytree(manifest.parent / "images", cohort / "images")  # the images beside a copy of the manifest
    lines = manifest.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("age")] = "1e300"
    lines[3] = ",".join(cells)
    (cohort / manifest.name).write_text("\n".join(lines) + "\n")
    config = {"configuration": "clin", "manifest": str(cohort / manifest.name), "store": str(store),
              "splits": str(splits), "model": {"image": False, "clinical_columns": ["age", "sex"]},
              "training": {"epochs": 1}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["train", str(path), "--split", "0", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "row 4" in err and "age=1e+300 years is impossible" in err
    assert "overflow" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()

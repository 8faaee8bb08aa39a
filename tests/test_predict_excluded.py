"""`predict --manifest` and the manifest's `exclude` column (issue 28): an excluded patient is not
predicted, and says so: a console line, as `prepare` says it, and its row in predictions.csv with the
reason as its error, the way an unreadable patient is listed; counted apart from the failures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from predict_support import T2_LUMBAR
from vcpred.cli import main

REASON = "series misses slice 12"
HEADER = "patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label,age,sex,exclude"


@pytest.fixture(scope="module")
def model(artefacts, tmp_path_factory):
    """A clinical-only model (age, sex): predicting needs no image, so these tests stay fast."""
    from vcpred.bundle import export_configuration

    runs = artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex"))
    return export_configuration(runs, "clinical", tmp_path_factory.mktemp("excluded") / "bundle")


def write(tmp_path, *rows):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([HEADER, *rows]) + "\n")
    return manifest


def test_an_excluded_patient_is_listed_with_its_reason_not_predicted(model, tmp_path, capsys):
    manifest = write(tmp_path, f"A,external,{T2_LUMBAR},19,103,140,127,171,1,74,F,",
                     f"X,external,gone.nii.gz,,,,,,,500,,{REASON}",  # nothing of it is read
                     f"B,external,{T2_LUMBAR},19,103,140,127,171,0,70,M,",
                     f"C,external,{T2_LUMBAR},19,103,140,127,171,0,,M,")  # age missing: fails
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"1 patient(s) excluded in the manifest, not predicted: X ({REASON})" in printed
    assert "predictions.csv: 2 predicted, 1 failed, 1 excluded in the manifest" in printed
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False).set_index("patient_id")
    assert list(table.index) == ["A", "X", "B", "C"]  # manifest order
    assert table.loc["X", "error"] == f"excluded in the manifest (row 3): {REASON}"
    assert table.loc["X", "set"] == "external" and table.loc["X", "probability"] == ""
    assert table.loc["A", "error"] == "" and table.loc["C", "error"] and "excluded" not in table.loc["C", "error"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["patients"], summary["failed"], summary["excluded"]) == (4, 1, 1)


def test_a_manifest_whose_included_patients_all_fail_writes_nothing(model, tmp_path, capsys):
    manifest = write(tmp_path, f"X,external,gone.nii.gz,,,,,,,,,{REASON}",
                     f"C,external,{T2_LUMBAR},19,103,140,127,171,0,,M,")
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: none of the 1 patient(s) of" in err and "1 excluded in the manifest" in err
    assert not out.exists()

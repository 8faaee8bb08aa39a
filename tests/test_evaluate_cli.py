"""`vcpred evaluate` refuses bad run folders and tables with one clear line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from test_evaluate import cohort, make_runs
from vcpred.cli import main


@pytest.fixture(scope="module")
def small_patients() -> pd.DataFrame:
    return cohort(n_dev=50, n_ext=16, n_unlabelled=2, seed=1)


@pytest.fixture
def runs(tmp_path: Path, small_patients) -> Path:
    return make_runs(tmp_path / "runs", small_patients, n_splits=2, configs={"vit": (1.2, []), "cnn": (0.6, [])})


def _table(runs: Path) -> tuple[Path, pd.DataFrame]:
    path = runs / "vit" / "split-01" / "predictions.csv"
    return path, pd.read_csv(path, dtype=str, keep_default_na=False)


def _fails(runs: Path, tmp_path: Path, capsys, *extra: str) -> str:
    code = main(["evaluate", str(runs), "--out", str(tmp_path / "EVAL"), "--no-figures", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def _external_row(table: pd.DataFrame) -> int:
    return int(table.index[(table["set"] == "external") & (table["label"] != "")][0])


@pytest.mark.parametrize("edit, needles", [
    (lambda t: t.drop(columns="probability"), ["missing column(s) ['probability']"]),
    (lambda t: t.assign(label=t["label"].where(t.index != 3, "2")), ["row 5:", "label '2'"]),
    (lambda t: t.assign(probability=t["probability"].where(t.index != 0, "1.5")), ["row 2:", "probability '1.5'"]),
    (lambda t: t.assign(probability=t["probability"].where(t.index != 1, "nan")), ["row 3:", "probability 'nan'"]),
    (lambda t: t.assign(probability=t["probability"].where(t.index != 1, "")), ["row 3:", "[0, 1]"]),
    (lambda t: t.assign(set=t["set"].where(t.index != 0, "test")), ["row 2:", "set 'test'"]),
    (lambda t: t.assign(split=t["split"].where(t.index != 0, "4")), ["row 2:", "differs from the run's split 1"]),
])
def test_bad_cells_are_named_by_file_and_row(runs, tmp_path, capsys, edit, needles):
    path, table = _table(runs)
    edit(table).to_csv(path, index=False)
    err = _fails(runs, tmp_path, capsys)
    assert str(path) in err
    for needle in needles:
        assert needle in err


def test_patient_in_both_sets(runs, tmp_path, capsys):
    path, table = _table(runs)
    row = _external_row(table)
    table.loc[row, "set"] = "validation"
    table.to_csv(path, index=False)
    assert "is in both validation and external" in _fails(runs, tmp_path, capsys)


def test_patient_with_two_labels(runs, tmp_path, capsys):
    path, table = _table(runs)
    row = _external_row(table)
    table.loc[row, "label"] = str(1 - int(table.loc[row, "label"]))
    table.to_csv(path, index=False)
    err = _fails(runs, tmp_path, capsys)
    assert f"patient {table.loc[row, 'patient_id']!r} has different labels" in err and f"{row + 2}" in err


def test_missing_main_frame_and_duplicate_frame(runs, tmp_path, capsys):
    path, table = _table(runs)
    first = table["patient_id"].iloc[0]
    table.loc[(table["patient_id"] == first) & (table["frame_offset"] == "0"), "frame_offset"] = "1"
    table.to_csv(path, index=False)
    err = _fails(runs, tmp_path, capsys)
    assert "no frame_offset 0" in err and "frame_offset 1 twice" in err


def test_bad_config_and_folder_mismatch(runs, tmp_path, capsys):
    config = runs / "vit" / "split-01" / "config.yaml"
    config.write_text("configuration: vit\nsplit: 3\nclinical_columns: []\nstatus: done\n")
    assert "move the run dir or fix config.yaml" in _fails(runs, tmp_path, capsys)
    config.write_text("configuration: vit\nsplit: 1\nclinical_columns: age\nstatus: done\n")
    assert "'clinical_columns' must be a list" in _fails(runs, tmp_path, capsys)


def test_missing_runs_folder_and_bad_options(tmp_path, runs, capsys):
    assert "does not exist" in _fails(tmp_path / "nowhere", tmp_path, capsys)
    assert "--best 'resnet'" in _fails(runs, tmp_path, capsys, "--best", "resnet")
    assert "START:STOP:STEP" in _fails(runs, tmp_path, capsys, "--thresholds", "0.1-0.9")
    assert "--alpha must be in (0, 1)" in _fails(runs, tmp_path, capsys, "--alpha", "5")


def test_out_folder_guard(runs, tmp_path, capsys):
    out = tmp_path / "EVAL"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert "not empty" in _fails(runs, tmp_path, capsys)
    # a folder evaluate did not write is refused with --force too: vcpred never writes into it
    assert "choose a new or empty folder" in _fails(runs, tmp_path, capsys, "--force")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    assert main(["--quiet", "evaluate", str(runs), "--out", str(out), "--no-figures"]) == 0
    # an earlier evaluate output is replaced, with or without --force (the demo passes it)
    for extra in ([], ["--force"]):
        assert main(["--quiet", "evaluate", str(runs), "--out", str(out), "--no-figures",
                     "--aggregate", "logit_mean", "--thresholds", "0.1:0.5:0.1", *extra]) == 0
    assert (out / "summary.csv").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["EVAL", "runs"]
    capsys.readouterr()  # their small-sample warnings (a few patients here), not the error below
    # ... but not when the user has put files of their own into it
    (out / "figures").mkdir()
    (out / "figures" / "mine.png").write_text("mine")
    assert "figures/mine.png" in _fails(runs, tmp_path, capsys, "--force")
    assert (out / "figures" / "mine.png").read_text() == "mine"


def test_external_labels_must_agree_across_runs(runs, tmp_path, capsys):
    path, table = _table(runs)
    patient = table.loc[_external_row(table), "patient_id"]
    rows = table["patient_id"] == patient
    table.loc[rows, "label"] = str(1 - int(table.loc[rows, "label"].iloc[0]))  # consistent within the file
    table.to_csv(path, index=False)
    err = _fails(runs, tmp_path, capsys)
    assert f"patient {patient!r} different labels" in err


def test_validation_with_too_few_cases(runs, tmp_path, capsys):
    path, table = _table(runs)
    table.loc[table["set"] == "validation", "label"] = "0"
    table.to_csv(path, index=False)
    err = _fails(runs, tmp_path, capsys)
    assert str(path) in err and "0 case(s)" in err and "at least 2 of each" in err


def test_unlabelled_external_patients_are_predicted_not_scored(runs, small_patients, tmp_path):
    out = tmp_path / "EVAL"
    assert main(["--quiet", "evaluate", str(runs), "--out", str(out), "--no-figures"]) == 0
    ensemble = pd.read_csv(out / "ensemble_predictions.csv")
    n_ext = int((small_patients["set"] == "external").sum())
    assert len(ensemble) == 4 * n_ext and ensemble["label"].isna().sum() == 4 * 2
    per_split = pd.read_csv(out / "per_split.csv")
    assert (per_split["external_n"] == n_ext - 2).all() and (per_split["external_unlabelled"] == 2).all()

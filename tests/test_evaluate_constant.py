"""A model whose predictions are constant: every split's Youden threshold is -inf (every patient
positive), so the split ensemble's threshold (the median of the finite ones) is undefined. evaluate
said 'error: threshold is NaN; pass a number' (or, with no labelled external patient of each class,
wrote an empty threshold without a word); it now says in every output, and on the console, that the
threshold is undefined and why (issue 27)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from test_evaluate import cohort, predictions, write_run
from vcpred.cli import main
from vcpred.evaluate.ensemble import build_ensemble
from vcpred.evaluate.per_split import validation_threshold
from vcpred.evaluate.variants import Variant

CONSTANT = 0.3


def _aggregated(patients: pd.DataFrame, split: int, probability) -> pd.DataFrame:
    """One split's aggregated table (aggregate.aggregate's shape): 30 % of the development patients as
    validation, every external patient, each with `probability` (a number or a function of z)."""
    development = patients[patients["set"] == "development"].sample(frac=0.3, random_state=split)
    chosen = pd.concat([development.assign(set="validation"), patients[patients["set"] == "external"]])
    values = chosen["z"].map(probability).to_numpy() if callable(probability) else probability
    return chosen.set_index("patient_id")[["set", "label"]].assign(probability=values, n_frames=1)


def test_constant_predictions_leave_the_ensemble_threshold_undefined_and_say_why():
    patients = cohort()
    tables = {split: _aggregated(patients, split, CONSTANT) for split in range(3)}
    thresholds = {split: validation_threshold(table, Path(f"split-{split}"))[0] for split, table in tables.items()}
    assert all(t == -math.inf for t in thresholds.values())  # Youden: call every patient positive

    ensemble = build_ensemble(Variant("flat", False), tables, thresholds)

    assert math.isnan(ensemble.threshold)
    assert ensemble.threshold_note.startswith("undefined: the model's validation predictions are constant")
    assert ensemble.metrics["auc"] == 0.5  # the AUC needs no threshold
    assert math.isnan(ensemble.metrics["sensitivity"]) and math.isnan(ensemble.metrics["specificity"])


def test_a_model_no_better_than_chance_at_any_cut_off_is_named_as_such():
    """Not constant, but no cut-off beats calling everyone positive (here: ranked backwards)."""
    patients = cohort()
    tables = {split: _aggregated(patients, split, lambda z: 0.2 + 0.7 / (1 + math.exp(-z))) for split in range(2)}
    tables = {k: t.assign(probability=t["probability"].where(t["label"] != 1, 0.01)) for k, t in tables.items()}
    thresholds = {split: validation_threshold(table, Path(f"split-{split}"))[0] for split, table in tables.items()}
    assert all(t == -math.inf for t in thresholds.values())

    ensemble = build_ensemble(Variant("backwards", False), tables, thresholds)

    assert math.isnan(ensemble.threshold)
    assert ensemble.threshold_note.startswith("undefined: no split has a finite Youden threshold")


def test_a_defined_threshold_has_no_note():
    patients = cohort()
    tables = {split: _aggregated(patients, split, lambda z: 1 / (1 + math.exp(-z))) for split in range(2)}
    thresholds = {split: validation_threshold(table, Path(f"split-{split}"))[0] for split, table in tables.items()}
    ensemble = build_ensemble(Variant("good", False), tables, thresholds)
    assert math.isfinite(ensemble.threshold) and ensemble.threshold_note == ""


@pytest.mark.parametrize("unlabelled", [2, 20], ids=["labelled-external", "unlabelled-external"])
def test_evaluate_says_the_threshold_of_a_constant_model_is_undefined(tmp_path, capsys, unlabelled):
    """With labelled external patients evaluate stopped ('threshold is NaN'); without, it wrote an empty
    threshold (null in evaluation.json, whose notes call null -inf) without a word."""
    patients = cohort(n_dev=50, n_ext=20, n_unlabelled=unlabelled, seed=3)
    runs, out = tmp_path / "runs", tmp_path / "EVAL"
    for split in range(2):
        table = predictions(patients, 1.2, split, seed=split)
        write_run(runs, "good", split, [], table)
        write_run(runs, "flat", split, [], table.assign(probability=CONSTANT))

    assert main(["--quiet", "evaluate", str(runs), "--out", str(out), "--no-figures"]) == 0

    warnings = [line for line in capsys.readouterr().err.splitlines() if "undefined" in line]
    assert len(warnings) == 1 and "flat" in warnings[0] and "predictions are constant" in warnings[0]  # flat + AP: the same
    summary = pd.read_csv(out / "summary.csv")
    external = summary[summary["set"] == "external"].set_index("variant")
    assert external.loc["flat", "ensemble_threshold_note"].startswith("undefined: the model's validation predictions")
    assert math.isnan(external.loc["flat", "ensemble_threshold"])
    assert external.loc["good", "ensemble_threshold"] > 0 and pd.isna(external.loc["good", "ensemble_threshold_note"])
    ensembles = json.loads((out / "evaluation.json").read_text())["ensembles"]
    assert ensembles["flat"]["threshold"] is None and ensembles["flat"]["threshold_note"].startswith("undefined:")
    assert ensembles["good"]["threshold_note"] is None
    predicted = pd.read_csv(out / "ensemble_predictions.csv")
    flat = predicted[predicted["variant"] == "flat"]
    assert flat["threshold"].isna().all() and flat["threshold_note"].str.startswith("undefined:").all()
    per_split = pd.read_csv(out / "per_split.csv")
    assert (per_split.loc[per_split["variant"] == "flat", "threshold"] == -math.inf).all()  # documented: all positive
    tables = (out / "tables.md").read_text()
    assert "flat: ensemble threshold undefined: the model's validation predictions are constant" in tables
    assert "nan" not in tables.lower()

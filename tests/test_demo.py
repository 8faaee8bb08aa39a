"""`vcpred demo` end to end on a small cohort (the same code path as `make demo`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from vcpred.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("weights_home")]


def test_demo_runs_every_step_and_reuses_finished_work(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 0
    printed = capsys.readouterr().out
    assert "best configuration (mean internal AUC)" in printed and "Bayes AUC" in printed
    summary = pd.read_csv(out / "eval" / "summary.csv")
    assert set(summary["configuration"]) == {"cnn-imagenet-linear", "cnn-imagenet-linear-cf", "clinical-only"}
    assert len(list((out / "runs").glob("*/split-*/predictions.csv"))) == 30
    assert (out / "model" / "MODEL_CARD.md").is_file()
    [prediction] = list((out / "predict").glob("*/prediction.json"))
    result = json.loads(prediction.read_text())
    assert 0 <= result["probability"] <= 1 and "not a medical device" in json.dumps(result).lower()
    stamp = (out / "runs" / "clinical-only" / "split-00" / "predictions.csv").stat().st_mtime_ns

    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 0
    rerun = capsys.readouterr().out
    assert "exists, reused" in rerun and "30 run(s) already finished" in rerun
    assert (out / "runs" / "clinical-only" / "split-00" / "predictions.csv").stat().st_mtime_ns == stamp

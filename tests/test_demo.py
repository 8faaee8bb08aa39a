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
    image = {"cnn-imagenet-linear", "cnn-imagenet-lora", "cnn-imagenet-full", "vit-random-full"}
    internal = summary[summary["set"].eq("internal") & summary["configuration"].isin(image)]
    best_image = internal.sort_values("auc_mean", ascending=False).iloc[0]["configuration"]
    assert set(summary["configuration"]) == image | {"clinical-only", f"{best_image}-cf"}
    assert set(summary["ap"].astype(str).str.lower()) == {"true", "false"}
    assert len(list((out / "runs").glob("*/split-*/predictions.csv"))) == 60
    assert (out / "model" / "MODEL_CARD.md").is_file()
    report = (out / "report.html").read_text()
    assert "TRIPOD+AI" in report and "Heat-map gallery" in report and "not a medical device" in report
    assert "attention rollout" in report and "Grad-CAM" in report  # the ViT's and the CNNs' maps
    exported = json.loads((out / "model" / "bundle.json").read_text())["configuration"]
    assert (out / "model-vit" / "bundle.json").is_file() == (exported != "vit-random-full")
    [prediction] = list((out / "predict").glob("*/prediction.json"))
    result = json.loads(prediction.read_text())
    assert 0 <= result["probability"] <= 1 and "not a medical device" in json.dumps(result).lower()
    stamp = (out / "runs" / "clinical-only" / "split-00" / "predictions.csv").stat().st_mtime_ns

    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 0
    rerun = capsys.readouterr().out
    assert "exists, reused" in rerun and "60 run(s) already finished" in rerun
    assert (out / "runs" / "clinical-only" / "split-00" / "predictions.csv").stat().st_mtime_ns == stamp

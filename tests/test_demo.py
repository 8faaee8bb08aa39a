"""`vcpred demo` end to end on a small cohort (the same code path as `make demo`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from vcpred.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("weights_home")]


def test_demo_runs_every_step_and_reuses_finished_work(tmp_path, capsys):
    out = tmp_path / "demo"
    # 2 splits (the fewest the ensembles and the over-split tests take) instead of the study's 10: every
    # step the same, a fifth of the runs
    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16", "--splits", "2"]) == 0
    printed = capsys.readouterr().out
    assert "best variant (evaluate's selection rule)" in printed and "Bayes AUC" in printed
    summary = pd.read_csv(out / "eval" / "summary.csv")
    image = {"cnn-imagenet-linear", "cnn-imagenet-lora", "cnn-imagenet-full", "vit-random-full"}
    internal = summary[summary["set"].eq("internal") & summary["configuration"].isin(image)]
    best_image = internal.sort_values("auc_mean", ascending=False).iloc[0]["configuration"]
    assert set(summary["configuration"]) == image | {"clinical-only", f"{best_image}-cf"}
    assert set(summary["ap"].astype(str).str.lower()) == {"true", "false"}
    assert len(list((out / "runs").glob("*/split-*/predictions.csv"))) == 12
    runs = [yaml.safe_load(p.read_text()) for p in (out / "runs").glob("*/split-*/config.yaml")]
    assert all(r["training_data"]["synthetic"] for r in runs)
    assert {r["precision"] for r in runs if "precision" in r} == {"fp32"}  # the same numbers on every CPU
    fine_tuned = [r for r in runs if r["configuration"] in ("cnn-imagenet-lora", "cnn-imagenet-full")]
    assert len(fine_tuned) == 4 and {r["config"]["training"]["batchnorm"] for r in fine_tuned} == {"frozen"}
    assert {r["config"]["model"]["lora_dropout"] for r in fine_tuned if "lora" in r["configuration"]} == {0.0}
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

    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16", "--splits", "2"]) == 0
    rerun = capsys.readouterr().out
    assert "exists, reused" in rerun and "12 run(s) already finished" in rerun
    assert (out / "runs" / "clinical-only" / "split-00" / "predictions.csv").stat().st_mtime_ns == stamp
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 2  # 10 splits
    assert "trained over 2 splits, not 10" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.parametrize("argv", [["--seed", "1"], ["--development", "30"], ["--external", "20"]])
def test_a_demo_folder_of_another_seed_or_size_is_refused_untouched(tmp_path, capsys, argv):
    # Reusing it would evaluate the new cohort's runs together with the old one's.
    out = tmp_path / "demo"
    (out / "cohort").mkdir(parents=True)
    (out / "cohort" / "manifest.csv").write_text("patient_id\n")
    (out / "cohort" / "synth.json").write_text(json.dumps({"seed": 0, "n_development": 40, "n_external": 16}))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    code = main(["demo", "--out", str(out), "--development", "40", "--external", "16", *argv])

    assert code == 2
    error = capsys.readouterr().err
    assert "holds a demo made with seed 0, 40 development + 16 external patients" in error
    assert f"--out {out}-seed" in error
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_clinical_features_are_added_to_the_chosen_grid_point_only():
    from vcpred.demo import DEMO_EXPERIMENT, with_clinical

    before = yaml.safe_dump(DEMO_EXPERIMENT)
    added = with_clinical(DEMO_EXPERIMENT, "cnn-imagenet-full")["configurations"][-2]
    assert added["name"] == "cnn-imagenet-full-cf" and added["training"]["batchnorm"] == "frozen"
    assert added["training"]["lr"] == 3.0e-4 and added["model"]["method"] == "full"
    assert len(added["model"]["clinical_columns"]) == 6
    assert yaml.safe_dump(DEMO_EXPERIMENT) == before
    # a grid point (a configuration of a grid) is added alone, with its grid value set
    gridded = {**DEMO_EXPERIMENT, "configurations": [
        {"name": "cnn-full-bn{batchnorm}", "model": {"method": "full"}, "training": {"lr": 3.0e-4},
         "grid": {"training.batchnorm": ["frozen", "update"]}}, {"name": "clinical-only"}]}
    added = with_clinical(gridded, "cnn-full-bnupdate")["configurations"][-2]
    assert added["name"] == "cnn-full-bnupdate-cf" and "grid" not in added
    assert added["training"]["batchnorm"] == "update" and added["training"]["lr"] == 3.0e-4

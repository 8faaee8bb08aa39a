"""`vcpred export`: merged split models, thresholds, hashes, model card."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import siblings, snapshot
from vcpred.cli import main
from vcpred.cohort import load_manifest
from vcpred.cohort.provenance import NOT_RECORDED, SYNTHETIC_WARNING, warning_sentence
from vcpred.errors import VcpredError
from vcpred.evaluate.aggregate import aggregate
from vcpred.evaluate.outputs import record_outputs
from vcpred.evaluate.per_split import split_row
from vcpred.evaluate.runs import read_run
from vcpred.evaluate.variants import Variant
from vcpred.models import ClinicalPreprocessor
from vcpred.bundle import BundleError, export_configuration
from vcpred.predict import load_bundle
from vcpred.bundle.files import meta_digest
from vcpred.runs import read_record
from vcpred.training.data import load_frames

VIT = dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))
CNN = dict(backbone="resnet_test", method="lora")
CLINICAL = dict(image=False, clinical_columns=("age", "sex"))  # the runs tests/test_validate.py uses
VIT_LINEAR = dict(backbone="vit_tiny_test", method="linear")  # one frozen backbone: kept once (version 2)


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))  # no pre-trained weights anywhere


@pytest.mark.parametrize("name,model", [("vitlora", VIT), ("resnetlora", CNN), ("vitlin", VIT_LINEAR)])
def test_exported_models_reproduce_the_runs_predictions(artefacts, name, model):
    """LoRA merged, full state reloaded into a randomly built plain model (a linear probe's backbone
    from backbone.safetensors): same probabilities."""
    bundle = load_bundle(artefacts.exported(name, **model))
    manifest, store, _ = artefacts.tiny_cohort()
    cohort = load_manifest(manifest)
    assert bundle.kind == "image" and bundle.meta.family == ("vit" if "vit" in model["backbone"] else "cnn")
    for split_model, entry in zip(bundle.models, bundle.meta.splits):
        assert not hasattr(split_model.net, "peft_config")  # a plain VcpredModel
        table = pd.read_csv(f"{entry.run}/predictions.csv")
        records = [cohort[p] for p in dict.fromkeys(table["patient_id"])]
        frames = load_frames(store, records, ["x"] * len(records), main_only=False,
                             preprocessor=split_model.preprocessor)
        with torch.no_grad():
            probabilities = torch.sigmoid(split_model.net(frames.frames, frames.clinical)).numpy()
        mine = pd.DataFrame({"patient_id": frames.patient_ids, "frame_offset": frames.offsets, "mine": probabilities})
        merged = table.merge(mine, on=["patient_id", "frame_offset"])
        assert len(merged) == len(table)
        np.testing.assert_allclose(merged["probability"], merged["mine"], atol=1e-5)


def test_bundle_records_thresholds_params_and_hashes(artefacts):
    folder = artefacts.exported("vitlora", **VIT)
    meta = json.loads((folder / "bundle.json").read_text())
    assert meta["ap"] is True and meta["aggregate"] == "mean" and meta["clinical_columns"] == ["age", "sex"]
    assert meta["prepare_params"]["size"] == 64 and meta["prepare_params"]["normalize"] == "zscore"
    for entry in meta["splits"]:  # the same Youden threshold `vcpred evaluate` computes
        run = read_run(read_record(folder.parent / "runs-vitlora" / "vitlora" / entry["dir"]))
        row = split_row(Variant("vitlora", True, True), run, aggregate(run.predictions, ap=True))
        assert entry["threshold"] == pytest.approx(row["threshold"])
    assert meta["threshold"] == pytest.approx(np.median([e["threshold"] for e in meta["splits"]]))
    files = sorted(meta["files"])
    assert files == ["MODEL_CARD.md"] + [f"split-0{k}/{f}" for k in (0, 1) for f in
                                          ("clinical.json", "model.json", "model.safetensors")]
    assert not list(folder.rglob("*.pt")) and not list(folder.rglob("*.pkl"))
    card = (folder / "MODEL_CARD.md").read_text()
    assert "Research use only, not a medical device" in card and "development set: 24 patients, 8 with collapse" in card


def test_tampered_or_incomplete_bundles_are_refused(artefacts, tmp_path, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(artefacts.exported("vitlora", **VIT), copy)
    with open(copy / "split-01" / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match=r"split-01/model.safetensors changed since export"):
        load_bundle(copy)
    (copy / "split-01" / "model.safetensors").unlink()
    code = main(["predict", "--model", str(copy), "--image-t2", "x.nii.gz", "--roi-slice", "1",
                 "--roi-box", "1,1,5,5", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "incomplete: missing split-01/model.safetensors" in err and "Traceback" not in err
    shutil.copytree(artefacts.exported("vitlora", **VIT), tmp_path / "edited")
    meta = json.loads((tmp_path / "edited" / "bundle.json").read_text())
    meta["threshold"] = 0.01
    (tmp_path / "edited" / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="edited after export"):
        load_bundle(tmp_path / "edited")
    with pytest.raises(BundleError, match="no bundle.json"):
        load_bundle(tmp_path)


def test_export_cli_refuses_other_folders_and_replaces_with_force(artefacts, tmp_path, capsys):
    runs = artefacts.trained_runs("vitlora", **VIT)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    args = ["--quiet", "export", str(runs), "--configuration", "vitlora", "--no-ap"]
    assert main(args + ["--out", str(tmp_path / "mine")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "mine"), "--force"]) == 2
    assert (tmp_path / "mine" / "notes.txt").is_file()
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--force"]) == 0
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["ap"] is False and meta["model_id"].startswith("vitlora@")
    assert main(["export", str(runs), "--configuration", "nope", "--out", str(tmp_path / "c")]) == 2
    assert "no configuration 'nope'" in capsys.readouterr().err


def test_clinical_only_configurations_export_their_logistic(artefacts, tmp_path):
    runs = artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex"))
    bundle = load_bundle(export_configuration(runs, "clinical", tmp_path / "b"))
    assert bundle.kind == "clinical_only" and bundle.meta.prepare_params is None
    assert all(m.logistic is not None and m.net is None for m in bundle.models)
    assert isinstance(bundle.models[0].preprocessor, ClinicalPreprocessor)
    with pytest.raises(VcpredError, match="not empty"):
        export_configuration(runs, "clinical", tmp_path / "b")


def test_a_failing_export_with_force_keeps_the_earlier_bundle(artefacts, tmp_path, capsys):
    """Issue 14: `export --force` removed the earlier bundle before the new export succeeded; the
    failure left an empty folder that blocked a retry."""
    runs = artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex"))
    out = export_configuration(runs, "clinical", tmp_path / "b")
    before = snapshot(out)
    broken = shutil.copytree(runs, tmp_path / "broken")
    table = broken / "clinical" / "split-01" / "predictions.csv"
    table.write_text(table.read_text().replace(",external,", ",test,", 1))  # fails after split-00 is exported
    config_file = table.parent / "config.yaml"  # a run of another tool: no output hashes, read unverified
    config = yaml.safe_load(config_file.read_text())
    del config["outputs"]
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    args = ["export", "--configuration", "clinical", "--out", str(out), "--force"]
    assert main(args[:1] + [str(broken)] + args[1:]) == 2
    assert "set 'test'" in capsys.readouterr().err
    assert snapshot(out) == before and siblings(out) == ["b", "broken"]
    assert main(args[:1] + [str(runs)] + args[1:]) == 0  # a retry is not blocked
    assert load_bundle(out).kind == "clinical_only"


def test_model_card_reports_eval_performance_and_thresholds_agree_with_evaluate(artefacts, tmp_path):
    runs = artefacts.trained_runs("vitlora", **VIT)
    assert main(["--quiet", "evaluate", str(runs), "--out", str(tmp_path / "eval"), "--no-figures"]) == 0
    folder = export_configuration(runs, "vitlora", tmp_path / "b", eval_dir=tmp_path / "eval")
    card = (folder / "MODEL_CARD.md").read_text()
    assert "| internal |" in card and "| external |" in card and "variant 'vitlora + AP'" in card
    summary = pd.read_csv(tmp_path / "eval" / "summary.csv")
    row = summary[(summary["variant"] == "vitlora + AP") & (summary["set"] == "external")].iloc[0]
    assert json.loads((folder / "bundle.json").read_text())["threshold"] == pytest.approx(row["ensemble_threshold"])


def _card_section(card: str, title: str) -> str:
    """The lines of one '## title' section of MODEL_CARD.md."""
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_synthetic_training_data_is_recorded_in_the_bundle_and_warned_on_the_card(artefacts):
    folder = artefacts.exported("vitlora", synthetic=True, **VIT)
    meta = json.loads((folder / "bundle.json").read_text())
    recorded = meta["training_data"]
    assert recorded["synthetic"] is True and recorded["evidence"] == "synth.json (vcpred synth, seed 0)"
    assert load_bundle(folder).synthetic
    card = (folder / "MODEL_CARD.md").read_text()
    top = card.split("## Intended use")[0]
    assert f"**{warning_sentence()}**" in top and SYNTHETIC_WARNING in warning_sentence().lower()
    assert "- origin: synthetic cohort (synth.json" in _card_section(card, "Training population")
    assert "Trained and evaluated on synthetic data" in _card_section(card, "Known limits")


def test_real_training_data_gets_no_synthetic_warning(artefacts):
    folder = artefacts.exported("vitlora", **VIT)
    meta = json.loads((folder / "bundle.json").read_text())
    assert meta["training_data"] == {"synthetic": False,
                                     "evidence": "no synth.json or truth.csv beside the manifest"}
    card = (folder / "MODEL_CARD.md").read_text()
    assert warning_sentence() not in card and "Trained and evaluated on synthetic data" not in card
    assert "- origin: not marked synthetic (no synth.json or truth.csv beside the manifest)" in card
    assert not load_bundle(folder).synthetic


def test_runs_that_disagree_export_as_synthetic(artefacts, tmp_path):
    """One split trained on synthetic data is enough: the bundle is marked synthetic."""
    runs = shutil.copytree(artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex")), tmp_path / "runs")
    config_file = runs / "clinical" / "split-01" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["training_data"] = {"synthetic": True, "evidence": "truth.csv (true risks of a synthetic cohort)"}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    meta = json.loads((export_configuration(runs, "clinical", tmp_path / "b") / "bundle.json").read_text())
    assert meta["training_data"]["synthetic"] is True
    assert meta["training_data"]["evidence"] == ("truth.csv (true risks of a synthetic cohort) (1 of 2 runs "
                                                 "synthetic: read as synthetic)")


def test_bundles_exported_before_the_record_read_as_not_recorded(artefacts, tmp_path):
    copy = shutil.copytree(artefacts.exported("vitlora", synthetic=True, **VIT), tmp_path / "old")
    meta = json.loads((copy / "bundle.json").read_text())
    del meta["training_data"]
    meta["meta_sha256"] = meta_digest(meta)
    (copy / "bundle.json").write_text(json.dumps(meta))
    bundle = load_bundle(copy)
    assert bundle.training_data == NOT_RECORDED and not bundle.synthetic


def test_card_separates_training_and_external_populations_and_states_the_loss(artefacts):
    card = (artefacts.exported("vitlora", **VIT) / "MODEL_CARD.md").read_text()
    training = _card_section(card, "Training population")
    external = _card_section(card, "External evaluation population")
    assert "- development set: 24 patients, 8 with collapse" in training and "- sites: A\n" in training
    assert "external" not in training.replace("external patients", "") and "B" not in training.split("- sites:")[1]
    assert "- external set: 10 patients, 5 with collapse" in external and "- sites: B\n" in external
    assert "(19 train / 5 validation patients each)" in training  # config.yaml `patients`
    assert ("- training loss and calibration: unweighted binary cross-entropy; output bias initialised at the "
            "training prevalence; no resampling; no recalibration") in card
    validation = _card_section(card, "What validation data was used for")
    assert "early stopping" in validation and "Youden's J" in validation
    assert "The external set chose nothing" in validation


def test_card_names_the_loss_the_runs_recorded(artefacts, tmp_path):
    runs = shutil.copytree(artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex")), tmp_path / "runs")
    card = (export_configuration(runs, "clinical", tmp_path / "b") / "MODEL_CARD.md").read_text()
    assert "unweighted logistic regression (L2 penalty, log-loss); no resampling; no recalibration" in card
    for split in ("split-00", "split-01"):  # runs from before the loss (and the output hashes) were recorded
        metrics = json.loads((runs / "clinical" / split / "metrics.json").read_text())
        del metrics["loss"]
        (runs / "clinical" / split / "metrics.json").write_text(json.dumps(metrics))
        config = yaml.safe_load((runs / "clinical" / split / "config.yaml").read_text())
        del config["outputs"]
        (runs / "clinical" / split / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    card = (export_configuration(runs, "clinical", tmp_path / "c") / "MODEL_CARD.md").read_text()
    assert "- training loss and calibration: not recorded in the runs' metrics.json" in card
    assert "unweighted" not in card


def test_card_writes_n_a_where_the_evaluation_has_no_number(artefacts, tmp_path):
    runs = artefacts.trained_runs("vitlora", **VIT)
    eval_dir = tmp_path / "eval"
    assert main(["--quiet", "evaluate", str(runs), "--out", str(eval_dir), "--no-figures"]) == 0
    summary = pd.read_csv(eval_dir / "summary.csv")
    summary[["auc_sd", "sensitivity_mean", "ensemble_auc_ci_low", "ensemble_brier"]] = np.nan
    summary.to_csv(eval_dir / "summary.csv", index=False)
    evaluation = json.loads((eval_dir / "evaluation.json").read_text())
    evaluation["ensembles"]["vitlora + AP"]["calibration_slope"] = None
    (eval_dir / "evaluation.json").write_text(json.dumps(evaluation))
    record_outputs(eval_dir)  # an evaluation that has these n/a numbers as written (an edited one is refused)
    card = (export_configuration(runs, "vitlora", tmp_path / "b", eval_dir=eval_dir) / "MODEL_CARD.md").read_text()
    assert not re.search(r"\bnan\b", card, flags=re.IGNORECASE)
    assert "(SD n/a: one split)" in card and "95 % CI n/a-" in card and "slope n/a" in card


def test_export_refuses_an_evaluation_edited_after_it_was_written(artefacts, tmp_path, capsys):
    """An AUC edited in summary.csv must not reach the model card (issue 27: the report refuses it,
    export took it): one line naming the file, before anything is exported."""
    runs = artefacts.trained_runs("clinical", **CLINICAL)
    eval_dir = tmp_path / "eval"
    assert main(["--quiet", "evaluate", str(runs), "--out", str(eval_dir), "--no-figures"]) == 0
    capsys.readouterr()  # evaluate's own warnings (a small sample) are not export's
    summary = pd.read_csv(eval_dir / "summary.csv")
    summary.loc[summary["set"] == "external", "auc_mean"] = 0.9999
    summary.to_csv(eval_dir / "summary.csv", index=False)
    argv = ["export", str(runs), "--configuration", "clinical", "--out", str(tmp_path / "model"), "--eval"]
    assert main([*argv, str(eval_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(eval_dir / "summary.csv") in err and "vcpred evaluate" in err
    assert [name for name in siblings(tmp_path / "model") if "model" in name] == []  # nor a temporary one
    # a folder that is no evaluation at all is refused alike
    assert main([*argv, str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and len(err.strip().splitlines()) == 1


def test_a_bundle_json_that_does_not_fit_its_record_is_refused(artefacts, tmp_path):
    """bundle.json is read into BundleMeta: a value of the wrong type is named, even with a valid digest."""
    copy = tmp_path / "bundle"
    shutil.copytree(artefacts.exported("resnetlora", **CNN), copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["splits"][0]["split"] = "zero"
    meta["meta_sha256"] = meta_digest(meta)
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"splits\[0\]\.split: expected int"):
        load_bundle(copy)

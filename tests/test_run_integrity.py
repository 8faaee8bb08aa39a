"""Issue 14, silent staleness and corruption of runs: a run is finished only for the same resolved
configuration, splits, manifest and store; its outputs are hashed when it finishes and verified by
experiment, evaluate and export; one process per run dir; the status file reflects the runs;
unknown YAML keys and malformed config.yaml files are clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import snapshot
from test_experiment import write_experiment
from tiny_store import build_tiny_cohort
from vcpred.cli import main
from vcpred.errors import ConfigError
from vcpred.experiment import load_experiment, run_experiment

pytestmark = pytest.mark.usefixtures("weights_home")

CLIN = {"name": "clin", "model": {"image": False, "clinical_columns": ["age"]}}
CLIN2 = {"name": "clin2", "model": {"image": False, "clinical_columns": ["age", "sex"]}}
CNN = {"name": "cnn", "model": {"method": "lora"}}


def experiment(path: Path, runs: Path, *extra: str) -> int:
    return main(["experiment", str(path), "--out", str(runs), *extra])


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def own_tiny(tmp_path):
    """A private tiny cohort (its manifest may be edited)."""
    return build_tiny_cohort(tmp_path / "tiny")


def test_a_changed_setting_makes_finished_runs_stale(tiny, tmp_path, capsys):
    """A different epochs value in the experiment YAML gave 'already finished: skipped'."""
    path, runs = write_experiment(tiny, tmp_path, [CLIN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    before = snapshot(runs / "clin")
    edit(path, lambda d: d["training"].update(epochs=2))
    capsys.readouterr()
    assert experiment(path, runs) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 3 finished run(s)") and "clin/split-00" in err and "clin/split-02" in err
    assert "training.epochs 1 -> 2" in err and "--retrain-stale" in err and len(err.strip().splitlines()) == 1
    assert snapshot(runs / "clin") == before  # nothing trained, nothing replaced
    assert experiment(path, runs, "--retrain-stale") == 0
    out = capsys.readouterr().out
    assert "3 trained (3 stale: configuration changed (training.epochs 1 -> 2))" in out
    saved = yaml.safe_load((runs / "clin" / "split-00" / "config.yaml").read_text())
    assert saved["config"]["training"]["epochs"] == 2
    assert experiment(path, runs) == 0 and "3 already finished" in capsys.readouterr().out


def test_the_stale_detail_is_in_the_debug_log(tiny, tmp_path, capsys):
    path, runs = write_experiment(tiny, tmp_path, [CLIN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    edit(path, lambda d: d["training"].update(lr=0.5))
    capsys.readouterr()
    assert main(["--debug", "experiment", str(path), "--out", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "clin/split-01: configuration changed (training.lr" in err


def test_a_new_split_seed_or_regenerated_splits_file_is_not_skipped(tiny, tmp_path, capsys):
    path, runs = write_experiment(tiny, tmp_path, [CLIN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    edit(path, lambda d: d["splits"].update(seed=2))  # splits.json exists, made with seed 1
    capsys.readouterr()
    assert experiment(path, runs) == 2
    err = capsys.readouterr().err
    assert "seed 1" in err and "seed 2" in err and "splits.json" in err
    (tmp_path / "splits.json").unlink()  # made again, with seed 2: another splits file
    assert experiment(path, runs) == 2
    err = capsys.readouterr().err
    assert "3 finished run(s)" in err and "splits file changed" in err


def test_config_yaml_records_the_inputs_and_the_hash_of_every_output(tiny, tmp_path):
    from vcpred.hashing import sha256_file

    path, runs = write_experiment(tiny, tmp_path, [CNN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    run = runs / "cnn" / "split-00"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert list(saved)[-1] == "status" and saved["status"] == "done"
    assert set(saved["inputs"]) == {"config_sha256", "splits_sha256", "manifest_sha256", "store_sha256"}
    assert saved["inputs"]["splits_sha256"] == saved["splits_sha256"] == sha256_file(tmp_path / "splits.json")
    assert sorted(saved["outputs"]) == ["metrics.json", "model/model.json", "model/model.safetensors",
                                        "predictions.csv"]
    assert all(sha256_file(run / name) == digest for name, digest in saved["outputs"].items())


def test_a_run_copied_into_another_splits_folder_is_stale(tiny, tmp_path, capsys):
    """run_state reads the run through its RunRecord: a split-01 run copied to split-02 (same
    inputs, hashes intact) was 'finished' for split 2."""
    path, runs = write_experiment(tiny, tmp_path, [CLIN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    shutil.rmtree(runs / "clin" / "split-02")
    shutil.copytree(runs / "clin" / "split-01", runs / "clin" / "split-02")
    capsys.readouterr()
    assert experiment(path, runs) == 2
    err = capsys.readouterr().err
    assert "1 finished run(s)" in err and "clin/split-02" in err and "split 1" in err
    assert experiment(path, runs, "--retrain-stale") == 0
    assert yaml.safe_load((runs / "clin" / "split-02" / "config.yaml").read_text())["split"] == 2


def test_a_changed_store_makes_image_runs_stale(own_tiny, tmp_path, capsys):
    from vcpred.imaging import load_prepared
    from vcpred.imaging.store import record_prepared, write_prepared

    manifest, store, _ = own_tiny
    path, runs = write_experiment(own_tiny, tmp_path, [CNN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    patient = load_prepared(store, "P001")
    patient.frames = patient.frames * 0.5
    write_prepared(store, patient)
    record_prepared(store, "P001")
    capsys.readouterr()
    assert experiment(path, runs) == 2 and "prepared store changed" in capsys.readouterr().err


def test_a_flipped_model_byte_is_refused_by_export_and_experiment(tiny, tmp_path, capsys):
    """Bytes flipped in a run's model.safetensors were exported and certified by new bundle hashes."""
    path, runs = write_experiment(tiny, tmp_path, [CNN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    weights = runs / "cnn" / "split-01" / "model" / "model.safetensors"
    flip_byte(weights)
    capsys.readouterr()
    assert main(["export", str(runs), "--configuration", "cnn", "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert str(weights) in err and "changed since the run finished" in err
    assert not (tmp_path / "model").exists()
    assert experiment(path, runs) == 2
    err = capsys.readouterr().err
    assert "1 finished run(s)" in err and "cnn/split-01" in err and "model/model.safetensors" in err
    assert experiment(path, runs, "--retrain-stale") == 0
    assert main(["export", str(runs), "--configuration", "cnn", "--out", str(tmp_path / "model")]) == 0


def test_predictions_that_lost_lines_are_refused_by_evaluate(tiny, tmp_path, capsys):
    """A predictions.csv that lost whole lines (here a validation patient's) evaluated silently
    with a different AUC."""
    path, runs = write_experiment(tiny, tmp_path, [CLIN, CLIN2]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    table = runs / "clin" / "split-01" / "predictions.csv"
    lines = table.read_text().splitlines(keepends=True)
    assert ",validation," in lines[1]
    table.write_text("".join(lines[:1] + lines[2:]))
    capsys.readouterr()
    assert main(["evaluate", str(runs), "--out", str(tmp_path / "eval"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert str(table) in err and "changed since the run finished" in err and len(err.strip().splitlines()) == 1


def test_evaluate_refuses_runs_whose_splits_file_changed_or_differs(tiny, tmp_path, capsys):
    """evaluate accepted runs whose recorded splits_sha256 no longer matched."""
    path, runs = write_experiment(tiny, tmp_path / "a", [CLIN, CLIN2]), tmp_path / "a" / "runs"
    assert experiment(path, runs) == 0
    splits = tmp_path / "a" / "splits.json"
    original = splits.read_bytes()
    payload = json.loads(original)
    payload["splits"] = payload["splits"][::-1]  # regenerated: other patients per split index
    splits.write_text(json.dumps(payload))
    capsys.readouterr()
    assert main(["evaluate", str(runs), "--out", str(tmp_path / "eval"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "splits file" in err and str(splits) in err and "clin/split-00" in err and "clin2/split-02" in err
    splits.write_bytes(original)
    # One configuration's split trained on another splits file (seed 2) than the others.
    other = write_experiment(tiny, tmp_path / "b", [CLIN])
    edit(other, lambda d: d["splits"].update(seed=2))
    assert experiment(other, tmp_path / "b" / "runs") == 0
    shutil.rmtree(runs / "clin" / "split-01")
    shutil.copytree(tmp_path / "b" / "runs" / "clin" / "split-01", runs / "clin" / "split-01")
    capsys.readouterr()
    assert main(["evaluate", str(runs), "--out", str(tmp_path / "eval"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "different splits files" in err and "clin/split-01" in err


def test_evaluate_refuses_runs_whose_manifest_changed(own_tiny, tmp_path, capsys):
    manifest, _, _ = own_tiny
    path, runs = write_experiment(own_tiny, tmp_path, [CLIN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    manifest.write_text(manifest.read_text().replace(",71,", ",72,", 1))
    capsys.readouterr()
    assert main(["evaluate", str(runs), "--out", str(tmp_path / "eval"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "manifest" in err and str(manifest) in err and "changed since" in err


def test_report_without_gallery_verifies_the_bundle(report_artefacts, tmp_path, capsys):
    """`report --gallery 0` read bundle.json alone: a tampered model was reported as the model."""
    copy = shutil.copytree(report_artefacts.model_dir(), tmp_path / "model")
    flip_byte(copy / "split-00" / "model.safetensors")
    capsys.readouterr()
    assert main(["report", str(report_artefacts.evaluation()), "--model", str(copy), "--gallery", "0",
                 "--out", str(tmp_path / "report.html")]) == 2
    err = capsys.readouterr().err
    assert "split-00/model.safetensors" in err and "changed since export" in err
    assert not (tmp_path / "report.html").exists()


def test_a_second_experiment_skips_the_run_another_one_is_training(tiny, tmp_path, monkeypatch):
    """Two experiments on one RUNS folder trained the same runs at once and left a status file
    that contradicted the runs."""
    import vcpred.training.run as run_module

    path, runs = write_experiment(tiny, tmp_path, [CLIN]), tmp_path / "runs"
    real, inner = run_module._train_clinical_only, []

    def train_while_another_experiment_starts(*args, **kwargs):
        if not inner:
            inner.append(None)
            inner[0] = run_experiment(load_experiment(path), runs)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "_train_clinical_only", train_while_another_experiment_starts)
    outer = run_experiment(load_experiment(path), runs)
    second = inner[0]
    assert second.held == ["clin/split-00"] and sorted(second.done) == ["clin/split-01", "clin/split-02"]
    assert outer.done == ["clin/split-00"] and sorted(outer.skipped) == ["clin/split-01", "clin/split-02"]
    assert not outer.failed and not second.failed
    status = json.loads((runs / "experiment_status.json").read_text())
    assert status["done"] == ["clin/split-00", "clin/split-01", "clin/split-02"]
    assert status["failed"] == {} and status["running"] == [] and status["pending"] == []


def test_the_status_file_reflects_the_runs_after_an_interruption(tiny, tmp_path, monkeypatch):
    import vcpred.training.run as run_module

    path, runs = write_experiment(tiny, tmp_path, [CLIN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    edit(path, lambda d: d["training"].update(epochs=3))
    real, calls = run_module._train_clinical_only, []

    def interrupted_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "_train_clinical_only", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(load_experiment(path), runs, retrain_stale=True)
    status = json.loads((runs / "experiment_status.json").read_text())
    assert status["done"] == ["clin/split-00"]
    assert sorted(status["stale"]) == ["clin/split-01", "clin/split-02"]


def test_train_refuses_a_run_dir_another_process_is_training(tiny, tmp_path, capsys):
    from vcpred.locking import held
    from vcpred.training.run import run_lock_path

    config = tmp_path / "train.yaml"
    manifest, store, splits = tiny
    config.write_text(yaml.safe_dump({"configuration": "clin", "manifest": str(manifest), "store": str(store),
                                      "splits": str(splits), "model": {"image": False, "clinical_columns": ["age"]}}))
    out = tmp_path / "run"
    with held(run_lock_path(out), "test"):
        assert main(["train", str(config), "--split", "0", "--out", str(out)]) == 2
    assert "in use by pid" in capsys.readouterr().err and not out.exists()
    assert main(["train", str(config), "--split", "0", "--out", str(out)]) == 0


@pytest.mark.parametrize("change,expected", [
    (lambda d: d.update(trainig={"epochs": 3}), "trainig"),
    (lambda d: d["configurations"][0].update(modle={"method": "full"}), "modle"),
    (lambda d: d["splits"].update(sed=3), "sed"),
    (lambda d: d["configurations"][0].update(grid={"training.epoch": [1, 2]}), "epoch"),
])
def test_unknown_keys_in_an_experiment_file_are_errors(tiny, tmp_path, change, expected):
    """A misspelled section (`trainig:`) was ignored and the runs trained with the defaults."""
    path = write_experiment(tiny, tmp_path, [CLIN])
    edit(path, change)
    with pytest.raises(ConfigError, match=expected):
        load_experiment(path)


def test_unknown_keys_in_a_training_config_are_errors(tiny, tmp_path):
    from vcpred.training import load_config

    manifest, store, splits = tiny
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"configuration": "x", "manifest": str(manifest), "store": str(store),
                                    "splits": str(splits), "trainig": {"epochs": 3}}))
    with pytest.raises(ConfigError, match="trainig"):
        load_config(path)


def test_a_malformed_config_yaml_is_named_by_evaluate_export_and_experiment(tiny, tmp_path, capsys):
    path, runs = write_experiment(tiny, tmp_path, [CLIN]), tmp_path / "runs"
    assert experiment(path, runs) == 0
    broken = runs / "clin" / "split-01" / "config.yaml"
    broken.write_text("configuration: clin\nsplit: [1\n")
    for args in (["evaluate", str(runs), "--out", str(tmp_path / "eval")],
                 ["export", str(runs), "--configuration", "clin", "--out", str(tmp_path / "model")],
                 ["experiment", str(path), "--out", str(runs)]):
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error:") and str(broken) in err and "Traceback" not in err, (args, err)
    broken.write_bytes(b"\xff\xfe\x00garbage")
    capsys.readouterr()
    assert experiment(path, runs) == 2 and str(broken) in capsys.readouterr().err
    assert experiment(path, runs, "--retrain-stale") == 0

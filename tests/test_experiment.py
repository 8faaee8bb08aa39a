from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vcpred.cli import main
from vcpred.errors import ConfigError
from vcpred.experiment import load_experiment, run_experiment
from vcpred.runs import is_finished
from vcpred.experiment.grid import expand_entry



pytestmark = pytest.mark.usefixtures("weights_home")


def write_experiment(tiny, folder: Path, configurations: list[dict]) -> Path:
    manifest, store, _ = tiny
    config = {"manifest": str(manifest), "store": str(store),
              "splits": {"file": str(folder / "splits.json"), "n_splits": 3, "seed": 1},
              "model": {"weights": "random", "backbone": "resnet_test"},
              "training": {"epochs": 1, "batch_size": 8},
              "configurations": configurations}
    path = folder / "experiment.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_grid_expansion_names():
    entries = expand_entry({"name": "cnn-{method}", "grid": {"model.method": ["linear", "lora"],
                                                              "model.clinical_columns": [[], ["age", "sex"]]}})
    assert [e["name"] for e in entries] == ["cnn-linear-none", "cnn-linear-age+sex", "cnn-lora-none", "cnn-lora-age+sex"]
    assert entries[3]["model"] == {"method": "lora", "clinical_columns": ["age", "sex"]}
    with pytest.raises(ConfigError, match="model.<setting>"):
        expand_entry({"name": "x", "grid": {"lr": [1, 2]}})
    with pytest.raises(ConfigError, match="name"):
        expand_entry({"grid": {}})


def test_expands_to_one_run_per_configuration_and_split(tiny, tmp_path):
    path = write_experiment(tiny, tmp_path, [{"name": "cnn-{method}", "grid": {"model.method": ["linear", "full"]}},
                                             {"name": "clinical", "model": {"image": False, "clinical_columns": ["age"]}}])
    specs = load_experiment(path)
    assert [(s.name, s.split) for s in specs][:4] == [("cnn-linear", 0), ("cnn-linear", 1), ("cnn-linear", 2), ("cnn-full", 0)]
    assert len(specs) == 9 and (tmp_path / "splits.json").is_file()
    assert specs[0].run_dir(tmp_path / "runs") == tmp_path / "runs" / "cnn-linear" / "split-00"


def test_interrupted_experiment_resumes_without_redoing_finished_runs(tiny, tmp_path, monkeypatch):
    path = write_experiment(tiny, tmp_path, [{"name": "lin", "model": {"method": "linear"}},
                                             {"name": "clin", "model": {"image": False, "clinical_columns": ["age"]}}])
    specs = load_experiment(path)
    import vcpred.training.run as run_module
    real, calls = run_module.ensure_run, []

    def interrupted_after_four(*args, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "ensure_run", interrupted_after_four)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(specs, tmp_path / "runs")
    finished = [s for s in specs if is_finished(s.run_dir(tmp_path / "runs"))]
    assert len(finished) == 4
    stamps = {s.run_dir(tmp_path / "runs"): (s.run_dir(tmp_path / "runs") / "predictions.csv").stat().st_mtime_ns
              for s in finished}
    monkeypatch.setattr(run_module, "ensure_run", real)
    summary = run_experiment(specs, tmp_path / "runs")
    assert len(summary.skipped) == 4 and len(summary.done) == 2 and not summary.failed
    assert all((d / "predictions.csv").stat().st_mtime_ns == t for d, t in stamps.items())


def test_failed_run_is_reported_and_the_rest_go_on(tiny, tmp_path, capsys):
    path = write_experiment(tiny, tmp_path, [{"name": "broken", "model": {"backbone": "no_such_net"}},
                                             {"name": "clin", "model": {"image": False, "clinical_columns": ["age"]}}])
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs")]) == 2
    out = capsys.readouterr().out
    assert "3 trained" in out and "3 failed" in out and "unknown backbone" in out
    status = json.loads((tmp_path / "runs" / "experiment_status.json").read_text())
    assert len(status["failed"]) == 3 and len(status["done"]) == 3


def test_a_run_folder_holding_user_files_is_never_removed(tiny, tmp_path):
    """Issue 14: experiment removed RUNS/<configuration>/split-00/ holding a config.yaml without
    `status: done`, with the user's other files in it; now that run fails and the others go on."""
    from conftest import snapshot

    path = write_experiment(tiny, tmp_path, [{"name": "clin", "model": {"image": False, "clinical_columns": ["age"]}}])
    mine = tmp_path / "runs" / "clin" / "split-00"
    mine.mkdir(parents=True)
    (mine / "config.yaml").write_text("status: drafting\n")
    (mine / "data.csv").write_text("precious")
    before = snapshot(mine)
    summary = run_experiment(load_experiment(path), tmp_path / "runs")
    assert list(summary.failed) == ["clin/split-00"] and "not a vcpred run dir" in summary.failed["clin/split-00"]
    assert len(summary.done) == 2 and snapshot(mine) == before
    assert sorted(p.name for p in mine.parent.iterdir()) == ["split-00", "split-01", "split-02"]


def test_submitit_executor_runs_through_submitit(tiny, tmp_path):
    pytest.importorskip("submitit")
    path = write_experiment(tiny, tmp_path, [{"name": "clin", "model": {"image": False, "clinical_columns": ["age"]}}])
    specs = load_experiment(path)[:2]
    summary = run_experiment(specs, tmp_path / "runs", executor="slurm", submitit_cluster="local",
                             slurm_params={"timeout_min": 5})
    assert len(summary.done) == 2, summary.failed
    assert list((tmp_path / "runs" / "slurm").glob("*_log.out"))


def test_paper_config_is_the_study_grid(tmp_path: Path):
    """configs/paper.yaml loads against a cohort with the study's clinical columns: 27 configurations x 10 splits."""
    from conftest import patient_row, write_manifest
    from vcpred.models.registry import get_backbone

    rows = [patient_row(i, label=int(i % 3 == 0), bmi=24 + i % 5, bmd_tscore=-2.5 - i % 4 / 10, days_to_mri=i % 30)
            for i in range(40)]
    rows += [patient_row(100 + i, set_name="external", label=int(i % 2), bmi=25, bmd_tscore=-3, days_to_mri=5)
             for i in range(6)]
    header = ["patient_id", "set", "image_t2", "roi_slice", "roi_row_min", "roi_col_min", "roi_row_max",
              "roi_col_max", "label", "site", "level", "age", "sex", "bmi", "bmd_tscore", "days_to_mri"]
    write_manifest(tmp_path / "cohort", rows, header=header)
    config = tmp_path / "paper.yaml"
    config.write_text((Path(__file__).resolve().parents[1] / "configs" / "paper.yaml").read_text())
    specs = load_experiment(config)
    assert len(specs) == 270 and {s.split for s in specs} == set(range(10))
    models = {s.name: s.config.model for s in specs}
    assert len(models) == 27
    vits = {(m.weights, m.method) for m in models.values() if m.backbone == "vit_base_patch16_224"}
    assert vits == {(w, m) for w in ("biomedclip", "imagenet") for m in ("full", "linear", "lora")} | {("random", "full")}
    cnns = {(m.backbone, m.method) for m in models.values() if m.image and m.backbone != "vit_base_patch16_224"}
    assert cnns == {(b, m) for b in ("resnet50", "densenet121") for m in ("full", "linear", "lora")}
    assert all(get_backbone(m.backbone).input_size == 224 for m in models.values() if m.image)
    with_cf = [n for n, m in models.items() if m.clinical_columns]
    assert len(with_cf) == 14 and all(n.endswith("-cf") or n == "clinical-only" for n in with_cf)
    assert models["vit-biomedclip-lora-cf"].clinical_columns == ["age", "sex", "bmd_tscore", "bmi", "days_to_mri"]

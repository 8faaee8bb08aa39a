"""Issue 19, small cohorts fail late: split settings that leave fewer than 2 cases or controls in a
validation set are refused before any training (cohort split and experiment), repeated splits are
warned about, a splits file that disagrees with the experiment is an error, `experiment --list`
writes nothing, missing weights stop an experiment before its first run, and when the external set
is too small the n/a reasons say why (no figure, table or model card shows 'nan')."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import patient_row, write_manifest
from test_experiment import write_experiment
from tiny_store import build_tiny_cohort
from vcpred.cli import main

pytestmark = pytest.mark.usefixtures("weights_home")

CLIN = {"name": "clin", "model": {"image": False, "clinical_columns": ["age"]}}


def small_manifest(folder: Path, labels: list[int]) -> Path:
    return write_manifest(folder, [patient_row(i, label=label) for i, label in enumerate(labels)])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- cohort split ---------------------------------------------------------------------------------


def test_cohort_split_refuses_a_validation_set_with_one_case(tmp_path, capsys):
    """7 cases at --val-fraction 0.2 put 1 case in each validation set: evaluate refused it only after
    every run was trained."""
    manifest = small_manifest(tmp_path / "c", [int(i % 3 == 0) for i in range(20)])  # 7 cases, 13 controls
    out = tmp_path / "splits.json"
    assert main(["cohort", "split", str(manifest), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "puts 1 case and 3 controls in each validation set" in line and "at least 2 cases and 2 controls" in line
    assert "use --val-fraction 0.22 or more" in line and not out.exists()
    assert main(["--quiet", "cohort", "split", str(manifest), "--out", str(out), "--val-fraction", "0.3"]) == 0
    splits = json.loads(out.read_text())["splits"]
    labels = {f"P{i:03d}": int(i % 3 == 0) for i in range(20)}
    assert all(sum(labels[p] for p in s["val"]) >= 2 and sum(1 - labels[p] for p in s["val"]) >= 2 for s in splits)


def test_cohort_split_says_when_the_cohort_is_too_small_for_any_fraction(tmp_path, capsys):
    manifest = small_manifest(tmp_path / "c", [1, 1, 0, 0, 0, 0, 0, 0])  # 2 cases
    assert main(["cohort", "split", str(manifest), "--out", str(tmp_path / "s.json"), "--val-fraction", "0.5"]) == 2
    line = one_error_line(capsys)
    assert "needs at least 3 cases and 3 controls" in line and not (tmp_path / "s.json").exists()


def test_cohort_split_warns_when_splits_repeat(tmp_path, capsys):
    """10 splits of 8 patients: only 36 validation sets exist, and 3 of the 10 draws repeat one."""
    manifest = small_manifest(tmp_path / "c", [0, 1] * 4)
    out = tmp_path / "splits.json"
    assert main(["cohort", "split", str(manifest), "--out", str(out), "--val-fraction", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "3 of the 10 splits repeat an earlier one" in err and "only 36 different validation set(s)" in err
    splits = json.loads(out.read_text())["splits"]
    assert len({tuple(s["val"]) for s in splits}) == 7
    assert main(["cohort", "split", str(manifest), "--out", str(tmp_path / "two.json"), "--val-fraction", "0.5",
                 "--n-splits", "2"]) == 0
    assert "repeat" not in capsys.readouterr().err


# --- experiment -----------------------------------------------------------------------------------


def _small_experiment(tmp_path: Path, labels: list[int], splits: dict) -> Path:
    return clinical_experiment(tmp_path, small_manifest(tmp_path / "cohort", labels), splits, CLIN)


def clinical_experiment(folder: Path, manifest: Path, splits: dict, configuration: dict) -> Path:
    """folder/experiment.yaml: one one-epoch configuration on manifest, its store in folder/store."""
    config = {"manifest": str(manifest), "store": str(folder / "store"), "splits": splits,
              "model": {"weights": "random"}, "training": {"epochs": 1}, "configurations": [configuration]}
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_experiment_refuses_a_one_case_validation_set_before_training(tmp_path, capsys):
    path = _small_experiment(tmp_path, [int(i % 3 == 0) for i in range(20)],
                             {"file": str(tmp_path / "splits.json"), "n_splits": 3})
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs")]) == 2
    line = one_error_line(capsys)
    assert "splits: val_fraction 0.2 of the 20 development patients" in line and "1 case" in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "splits.json").exists()


def test_experiment_refuses_an_existing_splits_file_with_a_one_case_validation_set(tiny, tmp_path, capsys):
    manifest, _, _ = tiny
    ids = [f"P{i:03d}" for i in range(24)]  # cases: i % 3 == 0
    val = ["P000", "P001", "P002", "P004"]  # one case
    (tmp_path / "splits.json").write_text(json.dumps({"splits": [
        {"train": [p for p in ids if p not in val], "val": val}]}))
    path = write_experiment(tiny, tmp_path, [CLIN])
    data = yaml.safe_load(path.read_text())
    data["splits"] = {"file": str(tmp_path / "splits.json")}
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs")]) == 2
    line = one_error_line(capsys)
    assert "split 0 (1 case, 3 controls)" in line and not (tmp_path / "runs").exists()


def test_a_splits_file_without_its_settings_must_match_the_experiments(tiny, tmp_path, capsys):
    """paper.yaml (n_splits 10) used an existing splits.json of 2 splits, made by another tool, silently."""
    from vcpred.cohort import load_manifest, make_splits

    manifest, _, _ = tiny
    splits = make_splits(load_manifest(manifest), n_splits=2, seed=0)
    (tmp_path / "splits.json").write_text(json.dumps({"splits": [{"train": list(s.train_ids), "val": list(s.val_ids)}
                                                                 for s in splits]}))
    path = write_experiment(tiny, tmp_path, [CLIN])
    data = yaml.safe_load(path.read_text())
    data["splits"] = {"file": str(tmp_path / "splits.json"), "n_splits": 10, "seed": 0}
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs"), "--list"]) == 2
    line = one_error_line(capsys)
    assert "was made with n_splits 2 but the experiment asks for n_splits 10" in line
    # the same 2 splits named with their own count and seed: they are what the settings make
    data["splits"]["n_splits"] = 2
    path.write_text(yaml.safe_dump(data))
    assert main(["--quiet", "experiment", str(path), "--out", str(tmp_path / "runs"), "--list"]) == 0
    data["splits"]["seed"] = 5  # not recorded in the file, and seed 5 makes other splits
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs"), "--list"]) == 2
    assert "does not record its seed" in one_error_line(capsys)


def test_experiment_list_writes_nothing(tiny, tmp_path, capsys):
    path = write_experiment(tiny, tmp_path, [CLIN])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs"), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["clin/split-00", "clin/split-01", "clin/split-02"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no splits.json, no runs folder


def test_missing_weights_are_found_for_every_configuration_before_the_first_run(tiny, tmp_path, capsys):
    """The clinical run trained, then each imagenet run failed on its own; now nothing starts."""
    configurations = [CLIN, {"name": "res-in", "model": {"weights": "imagenet", "method": "linear"}},
                      {"name": "vit-in", "model": {"weights": "imagenet", "backbone": "vit_tiny_test"}},
                      {"name": "vit-bc", "model": {"weights": "biomedclip", "backbone": "vit_tiny_test"}}]
    path = write_experiment(tiny, tmp_path, configurations)
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs")]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: pre-trained weights missing, nothing was trained")
    for weights, backbone, name in (("imagenet", "resnet_test", "res-in"), ("imagenet", "vit_tiny_test", "vit-in"),
                                    ("biomedclip", "vit_tiny_test", "vit-bc")):
        assert f"{weights} weights for {backbone} are not installed" in line and f"(needed by {name})" in line
    assert not any((tmp_path / "runs").glob("*/split-*"))


# --- n/a reasons and no 'nan' when the external set is too small ----------------------------------


def small_external(root: Path) -> Path:
    """Tiny runs whose external set holds 1 case and 2 controls, evaluated, exported and reported
    (built once per module by the `small` fixture)."""
    from vcpred.models import ModelSpec
    from vcpred.training import TrainConfig, TrainingParams, train_run

    manifest, store, splits = build_tiny_cohort(root / "cohort", n_external=3)  # labels 0, 1, 0
    params = TrainingParams(epochs=1, batch_size=8, lr=1e-3, augment=False, precision="fp32")
    spec = ModelSpec(image=False, clinical_columns=("age", "sex"), weights="random")
    for split in (0, 1):
        train_run(TrainConfig("clin", manifest, store, splits, spec, params), split,
                  root / "runs" / "clin" / f"split-{split:02d}")
    assert main(["--quiet", "evaluate", str(root / "runs"), "--out", str(root / "eval")]) == 0
    assert main(["--quiet", "export", str(root / "runs"), "--configuration", "clin", "--eval", str(root / "eval"),
                 "--out", str(root / "model")]) == 0
    assert main(["--quiet", "report", str(root / "eval"), "--model", str(root / "model"), "--out",
                 str(root / "report.html"), "--gallery", "0"]) == 0
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return small_external(tmp_path_factory.mktemp("small-external"))


REASON = "needs at least 2 labelled cases and 2 controls; has 1 case and 2 controls"


def test_the_na_reasons_are_the_real_ones(small):
    html = (small / "report.html").read_text()
    assert "both classes" not in html  # both classes are there: one of them is too small
    assert REASON in html
    assert "n/a (n/a-n/a)" not in html
    card = (small / "model" / "MODEL_CARD.md").read_text()
    assert "both classes" not in card and REASON in card


def test_no_nan_in_the_report_the_card_or_any_figure(small, monkeypatch):
    page = re.sub(r"data:image/png;base64,[^\"]+", "", (small / "report.html").read_text())
    assert not re.search(r"\bnan\b", page, flags=re.IGNORECASE)
    assert not re.search(r"\bnan\b", (small / "model" / "MODEL_CARD.md").read_text(), flags=re.IGNORECASE)
    # the texts drawn in every figure of evaluate and report (titles, legends, labels)
    import matplotlib.text

    drawn: list[str] = []
    real = matplotlib.text.Text.draw

    def record(self, renderer):
        drawn.append(self.get_text())
        return real(self, renderer)

    monkeypatch.setattr(matplotlib.text.Text, "draw", record)
    assert main(["--quiet", "evaluate", str(small / "runs"), "--out", str(small / "eval2")]) == 0
    assert main(["--quiet", "report", str(small / "eval2"), "--out", str(small / "report2.html"), "--gallery", "0",
                 "--runs", str(small / "runs")]) == 0
    assert any("AUC" in text for text in drawn), drawn
    assert not [text for text in drawn if re.search(r"\bnan\b", text, flags=re.IGNORECASE)]

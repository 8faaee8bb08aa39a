"""`vcpred demo`'s checks before its first step: the --out folder and the cohort sizes (issue 27)."""

from __future__ import annotations

import json

import pytest

from conftest import snapshot
from vcpred.cli import main
from vcpred.errors import VcpredError


@pytest.fixture
def steps(monkeypatch) -> list[list[str]]:
    """Stops the demo at its first step, recording it: what the demo did before any step ran."""
    import vcpred.demo

    started: list[list[str]] = []

    def first_step(title: str, argv: list[str]) -> None:
        started.append(argv)
        raise VcpredError("stopped at the first step")

    monkeypatch.setattr(vcpred.demo, "_step", first_step)
    return started


def test_a_folder_holding_the_users_files_is_refused_untouched(tmp_path, capsys, steps):
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    (out / "experiment.yaml").write_text("my: own experiment\n")
    before = snapshot(out)

    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 2

    error = capsys.readouterr().err
    assert f"--out {out} is not empty and is not a `vcpred demo` folder" in error
    assert len(error.strip().splitlines()) == 1
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["experiment.yaml", "notes.txt"]
    assert steps == []


@pytest.mark.parametrize(("argv", "wanted"), [
    (["--development", "1"], "--development 1 with seed 0 gives"),
    (["--development", "0"], "--development 0 with seed 0 gives"),
    (["--development", "-3"], "--development -3 with seed 0 gives"),
    (["--external", "0"], "--external must be at least 1"),
])
def test_sizes_the_demo_cannot_use_are_refused_before_any_step(tmp_path, capsys, steps, argv, wanted):
    out = tmp_path / "demo"

    assert main(["demo", "--out", str(out), *argv]) == 2

    error = capsys.readouterr().err
    assert wanted in error and len(error.strip().splitlines()) == 1
    assert steps == [] and not out.exists()


def test_too_few_development_patients_names_a_size_that_works(tmp_path, capsys, steps):
    import re

    assert main(["demo", "--out", str(tmp_path / "demo"), "--development", "5", "--splits", "2"]) == 2
    enough = int(re.search(r"use --development (\d+) or more", capsys.readouterr().err)[1])
    assert enough > 5
    assert main(["demo", "--out", str(tmp_path / "demo"), "--development", str(enough - 1), "--splits", "2"]) == 2
    assert "use --development" in capsys.readouterr().err and steps == []
    # the size it names passes the checks: the demo goes on to its first step
    assert main(["demo", "--out", str(tmp_path / "demo"), "--development", str(enough), "--splits", "2"]) == 2
    assert "stopped at the first step" in capsys.readouterr().err and len(steps) == 1


def test_a_new_folder_is_marked_as_the_demos_and_reused(tmp_path, capsys, steps):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 2
    assert "stopped at the first step" in capsys.readouterr().err and steps[0][0:1] == ["synth"]
    assert [p.name for p in out.iterdir()] == [".vcpred-demo.json"]
    assert json.loads((out / ".vcpred-demo.json").read_text())["generator"] == "vcpred demo"
    (out / "experiment.yaml").write_text("splits: {n_splits: 10}\n")  # what the demo writes later

    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 2
    assert "stopped at the first step" in capsys.readouterr().err and len(steps) == 2


def test_a_demo_folder_made_before_the_marker_is_still_the_demos(tmp_path, capsys, steps):
    out = tmp_path / "demo"
    (out / "cohort").mkdir(parents=True)
    (out / "cohort" / "synth.json").write_text(json.dumps(
        {"generator": "vcpred synth", "seed": 0, "n_development": 40, "n_external": 16}))
    (out / "cohort" / "manifest.csv").write_text("patient_id\n")
    (out / "experiment.yaml").write_text("splits: {n_splits: 10}\n")
    (out / "runs").mkdir()
    (out / "thesis.docx").write_text("not the demo's")

    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 2
    assert "is not empty and is not a `vcpred demo` folder" in capsys.readouterr().err and steps == []
    assert not (out / ".vcpred-demo.json").exists()

    (out / "thesis.docx").unlink()
    assert main(["demo", "--out", str(out), "--development", "40", "--external", "16"]) == 2
    assert "stopped at the first step" in capsys.readouterr().err
    assert steps[0][:2] == ["cohort", "check"]  # synth reused
    assert (out / ".vcpred-demo.json").is_file()

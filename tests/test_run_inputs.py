"""Issue 27, outputs made from the wrong inputs: export, evaluate and report read runs only with the
manifest, prepared store and splits file they were trained on. config.yaml records where those lie
relative to the run dir (so a whole folder can move) and their fingerprints; every command resolves
them the same way and refuses, in one line naming the runs and the input, when one changed."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tiny_store import build_tiny_cohort
from vcpred.cli import main
from vcpred.imaging.store import read_index, save_index

pytestmark = pytest.mark.usefixtures("weights_home")

LINEAR = {"name": "lin", "model": {"method": "linear"}}  # the cheapest image configuration
INPUTS = ("manifest", "store", "splits")


def write_experiment(folder: Path, *, relative: bool) -> Path:
    """experiment.yaml beside tiny/ (manifest, store) naming them relative to folder or absolute."""
    base = Path("tiny") if relative else folder / "tiny"
    config = {"manifest": str(base / "manifest.csv"), "store": str(base / "store"),
              "splits": {"file": "splits.json" if relative else str(folder / "splits.json"), "n_splits": 3,
                         "seed": 0},
              "model": {"weights": "random", "backbone": "resnet_test"},
              "training": {"epochs": 4, "batch_size": 8, "lr": 0.01}, "configurations": [LINEAR]}
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train_work(folder: Path, *, relative: bool = False) -> Path:
    """folder/{tiny/, splits.json, experiment.yaml, runs/} with one trained image configuration."""
    build_tiny_cohort(folder / "tiny")
    path = write_experiment(folder, relative=relative)
    cwd = Path.cwd()
    os.chdir(folder)  # a relative experiment is trained from its folder, as a user would
    try:
        assert main(["--quiet", "experiment", path.name if relative else str(path),
                     "--out", "runs" if relative else str(folder / "runs")]) == 0
    finally:
        os.chdir(cwd)
    return folder


def re_prepare(store: Path, size: int = 48) -> None:
    """What `vcpred prepare --size` leaves: the same patients under other preparation parameters."""
    index = read_index(store)
    save_index(store, {**index, "params": {**index["params"], "size": size}})


def export(runs: Path, out: Path) -> int:
    return main(["--quiet", "export", str(runs), "--configuration", "lin", "--out", str(out),
                 "--bf16-check-patients", "0", "--no-recalibrate"])


def evaluate(runs: Path, out: Path) -> int:
    return main(["--quiet", "evaluate", str(runs), "--out", str(out), "--no-figures"])


def report(eval_dir: Path, out: Path, *extra: str) -> int:
    return main(["--quiet", "report", str(eval_dir), "--out", str(out), "--gallery", "0", *extra])


def bundle_content(model_dir: Path) -> dict:
    """What the bundle predicts with: its tensors' hashes, preprocessing and thresholds (not the paths it
    names: each model.json's source run, the card's manifest)."""
    meta = json.loads((model_dir / "bundle.json").read_text())
    specs = {e["dir"]: json.loads((model_dir / e["dir"] / "model.json").read_text()) for e in meta["splits"]}
    return {"files": {k: v for k, v in meta["files"].items() if not k.endswith(("model.json", "MODEL_CARD.md"))},
            "specs": {d: {k: v for k, v in spec.items() if k != "source_run"} for d, spec in specs.items()},
            "prepare_params": meta["prepare_params"], "threshold": meta["threshold"],
            "splits": [{k: v for k, v in e.items() if k != "run"} for e in meta["splits"]]}


def report_content(html: Path, work: Path) -> str:
    """The report without the time it was made and the folders it names (a moved input is found, and
    verified, where the runs were trained)."""
    text = html.read_text().replace(str(work.resolve()), "WORK").replace(str(work), "WORK")
    # token by token (a token is what lies between spaces, tags, brackets and quotes): one pattern over the
    # whole page backtracked over each embedded base64 figure, minutes for one report
    named = re.compile(r"^.*?/(tiny/manifest\.csv|tiny/store|splits\.json)")
    text = re.sub(r"[^\s<>()\"']+", lambda token: named.sub(r"WORK/\1", token.group()), text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "TIME", text)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, weights_home_module):
    """One trained work folder (absolute paths in its experiment), with its evaluation and export."""
    folder = train_work(tmp_path_factory.mktemp("inputs") / "work")
    assert evaluate(folder / "runs", folder / "eval") == 0
    assert export(folder / "runs", folder / "model") == 0
    assert report(folder / "eval", folder / "report.html", "--runs", str(folder / "runs")) == 0
    return folder


@pytest.fixture(scope="module")
def weights_home_module(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("VCPRED_HOME")
    os.environ["VCPRED_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("VCPRED_HOME", None)
    else:
        os.environ["VCPRED_HOME"] = old


@pytest.fixture
def work(trained, tmp_path) -> Path:
    """A private copy of the trained work folder (moved whole: runs record inputs relative to themselves)."""
    return Path(shutil.copytree(trained, tmp_path / "copy"))


def test_config_yaml_records_the_inputs_relative_to_the_run_dir(trained):
    saved = yaml.safe_load((trained / "runs" / "lin" / "split-00" / "config.yaml").read_text())
    assert saved["input_paths"] == {"manifest": "../../../tiny/manifest.csv", "store": "../../../tiny/store",
                                    "splits": "../../../splits.json"}


def test_a_re_prepared_store_is_refused_by_export_evaluate_and_report(work, tmp_path, capsys):
    """export copied the new store's params into a bundle of models trained on the old one."""
    re_prepare(work / "tiny" / "store")
    capsys.readouterr()
    outcomes = {"export": export(work / "runs", tmp_path / "model"),
                "evaluate": evaluate(work / "runs", tmp_path / "eval"),
                "report": report(work / "eval", tmp_path / "report.html", "--runs", str(work / "runs"))}
    for command, code in outcomes.items():
        assert code == 2, command
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    for line in err:
        assert line.startswith("error: ") and "prepared store" in line and str(work / "tiny" / "store") in line
        assert "lin/split-00" in line and "lin/split-02" in line and "--retrain-stale" in line
    assert not (tmp_path / "model").exists() and not (tmp_path / "eval").exists()
    assert not (tmp_path / "report.html").exists()


def test_export_from_another_directory_takes_the_runs_own_store(tmp_path, capsys, monkeypatch):
    """Paths recorded relative to the training cwd: from another cwd holding a tiny/ of its own, export
    took that folder's store (other preparation parameters) silently."""
    work = train_work(tmp_path / "work", relative=True)
    monkeypatch.chdir(work)
    assert export(Path("runs"), tmp_path / "here") == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(work / "tiny", elsewhere / "tiny")  # the same manifest, splits file and patients ...
    shutil.copy(work / "splits.json", elsewhere / "splits.json")
    re_prepare(elsewhere / "tiny" / "store")  # ... but another preparation
    monkeypatch.chdir(elsewhere)
    assert export(work / "runs", tmp_path / "there") == 0
    assert bundle_content(tmp_path / "there") == bundle_content(tmp_path / "here")
    assert bundle_content(tmp_path / "there")["prepare_params"]["size"] == 64


def test_a_run_of_an_earlier_vcpred_from_another_directory_is_refused_not_read_with_another_store(
        tmp_path, capsys, monkeypatch):
    """Runs without `input_paths` (an earlier vcpred) resolve their paths from the cwd as before; another
    store found there is refused by its fingerprint, and a missing one is named."""
    work = train_work(tmp_path / "work", relative=True)
    for config in (work / "runs").glob("*/split-*/config.yaml"):
        saved = yaml.safe_load(config.read_text())
        del saved["input_paths"]
        config.write_text(yaml.safe_dump(saved, sort_keys=False))
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(work / "tiny", elsewhere / "tiny")
    shutil.copy(work / "splits.json", elsewhere / "splits.json")
    re_prepare(elsewhere / "tiny" / "store")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert export(work / "runs", tmp_path / "m") == 2
    err = one_line_error(capsys)
    assert "prepared store" in err and "tiny/store" in err and "lin/split-00" in err
    monkeypatch.chdir(tmp_path)  # nothing there: the store is not found, and said so
    assert export(work / "runs", tmp_path / "m") == 2
    err = one_line_error(capsys)
    assert "tiny/manifest.csv" in err and "not found" in err and "working directory" in err
    monkeypatch.chdir(work)  # where it was trained: read as before
    assert export(Path("runs"), tmp_path / "m") == 0


def test_a_whole_folder_moved_keeps_working_and_checked(trained, tmp_path, capsys):
    """Runs, store and cohort moved together: export failed (its store was gone), and evaluate skipped
    the splits and manifest checks without a word."""
    moved = trained.rename(tmp_path / "moved")  # where the runs were trained is gone
    try:
        assert export(moved / "runs", tmp_path / "model") == 0
        assert bundle_content(tmp_path / "model") == bundle_content(moved / "model")
        assert evaluate(moved / "runs", tmp_path / "eval") == 0
        assert (tmp_path / "eval" / "summary.csv").read_bytes() == (moved / "eval" / "summary.csv").read_bytes()
        assert "not found" not in capsys.readouterr().out
    finally:
        moved = Path(shutil.copytree(moved, tmp_path / "moved-copy"))
        (tmp_path / "moved").rename(trained)
    splits = json.loads((moved / "splits.json").read_text())
    splits["seed"] = 99  # another splits file where the runs' one lies: checked, so refused
    (moved / "splits.json").write_text(json.dumps(splits))
    capsys.readouterr()
    assert evaluate(moved / "runs", tmp_path / "eval2") == 2
    err = one_line_error(capsys)
    assert "splits file" in err and str(moved / "splits.json") in err and "lin/split-00" in err


# --- the property: altering, moving or swapping any input gives the same output or a one-line refusal

def _alter(work: Path, name: str) -> Path:
    """Change the content of one input where it lies; returns its path."""
    path = {"manifest": work / "tiny" / "manifest.csv", "store": work / "tiny" / "store",
            "splits": work / "splits.json"}[name]
    if name == "store":
        re_prepare(path)
    elif name == "manifest":
        path.write_text(path.read_text().replace("\n", "\r\n"))  # the same rows, re-saved by Excel
    else:
        splits = json.loads(path.read_text())
        splits["splits"] = splits["splits"][::-1]
        path.write_text(json.dumps(splits))
    return path


def _move(work: Path, name: str) -> Path:
    path = {"manifest": work / "tiny" / "manifest.csv", "store": work / "tiny" / "store",
            "splits": work / "splits.json"}[name]
    path.rename(path.with_name(path.name + ".moved"))
    return path


def _swap(work: Path, name: str) -> Path:
    """Put another cohort's input (another seed: other frames, labels and splits) in its place."""
    other = build_tiny_cohort(work / "other", seed=7)
    source = dict(zip(INPUTS, other))[name]
    target = {"manifest": work / "tiny" / "manifest.csv", "store": work / "tiny" / "store",
              "splits": work / "splits.json"}[name]
    if target.is_dir():
        shutil.rmtree(target)
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    return target


CHANGES = {"alter": _alter, "move": _move, "swap": _swap}


def _outputs(command: str, work: Path, out: Path) -> tuple[int, object]:
    if command == "export":
        code = export(work / "runs", out)
        return code, bundle_content(out) if code == 0 else None
    if command == "evaluate":
        code = evaluate(work / "runs", out)
        return code, (out / "summary.csv").read_bytes() if code == 0 else None
    code = report(work / "eval", out, "--runs", str(work / "runs"))
    return code, report_content(out, work) if code == 0 else None


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "evaluate", "report"])
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_changed_input_gives_the_same_output_or_a_refusal_naming_it(trained, work, tmp_path, capsys,
                                                                        command, change):
    baseline = {"export": bundle_content(trained / "model"),
                "evaluate": (trained / "eval" / "summary.csv").read_bytes(),
                "report": report_content(trained / "report.html", trained)}[command]
    for name in INPUTS:
        copy = Path(shutil.copytree(work, tmp_path / f"{name}-work"))
        path = CHANGES[change](copy, name)
        capsys.readouterr()
        code, output = _outputs(command, copy, tmp_path / f"{name}-out{'.html' if command == 'report' else ''}")
        if code == 0:
            assert output == baseline, (command, change, name)
        else:
            assert code == 2, (command, change, name)
            err = one_line_error(capsys)
            assert str(path) in err, (command, change, name, err)

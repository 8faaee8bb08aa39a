"""Output folders (issue 14, data loss): every command writes beside its --out folder and swaps the
result in on success; a failure or an interruption halfway through the write leaves the earlier
result byte-identical and no temporary sibling behind; a folder vcpred did not write is refused."""

from __future__ import annotations

import json

import pytest

from conftest import siblings, snapshot
from test_evaluate import cohort, make_runs
from predict_support import BODY, BOX_TEXT, T2_LUMBAR
from vcpred import output_folder
from vcpred.cli import main
from vcpred.output_folder import MARKER, OutputError, check, replacing

CNN = dict(backbone="resnet_test", method="lora")
FAULTS = [RuntimeError("disk full halfway"), KeyboardInterrupt()]
EXIT = {RuntimeError: 1, KeyboardInterrupt: 130}  # internal error, interrupted


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))  # no pre-trained weights anywhere


def patch(monkeypatch, module, name: str, fault: BaseException, calls_before: int = 0) -> None:
    """Replace module.name by a wrapper that raises fault on call calls_before + 1."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) > calls_before:
            raise fault
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize("fault", FAULTS, ids=type)
def test_evaluate_interrupted_while_writing_keeps_the_earlier_evaluation(tmp_path, monkeypatch, fault):
    import vcpred.evaluate.outputs as outputs

    runs = make_runs(tmp_path / "runs", cohort(n_dev=40, n_ext=12, seed=3), n_splits=2,
                     configs={"vit": (1.2, []), "cnn": (0.6, [])})
    out = tmp_path / "EVAL"
    assert main(["--quiet", "evaluate", str(runs), "--out", str(out), "--no-figures"]) == 0
    before = snapshot(out)
    patch(monkeypatch, outputs, "tables_markdown", fault)  # after the CSV tables and evaluation.json
    argv = ["--quiet", "evaluate", str(runs), "--out", str(out), "--no-figures", "--aggregate", "logit_mean"]
    assert main(argv) == EXIT[type(fault)]
    assert snapshot(out) == before and siblings(out) == ["EVAL", "runs"]
    monkeypatch.undo()
    assert main(argv) == 0 and json.loads((out / "evaluation.json").read_text())["aggregate"] == "logit_mean"
    assert siblings(out) == ["EVAL", "runs"]


@pytest.mark.parametrize("fault", FAULTS, ids=type)
def test_predict_interrupted_while_writing_keeps_the_earlier_prediction(artefacts, tmp_path, monkeypatch, fault):
    import vcpred.predict.outputs as outputs

    model = artefacts.exported("resnetlora", **CNN)
    out = tmp_path / "out"
    argv = ["--quiet", "predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice",
            str(BODY.slice), "--roi-box", BOX_TEXT, "--out", str(out)]
    assert main(argv) == 0
    before = snapshot(out)
    patch(monkeypatch, outputs, "report_html", fault)  # after heatmap.png and prediction.json
    assert main(argv + ["--patient-id", "second"]) == EXIT[type(fault)]
    assert snapshot(out) == before and siblings(out) == ["out"]


@pytest.mark.parametrize("fault", FAULTS, ids=type)
def test_export_interrupted_while_writing_keeps_the_earlier_bundle(artefacts, tmp_path, monkeypatch, fault):
    import vcpred.bundle.export as export

    runs = artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex"))
    out = tmp_path / "model"
    argv = ["--quiet", "export", str(runs), "--configuration", "clinical", "--out", str(out), "--force"]
    assert main(argv) == 0
    before = snapshot(out)
    patch(monkeypatch, export, "model_card", fault)  # after the split folders
    assert main(argv + ["--no-ap"]) == EXIT[type(fault)]
    assert snapshot(out) == before and siblings(out) == ["model"]


@pytest.mark.parametrize("fault", FAULTS, ids=type)
def test_train_interrupted_while_writing_keeps_the_finished_run(tiny, tmp_path, monkeypatch, fault):
    import vcpred.training.run as run_module
    from vcpred.models import ModelSpec
    from vcpred.training import TrainConfig, TrainingParams, train_run

    manifest, store, splits = tiny
    config = TrainConfig("clin", manifest, store, splits, ModelSpec(image=False, clinical_columns=("age",)),
                         TrainingParams(epochs=1))
    run = train_run(config, 0, tmp_path / "run")
    before = snapshot(run)
    patch(monkeypatch, run_module, "environment", fault)  # after predictions.csv and metrics.json
    with pytest.raises(type(fault)):
        train_run(config, 0, run, force=True)
    assert snapshot(run) == before and siblings(run) == ["run"]


@pytest.mark.parametrize("fault", FAULTS, ids=type)
def test_synth_interrupted_while_writing_keeps_the_earlier_cohort(tmp_path, monkeypatch, fault):
    import vcpred.synth.generate as generate

    out = tmp_path / "cohort"
    argv = ["--quiet", "synth", "--out", str(out), "--development", "2", "--external", "1", "--sequences", "t2",
            "--size", "48", "--format", "nifti"]
    assert main(argv) == 0
    before = snapshot(out)
    patch(monkeypatch, generate, "write_patient", fault, calls_before=1)  # the second patient fails
    assert main(argv + ["--seed", "5", "--force"]) == EXIT[type(fault)]
    assert snapshot(out) == before and siblings(out) == ["cohort"]


# --- the guard itself ------------------------------------------------------------------------------


def write(folder, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_new_and_empty_folders_receive_the_whole_result(tmp_path):
    for out in (tmp_path / "a" / "b" / "new", tmp_path / "c" / "empty"):
        if out.name == "empty":
            out.mkdir(parents=True)
        assert check(out, kind="model") in ("new", "empty")
        with replacing(out, kind="model") as folder:
            assert folder.parent == out.parent and folder.name.startswith(f".{out.name}.vcpred-")
            write(folder, {"bundle.json": "{}", "split-00/model.json": "{}"})
            assert not out.exists() or not any(out.iterdir())  # nothing in place before the block ends
        marker = json.loads((out / MARKER).read_text())
        assert marker["kind"] == "model" and marker["files"] == ["bundle.json", "split-00/model.json"]
        assert marker["folders"] == ["split-00"] and siblings(out) == [out.name]
    assert check(tmp_path / "c" / "empty", kind="model", force=True) == "own"


def test_an_earlier_result_is_replaced_whole_and_only_with_force_where_the_command_wants_it(tmp_path):
    out = tmp_path / "model"
    with replacing(out, kind="model") as folder:
        write(folder, {"bundle.json": "1", "split-01/model.json": "1"})
    with pytest.raises(OutputError, match="not empty: it holds an earlier `vcpred export` model directory; pass --force"):
        check(out, kind="model")
    with replacing(out, kind="model", force=True) as folder:
        write(folder, {"bundle.json": "2"})
    assert set(snapshot(out)) == {"bundle.json", MARKER} and (out / "bundle.json").read_text() == "2"
    with replacing(tmp_path / "pred", kind="prediction") as folder:
        write(folder, {"prediction.json": "1"})
    with replacing(tmp_path / "pred", kind="prediction") as folder:  # predict replaces its own without --force
        write(folder, {"prediction.json": "2"})
    assert (tmp_path / "pred" / "prediction.json").read_text() == "2"
    assert siblings(out) == ["model", "pred"]


@pytest.mark.parametrize("kind", ["cohort", "run", "evaluation", "model", "prediction", "store"])
def test_a_folder_vcpred_did_not_write_is_refused_with_or_without_force(tmp_path, kind):
    mine = tmp_path / "mine"
    write(mine, {"config.yaml": "status: running\n", "notes.txt": "keep", "summary.json": "{}",
                 "heatmaps/a.png": "x", "index.json": "{}", "bundle.json": "{}", "synth.json": "{}"})
    before = snapshot(mine)
    for force in (False, True):
        with pytest.raises(OutputError, match="is not empty and is not .*choose a new or empty folder"):
            check(mine, kind=kind, force=force)
        if kind != "store":
            with pytest.raises(OutputError):
                with replacing(mine, kind=kind, force=force):
                    pytest.fail("the block must not run")
    assert snapshot(mine) == before and siblings(mine) == ["mine"]


def test_user_files_inside_an_earlier_result_are_named_and_never_deleted(tmp_path):
    out = tmp_path / "eval"
    with replacing(out, kind="evaluation") as folder:
        write(folder, {"summary.csv": "1", "figures/roc.png": "1"})
    write(out, {"figures/mine.png": "mine", "notes/a.txt": "mine"})
    (out / "data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    before = snapshot(out)
    with pytest.raises(OutputError, match=r"also files vcpred did not write \(data, figures/mine.png, notes/a.txt\)"):
        with replacing(out, kind="evaluation", force=True):
            pass
    assert snapshot(out) == before and siblings(out) == ["elsewhere", "eval"]


def test_another_kind_of_result_and_a_file_are_refused(tmp_path):
    with replacing(tmp_path / "pred", kind="prediction") as folder:
        write(folder, {"prediction.json": "1"})
    with pytest.raises(OutputError, match=r"is not an earlier `vcpred evaluate` output \(it holds a vcpred prediction"):
        check(tmp_path / "pred", kind="evaluation", force=True)
    (tmp_path / "f.txt").write_text("mine")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check(tmp_path / "f.txt", kind="prediction")
    with pytest.raises(OutputError, match="cannot create output folder"):
        check(tmp_path / "f.txt" / "sub", kind="prediction")
        with replacing(tmp_path / "f.txt" / "sub", kind="prediction"):
            pass


@pytest.mark.parametrize("fault", FAULTS, ids=type)
def test_a_failure_halfway_through_the_write_leaves_the_earlier_result(tmp_path, fault):
    out = tmp_path / "out"
    with replacing(out, kind="prediction") as folder:
        write(folder, {"prediction.json": "earlier", "heatmaps/a.png": "earlier"})
    before = snapshot(out)
    with pytest.raises(type(fault)):
        with replacing(out, kind="prediction") as folder:
            write(folder, {"prediction.json": "new"})
            raise fault
    assert snapshot(out) == before and siblings(out) == ["out"]


@pytest.mark.parametrize("fault", FAULTS, ids=type)
def test_without_an_atomic_exchange_the_earlier_result_is_renamed_aside_and_back(tmp_path, monkeypatch, fault):
    monkeypatch.setattr(output_folder, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    for text in ("earlier", "second"):
        with replacing(out, kind="prediction") as folder:
            write(folder, {"prediction.json": text})
    assert (out / "prediction.json").read_text() == "second" and siblings(out) == ["out"]
    before = snapshot(out)
    real, calls = output_folder.os.rename, []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the earlier result is aside; putting the new one in place fails
            raise fault
        real(src, dst)

    monkeypatch.setattr(output_folder.os, "rename", rename)
    with pytest.raises(type(fault)):
        with replacing(out, kind="prediction") as folder:
            write(folder, {"prediction.json": "third"})
    monkeypatch.setattr(output_folder.os, "rename", real)
    assert snapshot(out) == before and siblings(out) == ["out"]


def test_temporary_siblings_of_killed_processes_are_cleaned_up(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    out = tmp_path / "out"
    host = output_folder._HOST
    write(tmp_path, {f".out.vcpred-{host}-{dead}-abc_1.tmp/prediction.json": "half",
                     f".out.vcpred-{host}-{dead}-abc_2.old/prediction.json": "earlier",
                     f".out.vcpred-{host}-1-abc_3.tmp/prediction.json": "a live process's"})
    (tmp_path / f".out.vcpred-{host}-{dead}-abc_2.old" / MARKER).write_text(json.dumps(
        {"format": "vcpred-output", "kind": "prediction", "files": ["prediction.json"], "folders": []}))
    with replacing(out, kind="prediction") as folder:
        assert (out / "prediction.json").read_text() == "earlier"  # put back in place first
        write(folder, {"prediction.json": "new"})
    assert (out / "prediction.json").read_text() == "new"
    assert siblings(out) == [f".out.vcpred-{host}-1-abc_3.tmp", "out"]


def test_results_written_before_the_marker_are_recognised_by_their_own_record(tmp_path):
    out = tmp_path / "eval"
    write(out, {"evaluation.json": json.dumps({"generator": "vcpred evaluate"}), "summary.csv": "1",
                "figures/roc_ensembles.png": "1"})
    assert check(out, kind="evaluation") == "own"
    with replacing(out, kind="evaluation") as folder:
        write(folder, {"evaluation.json": "{}"})
    assert set(snapshot(out)) == {"evaluation.json", MARKER}
    run = tmp_path / "run"
    write(run, {"config.yaml": "configuration: a\nenvironment: {}\nstatus: done\n", "predictions.csv": "",
                "model/model.json": "{}", "notes.txt": "mine"})
    with pytest.raises(OutputError, match=r"also files vcpred did not write \(notes.txt\)"):
        check(run, kind="run", force=True)
    (run / "notes.txt").unlink()
    with pytest.raises(OutputError, match="holds a finished run; pass --force to train it again"):
        check(run, kind="run")
    assert check(run, kind="run", force=True) == "own"
    cohort = tmp_path / "cohort"
    write(cohort, {"synth.json": json.dumps({"generator": "vcpred synth", "patients": ["dev0001", "*"]}),
                   "manifest.csv": "", "images/dev0001/t2/1.dcm": "", "images/other/t2.nii.gz": "mine"})
    with pytest.raises(OutputError, match=r"did not write \(images/other/t2.nii.gz\)"):
        check(cohort, kind="cohort", force=True)

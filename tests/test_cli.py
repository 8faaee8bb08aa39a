from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import patient_row, write_manifest
from vcpred import __version__
from vcpred.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "research use only" in capsys.readouterr().out.lower()


def test_cohort_check_clean_exit_0(clean_manifest: Path, capsys):
    assert main(["cohort", "check", str(clean_manifest)]) == 0
    out = capsys.readouterr().out
    assert "patients: 26" in out and "no problems found" in out


def test_cohort_check_lists_every_problem_and_exits_2(tmp_path: Path):
    rows = [patient_row(i, label=i % 2) for i in range(7)]
    rows[1]["patient_id"] = "P000"
    rows[2]["set"] = "train"
    rows[3]["label"] = 2
    rows[4]["roi_col_min"] = 500
    rows[5]["roi_row_max"] = "x"
    path = write_manifest(tmp_path, rows)
    (tmp_path / rows[6]["image_t2"]).unlink()
    # Run the installed console script as a user would: no traceback, exit 2.
    proc = subprocess.run([sys.executable, "-m", "vcpred", "cohort", "check", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    for row in (3, 4, 5, 6, 7, 8):
        assert f"row {row}," in proc.stdout
    assert "6 problem(s)" in proc.stdout


def test_user_error_is_one_line_without_traceback(tmp_path: Path, capsys):
    assert main(["cohort", "split", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: manifest") and "Traceback" not in err


def test_debug_shows_traceback(tmp_path: Path, capsys):
    assert main(["--debug", "cohort", "check", str(tmp_path / "missing.csv")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_cohort_split_writes_json(clean_manifest: Path, tmp_path: Path, capsys):
    out = tmp_path / "splits.json"
    # 7 cases: --val-fraction 0.3 puts 2 of them in each validation set (0.2 would put 1: refused, issue 19)
    assert main(["cohort", "split", str(clean_manifest), "--out", str(out), "--n-splits", "4",
                 "--val-fraction", "0.3"]) == 0
    assert len(json.loads(out.read_text())["splits"]) == 4
    assert "wrote 4 splits" in capsys.readouterr().out
    assert main(["--quiet", "cohort", "split", str(clean_manifest), "--out", str(out), "--val-fraction", "0.3"]) == 2
    assert "exists" in capsys.readouterr().err


def test_every_command_module_registers_its_own_name():
    """The lazy table and the modules agree: each module registers exactly the name it is listed under."""
    import argparse
    import importlib

    from vcpred.cli import COMMANDS
    for name, (module, _) in COMMANDS.items():
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers(dest="command")
        importlib.import_module(module).register(subparsers)
        assert list(subparsers.choices) == [name]
    full = __import__("vcpred.cli", fromlist=["build_parser"]).build_parser()
    assert "train" in full.format_help()


def test_cohort_commands_do_not_import_torch():
    code = ("import sys; from vcpred.cli import main; main(['cohort', 'check', 'missing.csv']); "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("command", ["predict", "export", "validate", "serve", "annotate", "train", "experiment"])
def test_help_of_model_commands_loads_no_model_library(command):
    # The help is printed at once: torch, timm and peft are imported only when a model is used.
    code = (f"import sys; from vcpred.cli import main\ntry: main(['{command}', '--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'timm', 'peft', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stderr


def test_predict_starts_its_work_before_torch_is_imported(tmp_path):
    """Issue 17: the sha256 check and the patient's preparation start in threads before torch and
    timm are imported (seconds), so everything run_predict calls before them must not import torch."""
    code = ("import sys, threading\nimport vcpred.bundle.files as files, vcpred.predict.command as command\n"
            "seen = []\n"
            "def check(folder):\n    seen.append(('check', 'torch' in sys.modules))\n    raise SystemExit(0)\n"
            "files.check_in_background = check\n"
            "from vcpred.cli import main\n"
            "try: main(['predict', '--model', sys.argv[1], '--image-t2', 'x.nii.gz', '--roi-slice', '1', "
            "'--roi-box', '1,1,5,5', '--out', sys.argv[2]])\nexcept SystemExit: pass\n"
            "print(seen, sorted(m for m in ('torch', 'timm') if m in sys.modules))")
    model = tmp_path / "model"  # only bundle.json is read before the check
    model.mkdir()
    (model / "bundle.json").write_text(json.dumps({"format": "vcpred-model-bundle", "version": 1, "kind": "image",
                                                   "prepare_params": {"size": 64}}))
    proc = subprocess.run([sys.executable, "-c", code, str(model), str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[('check', False)] []", proc.stderr


def test_predict_loads_no_statistics_or_plotting_library_before_writing():
    """Issue 17: a new `vcpred predict` process pays for every import before the first model runs;
    the modules it loads to predict one patient need neither pandas, scipy nor scikit-learn, and
    matplotlib only when the heat map is drawn (after the prediction)."""
    code = ("import sys\nimport vcpred.cli, vcpred.predict.command\nimport vcpred.predict.inputs, vcpred.bundle.files\n"
            "import vcpred.predict.bundle, vcpred.predict.predict, vcpred.predict.outputs\n"
            "print(sorted(m for m in ('pandas', 'scipy', 'sklearn', 'matplotlib', 'peft', 'transformers') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stderr


def test_only_predict_exits_without_the_interpreter_teardown(monkeypatch, capsys):
    """vcpred.cli.run: predict (exit_at_once) flushes and leaves through os._exit with its code; other
    commands (serve removes its temporary folders at exit) go through sys.exit as usual."""
    from vcpred import cli

    exits = []

    def leave(how):
        def record(code):
            exits.append((how, code))
            raise SystemExit(code)
        return record

    monkeypatch.setattr(cli.os, "_exit", leave("at once"))
    monkeypatch.setattr(cli.sys, "exit", leave("sys.exit"))
    predict = cli.build_parser(["predict"]).parse_args(["predict", "--model", "m", "--out", "o"])
    serve = cli.build_parser(["serve"]).parse_args(["serve", "--model", "m"])
    for args, code in ((predict, 2), (serve, 0)):
        monkeypatch.setattr(cli, "_main", lambda argv, args=args, code=code: (code, args))
        with pytest.raises(SystemExit):
            cli.run()
    assert exits == [("at once", 2), ("sys.exit", 0)]

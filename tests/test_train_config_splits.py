"""A train config that uses the experiment's `splits:` mapping (issue 27): `{file: ...}` names the splits
file as it is; a mapping that also says how to make splits is refused in one line (train does not make
or re-check splits: `vcpred experiment` does), never 'splits file r1/{'file': ...} not found'."""

from __future__ import annotations

import yaml

from vcpred.cli import main
from vcpred.training import load_config


def _config(tmp_path, splits) -> object:
    path = tmp_path / "r1" / "train.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"configuration": "c", "manifest": "manifest.csv", "store": "store",
                                    "splits": splits, "model": {"backbone": "resnet_test", "weights": "random"}}))
    return path


def test_a_mapping_naming_only_the_file_uses_that_file(tmp_path):
    config = load_config(_config(tmp_path, {"file": "splits.json"}))
    assert config.splits == tmp_path / "r1" / "splits.json"


def test_a_mapping_with_split_settings_is_refused_in_one_line(tmp_path, capsys):
    path = _config(tmp_path, {"file": "splits.json", "seed": 3})

    assert main(["train", str(path), "--split", "0", "--out", str(tmp_path / "run")]) == 2

    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "seed" in err and "splits: splits.json" in err and "vcpred experiment" in err and "{'file'" not in err
    assert not (tmp_path / "run").exists()

"""`vcpred evaluate`'s closing line counts the runs and configurations it evaluated, also when a
configuration has no AP twin (one frame: AP changes nothing, shown once) (issue 27: it said '3 run(s) of
1 configuration(s)' for 4 runs of 2 configurations)."""

from __future__ import annotations

from test_evaluate import cohort, predictions, write_run
from vcpred.cli import main


def test_runs_and_configurations_are_counted_without_an_ap_twin(tmp_path, capsys):
    patients = cohort(n_dev=50, n_ext=16, n_unlabelled=2, seed=1)
    runs = tmp_path / "runs"
    for split in range(2):
        write_run(runs, "cnn", split, [], predictions(patients, 1.0, split, seed=split))
        write_run(runs, "clinical-only", split, [], predictions(patients, 0.8, split, seed=10 + split, frames=(0,)))

    assert main(["evaluate", str(runs), "--out", str(tmp_path / "EVAL"), "--no-figures"]) == 0

    assert "evaluated 4 run(s) of 2 configuration(s)" in capsys.readouterr().out

"""Leave-one-site-out ("internal-external") splits (issue 26): one split per development site, whose
patients validate while the other sites train; refused when a site cannot be a validation set;
recorded in splits.json beside random splits (old files still load); an experiment with them
trains, evaluates (each split named by its held-out site) and exports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import patient_row, write_manifest
from test_guardrails import clinical_experiment, one_error_line
from vcpred.cli import main
from vcpred.cohort import Cohort, PatientRecord, Roi, load_manifest, load_splits, make_splits, save_splits
from vcpred.cohort.splits import LEAVE_ONE_SITE_OUT, RANDOM, make_site_splits, read_splits
from vcpred.errors import SplitError

pytestmark = pytest.mark.usefixtures("weights_home")

ROI = Roi(5, 10, 10, 50, 50)
CLIN = {"name": "clin", "model": {"image": False, "clinical_columns": ["age", "sex"]}}


def site_cohort(rows: list[tuple[str | None, int]], n_external: int = 4) -> Cohort:
    """Development patients D<i> with (site, label); external patients at site X."""
    records = [PatientRecord(f"D{i}", "development", label, {}, ROI, site=site, row=i + 2)
               for i, (site, label) in enumerate(rows)]
    records += [PatientRecord(f"E{i}", "external", i % 2, {}, ROI, site="X") for i in range(n_external)]
    return Cohort(Path("manifest.csv"), records, ["t2"], {})


site_rows = st.lists(st.tuples(st.integers(2, 6), st.integers(2, 6)), min_size=2, max_size=5).flatmap(
    lambda counts: st.permutations([(f"site{k}", label) for k, (cases, controls) in enumerate(counts)
                                    for label in [1] * cases + [0] * controls]))


@settings(max_examples=40, deadline=None)
@given(rows=site_rows)
def test_every_development_patient_is_validated_exactly_once(rows):
    cohort = site_cohort(rows)
    splits = make_site_splits(cohort)
    development = set(cohort.ids("development"))
    site_of = {r.patient_id: r.site for r in cohort.records}
    assert len(splits) == len({site for site, _ in rows})
    validated = [p for split in splits for p in split.val_ids]
    assert sorted(validated) == sorted(development)  # each exactly once, external never
    for split in splits:
        assert not set(split.train_ids) & set(split.val_ids)
        assert set(split.train_ids) | set(split.val_ids) == development
        assert len({site_of[p] for p in split.val_ids}) == 1  # one site validates ...
        assert not {site_of[p] for p in split.val_ids} & {site_of[p] for p in split.train_ids}  # ... and never trains
    reordered = Cohort(Path("m.csv"), cohort.records[::-1], ["t2"], {})
    assert make_site_splits(reordered) == splits  # site-name order, whatever the manifest's row order


def test_refusals_name_the_site_and_what_is_missing():
    enough = [("A", 1), ("A", 1), ("A", 0), ("A", 0)]
    with pytest.raises(SplitError, match=r"at least 2 development sites .* has 1 \('A'\)"):
        make_site_splits(site_cohort(enough * 2))
    with pytest.raises(SplitError, match=r"site 'B' has 1 case and 3 controls; .* at least 2 cases and 2 controls"):
        make_site_splits(site_cohort(enough + [("B", 1), ("B", 0), ("B", 0), ("B", 0)]))
    with pytest.raises(SplitError, match=r"patient\(s\) 'D4' \(row 6\) .* have none"):
        make_site_splits(site_cohort(enough + [(None, 1)] + enough[:3]))
    with pytest.raises(SplitError, match="no development patient of manifest.csv has one"):
        make_site_splits(site_cohort([(None, label) for _, label in enough * 2]))


def test_site_splits_round_trip_and_old_files_still_load(tmp_path):
    rows = [patient_row(i, label=int(i % 2 == 0), site="A" if i < 8 else "B") for i in range(16)]
    cohort = load_manifest(write_manifest(tmp_path / "cohort", rows))
    splits = make_site_splits(cohort)
    path = save_splits(tmp_path / "sites.json", splits, cohort=cohort, strategy=LEAVE_ONE_SITE_OUT)
    recorded = read_splits(path, cohort)
    assert recorded.splits == splits and recorded.strategy == LEAVE_ONE_SITE_OUT
    assert recorded.held_out_sites == ("A", "B") and load_splits(path, cohort) == splits
    payload = json.loads(path.read_text())
    assert payload["format"] == 1 and "seed" not in payload and [s["held_out_site"] for s in payload["splits"]] == ["A", "B"]

    random = make_splits(cohort, n_splits=2, seed=3)
    new = json.loads(save_splits(tmp_path / "random.json", random, cohort=cohort, seed=3, val_fraction=0.25).read_text())
    assert "strategy" not in new  # random files are written as before
    for old in (new, {"splits": [{"train": list(s.train_ids), "val": list(s.val_ids)} for s in random]}):
        (tmp_path / "old.json").write_text(json.dumps(old))  # an earlier vcpred's file, another tool's file
        recorded = read_splits(tmp_path / "old.json", cohort)
        assert recorded.splits == random and recorded.strategy == RANDOM and recorded.held_out_sites == (None, None)


def test_a_site_file_no_longer_matching_the_manifests_sites_is_refused(tmp_path):
    rows = [patient_row(i, label=int(i % 2 == 0), site="A" if i < 8 else "B") for i in range(16)]
    cohort = load_manifest(write_manifest(tmp_path / "cohort", rows))
    path = save_splits(tmp_path / "sites.json", make_site_splits(cohort), cohort=cohort, strategy=LEAVE_ONE_SITE_OUT)
    rows[0]["site"] = "B"
    moved = load_manifest(write_manifest(tmp_path / "cohort", rows))
    with pytest.raises(SplitError, match=r"split 0 holds out site 'A' but validates on \['P000'\], not of that site"):
        read_splits(path, moved)
    payload = json.loads(path.read_text())
    payload["strategy"] = "by-scanner"
    path.write_text(json.dumps(payload))
    with pytest.raises(SplitError, match="unknown strategy 'by-scanner'"):
        read_splits(path)


def site_manifest(folder: Path) -> Path:
    """30 development patients at sites A, B, C (2-3 cases each), 10 external at D."""
    rows = [patient_row(i, label=int(i % 4 == 0), site="ABC"[i % 3]) for i in range(30)]
    rows += [patient_row(100 + i, set_name="external", label=i % 2, site="D") for i in range(10)]
    for row in rows:
        row["age"] = 70 + 6 * row["label"] + int(row["patient_id"][1:]) % 7
    return write_manifest(folder, rows)


def test_cohort_split_cli(tmp_path, capsys):
    manifest = site_manifest(tmp_path / "cohort")
    out = tmp_path / "splits.json"
    assert main(["cohort", "split", str(manifest), "--out", str(out), "--strategy", LEAVE_ONE_SITE_OUT]) == 0
    assert "3 leave-one-site-out splits (validation patients per held-out site: A 10, B 10, C 10)" in \
        capsys.readouterr().out
    assert read_splits(out, load_manifest(manifest)).held_out_sites == ("A", "B", "C")
    assert main(["cohort", "split", str(manifest), "--out", str(tmp_path / "s2.json"), "--strategy",
                 LEAVE_ONE_SITE_OUT, "--n-splits", "5"]) == 2
    assert "--n-splits does not apply to --strategy leave-one-site-out" in one_error_line(capsys)
    single = write_manifest(tmp_path / "single", [patient_row(i, label=i % 2) for i in range(12)])  # all site A
    assert main(["cohort", "split", str(single), "--out", str(tmp_path / "s3.json"), "--strategy",
                 LEAVE_ONE_SITE_OUT]) == 2
    assert "at least 2 development sites" in one_error_line(capsys) and not (tmp_path / "s3.json").exists()


def site_experiment(tmp_path: Path, splits: dict) -> Path:
    return clinical_experiment(tmp_path, site_manifest(tmp_path / "cohort"), splits, CLIN)


def test_experiment_settings_that_do_not_fit_the_strategy_are_refused(tmp_path, capsys):
    path = site_experiment(tmp_path, {"file": "splits.json", "strategy": LEAVE_ONE_SITE_OUT, "n_splits": 3})
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs"), "--list"]) == 2
    assert "splits: n_splits does not apply to strategy leave-one-site-out" in one_error_line(capsys)
    path = site_experiment(tmp_path, {"file": "splits.json", "strategy": "by-site"})
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs"), "--list"]) == 2
    assert "unknown strategy 'by-site'" in one_error_line(capsys)
    cohort = load_manifest(tmp_path / "cohort" / "manifest.csv")
    save_splits(tmp_path / "splits.json", make_splits(cohort, n_splits=3), cohort=cohort, seed=0, val_fraction=0.2)
    path = site_experiment(tmp_path, {"file": "splits.json", "strategy": LEAVE_ONE_SITE_OUT})
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs"), "--list"]) == 2
    assert "holds random splits but the experiment asks for leave-one-site-out splits" in one_error_line(capsys)


def test_a_leave_one_site_out_experiment_trains_evaluates_and_exports(tmp_path, capsys):
    from vcpred.experiment import load_experiment
    from vcpred.predict import load_bundle

    path = site_experiment(tmp_path, {"file": "splits.json", "strategy": LEAVE_ONE_SITE_OUT})
    runs, eval_dir = tmp_path / "runs", tmp_path / "eval"
    assert main(["experiment", str(path), "--out", str(runs), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["clin/split-00", "clin/split-01", "clin/split-02"]
    assert not (tmp_path / "splits.json").exists()
    assert main(["--quiet", "experiment", str(path), "--out", str(runs)]) == 0
    assert [s.split for s in load_experiment(path)] == [0, 1, 2]  # the file it made is the one it asks for
    assert main(["--quiet", "evaluate", str(runs), "--out", str(eval_dir), "--no-figures"]) == 0
    per_split = pd.read_csv(eval_dir / "per_split.csv")
    mine = per_split[per_split["variant"] == "clin"].sort_values("split")
    assert list(mine["held_out_site"]) == ["A", "B", "C"]
    assert list(mine["validation_n"]) == [10, 10, 10] and list(mine["n_train"]) == [20, 20, 20]
    predictions = pd.read_csv(runs / "clin" / "split-01" / "predictions.csv", dtype={"patient_id": str})
    validated = set(predictions.loc[predictions["set"] == "validation", "patient_id"])
    assert validated == {f"P{i:03d}" for i in range(30) if i % 3 == 1}  # site B's patients
    assert main(["--quiet", "export", str(runs), "--configuration", "clin", "--out", str(tmp_path / "model"),
                 "--eval", str(eval_dir)]) == 0
    assert len(load_bundle(tmp_path / "model").models) == 3


def test_the_report_describes_site_splits_as_such(tmp_path):
    from types import SimpleNamespace

    from vcpred.report.cohort import _split_lines

    cohort = load_manifest(site_manifest(tmp_path / "cohort"))
    path = save_splits(tmp_path / "s.json", make_site_splits(cohort), cohort=cohort, strategy=LEAVE_ONE_SITE_OUT)
    lines = _split_lines(SimpleNamespace(splits=json.loads(path.read_text()), cohort=cohort))
    assert lines[0] == "3 leave-one-site-out splits" and lines[-1].startswith("one per development site")
    assert lines[2] == "validation: 10 patients (2-3 events)"

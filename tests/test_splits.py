from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcpred.cohort import Cohort, PatientRecord, Roi, load_manifest, load_splits, make_splits, save_splits
from vcpred.errors import SplitError

ROI = Roi(5, 10, 10, 50, 50)


def synthetic_cohort(labels: list[int], n_external: int) -> Cohort:
    records = [PatientRecord(f"D{i}", "development", label, {}, ROI) for i, label in enumerate(labels)]
    records += [PatientRecord(f"E{i}", "external", i % 2, {}, ROI) for i in range(n_external)]
    return Cohort(Path("manifest.csv"), records, ["t2"], {})


cohorts = st.builds(
    synthetic_cohort,
    labels=st.lists(st.integers(0, 1), min_size=4, max_size=120).filter(
        lambda ls: ls.count(0) >= 2 and ls.count(1) >= 2),
    n_external=st.integers(0, 20),
)


@settings(max_examples=60, deadline=None)
@given(cohort=cohorts, n_splits=st.integers(1, 6), val_fraction=st.floats(0.05, 0.6),
       seed=st.integers(0, 2**31))
def test_split_properties(cohort: Cohort, n_splits: int, val_fraction: float, seed: int):
    splits = make_splits(cohort, n_splits=n_splits, val_fraction=val_fraction, seed=seed)
    development = set(cohort.ids("development"))
    external = set(cohort.ids("external"))
    labels = {r.patient_id: r.label for r in cohort.records}
    assert len(splits) == n_splits
    for train, val in splits:
        assert not set(train) & set(val)                      # no patient on both sides
        assert set(train) | set(val) == development           # every development patient
        assert not (set(train) | set(val)) & external         # external never
        for label in (0, 1):
            n_class = sum(1 for p in development if labels[p] == label)
            n_val = sum(1 for p in val if labels[p] == label)
            assert abs(n_val - val_fraction * n_class) <= 1   # within one patient of exact
            assert 1 <= n_val < n_class                       # both classes on both sides
    assert splits == make_splits(cohort, n_splits=n_splits, val_fraction=val_fraction, seed=seed)


def test_splits_do_not_depend_on_row_order():
    labels = [0, 1] * 15
    cohort = synthetic_cohort(labels, 3)
    reversed_cohort = Cohort(Path("m.csv"), cohort.records[::-1], ["t2"], {})
    assert make_splits(cohort, seed=4) == make_splits(reversed_cohort, seed=4)
    assert make_splits(cohort, seed=4) != make_splits(cohort, seed=5)


def test_splits_refuse_bad_input():
    with pytest.raises(SplitError, match="at least 2 patients with label 1"):
        make_splits(synthetic_cohort([0, 0, 0, 1], 0))
    with pytest.raises(SplitError, match="val_fraction"):
        make_splits(synthetic_cohort([0, 1] * 4, 0), val_fraction=1.0)
    with pytest.raises(SplitError, match="n_splits"):
        make_splits(synthetic_cohort([0, 1] * 4, 0), n_splits=0)


def test_save_and_load_round_trip(clean_manifest: Path, tmp_path: Path):
    cohort = load_manifest(clean_manifest)
    splits = make_splits(cohort, n_splits=3, seed=1)
    path = save_splits(tmp_path / "splits.json", splits, cohort=cohort, seed=1, val_fraction=0.2)
    assert load_splits(path, cohort) == splits
    payload = json.loads(path.read_text())
    assert payload["seed"] == 1 and len(payload["manifest_sha256"]) == 64
    with pytest.raises(SplitError, match="exists"):
        save_splits(path, splits, cohort=cohort, seed=1, val_fraction=0.2)


def test_load_rejects_leaky_or_foreign_splits(clean_manifest: Path, tmp_path: Path):
    cohort = load_manifest(clean_manifest)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"splits": [{"train": ["P000", "P001"], "val": ["P001"]}]}))
    with pytest.raises(SplitError, match="both sides"):
        load_splits(path, cohort)
    path.write_text(json.dumps({"splits": [{"train": ["P000", "P100"], "val": ["P001"]}]}))
    with pytest.raises(SplitError, match="not development"):
        load_splits(path, cohort)
    path.write_text("{not json")
    with pytest.raises(SplitError, match="not a vcpred splits file"):
        load_splits(path)

"""The manifest's `exclude` column (issue 28): a patient whose series cannot be read is left out of
every step with its reason, instead of blocking `cohort check`, `split`, `prepare` and training for the
whole cohort; and the late failures of such a patient say the next step."""

from __future__ import annotations

import json

import pytest

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from imaging_support import save_nifti, small_volume
from vcpred.cli import main
from vcpred.cohort import check_manifest, load_manifest, load_splits, make_splits, save_splits
from vcpred.errors import ManifestError, SplitError, VcpredError

HEADER = MANIFEST_HEADER + ["bmi", "exclude"]
REASON = "series misses slice 12"
NO_ROI = dict.fromkeys(("roi_slice", "roi_row_min", "roi_col_min", "roi_row_max", "roi_col_max"), "")


def unreadable(index: int, **overrides) -> dict:
    """A patient as `cohort init` left it and annotate could not fix: no ROI, no label, an image that is
    gone, an impossible age and a decimal comma; excluded with a reason."""
    cells = {"label": "", "image_t2": f"images/gone{index}.nii.gz", "age": 500, "bmi": '"24,5"', "exclude": REASON}
    return patient_row(index, **{**cells, **NO_ROI, **overrides})


def cohort(folder, *extra: dict):
    rows = [patient_row(i, label=i % 2) for i in range(10)] + [unreadable(10), *extra]
    path = write_manifest(folder, rows, header=HEADER)
    for row in rows:
        if "gone" in row["image_t2"]:
            (folder / row["image_t2"]).unlink()
    return path


def test_an_excluded_patient_needs_no_roi_image_label_or_possible_values(tmp_path, capsys):
    from vcpred.cohort.manifest import ExcludedPatient

    manifest = cohort(tmp_path)
    assert main(["cohort", "check", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "patients: 10 (and 1 excluded, listed below)" in out and "no problems found" in out
    assert f"excluded in the manifest (left out of every step): 1 patient(s)\n  P010 (row 12, development): {REASON}" \
        in out
    loaded = load_manifest(manifest)
    assert "P010" not in loaded.ids() and len(loaded) == 10
    assert loaded.excluded == [ExcludedPatient("P010", "development", REASON, 12)]
    assert loaded.clinical_columns["bmi"] == "numeric"  # the excluded '24,5' neither counts nor is a problem
    with pytest.raises(ManifestError, match=f"patient 'P010' is excluded .*row 12, exclude: '{REASON}'"):
        loaded["P010"]


def test_included_patients_are_checked_as_before(tmp_path, capsys):
    """The same cells on a patient that is not excluded are every problem they were."""
    manifest = cohort(tmp_path, unreadable(11, exclude=""), unreadable(12, exclude="NA"))
    assert main(["cohort", "check", str(manifest)]) == 2
    out = capsys.readouterr().out
    problems = [str(p) for p in check_manifest(manifest).problems]
    assert any("manifest: 2 patient(s) without ROI (roi_slice and box empty): P011, P012; place" in p for p in problems)
    assert any("column 'bmi'" in p and "row 13 ('24,5') and row 14 ('24,5')" in p for p in problems)
    for row, pid in ((13, "P011"), (14, "P012")):
        assert f"row {row}, patient '{pid}', column 'image_t2': file not found" in out
        assert f"row {row}, patient '{pid}', column 'age': age=500 years is impossible" in out
        assert f"row {row}, patient '{pid}', column 'label': development patient without a label" in out
    assert "P010" not in "\n".join(problems)
    assert f"  P010 (row 12, development): {REASON}" in out  # listed even when there are problems


@pytest.mark.parametrize("mark", ["yes", "1", "No", "x"])
def test_a_yes_no_mark_is_not_a_reason(tmp_path, mark):
    problems = check_manifest(cohort(tmp_path, unreadable(11, exclude=mark))).problems
    assert [(p.row, p.column) for p in problems] == [(13, "exclude")]
    assert f"exclude {mark!r} reads as a yes/no mark, not a reason" in str(problems[0])


def test_an_excluded_row_still_needs_an_id_and_a_set(tmp_path):
    problems = check_manifest(cohort(tmp_path, unreadable(11, patient_id="", set="training"))).problems
    assert {(p.row, p.column) for p in problems} == {(13, "patient_id"), (13, "set")}


def test_cohort_split_never_puts_an_excluded_patient_in_a_split(tmp_path):
    manifest = cohort(tmp_path)
    out = tmp_path / "splits.json"
    assert main(["--quiet", "cohort", "split", str(manifest), "--out", str(out), "--n-splits", "3",
                 "--val-fraction", "0.5"]) == 0
    splits = json.loads(out.read_text())["splits"]
    assert all(sorted(s["train"] + s["val"]) == [f"P{i:03d}" for i in range(10)] for s in splits)


def test_prepare_skips_an_excluded_patient_and_says_why(tmp_path, capsys):
    folder = tmp_path / "cohort"
    roi = {"roi_slice": 4, "roi_row_min": 12, "roi_col_min": 14, "roi_row_max": 28, "roi_col_max": 34}
    rows = [patient_row(i, label=i % 2, **roi) for i in range(2)] + [unreadable(2)]
    for row in rows[:2]:
        save_nifti(small_volume(seed=int(row["patient_id"][1:])), folder / row["image_t2"])
    manifest = write_manifest(folder, rows, header=HEADER, make_images=False)
    store = tmp_path / "store"
    assert main(["prepare", str(manifest), "--out", str(store), "--size", "32", "--no-n4"]) == 0
    out = capsys.readouterr().out
    assert f"1 patient(s) excluded in the manifest, not prepared: P002 ({REASON})" in out
    assert "prepared 2, skipped 0 unchanged, failed 0" in out
    assert sorted(json.loads((store / "index.json").read_text())["patients"]) == ["P000", "P001"]


def test_a_failed_prepare_names_the_exclude_column_as_the_way_out(tmp_path, capsys):
    folder = tmp_path / "cohort"
    outside = {"roi_slice": 4, "roi_row_min": 60, "roi_col_min": 14, "roi_row_max": 70, "roi_col_max": 34}
    save_nifti(small_volume(), folder / "images/P000.nii.gz")
    manifest = write_manifest(folder, [patient_row(0, **outside)], make_images=False)
    assert main(["prepare", str(manifest), "--out", str(tmp_path / "store"), "--size", "32", "--no-n4"]) == 2
    err = capsys.readouterr().err
    assert "1 patient(s) failed" in err and "Traceback" not in err
    assert f"is left out of every step by a reason in its `exclude` cell of {manifest}" in err


def test_splits_made_before_a_patient_was_excluded_say_to_move_the_file(tmp_path):
    rows = [patient_row(i, label=i % 2) for i in range(12)]
    manifest = write_manifest(tmp_path, rows, header=HEADER)
    splits = save_splits(tmp_path / "splits.json", make_splits(load_manifest(manifest), n_splits=2, val_fraction=0.5),
                         cohort=load_manifest(manifest), seed=0, val_fraction=0.5)
    rows[10]["exclude"] = REASON
    write_manifest(tmp_path, rows, header=HEADER)
    with pytest.raises(SplitError) as caught:
        load_splits(splits, load_manifest(manifest))
    message = str(caught.value)
    assert f"names patients that are not development patients of {manifest}: 'P010' (excluded: '{REASON}')" \
        in message
    assert (f"move it aside (`mv {splits} {splits}.old`), then make new splits with `vcpred cohort split {manifest} "
            f"--out {splits}`") in message


def test_the_participant_flow_counts_excluded_patients_with_their_reasons(tmp_path):
    """TRIPOD+AI 20a: the report's flow starts from every manifest row and says who was left out and why."""
    from types import SimpleNamespace

    import pandas as pd

    from vcpred.report.cohort import excluded_table, exclusion_text, flow

    rows = [patient_row(i, label=i % 2) for i in range(10)] + [unreadable(10), unreadable(11)]
    rows += [patient_row(100 + i, set_name="external", label=i % 2) for i in range(4)]
    rows.append(unreadable(104, set="external", exclude="no sagittal series"))
    cohort = load_manifest(cohort_manifest := write_manifest(tmp_path, rows, header=HEADER), check_files=False)
    included = cohort.ids("development")
    inputs = SimpleNamespace(
        cohort=cohort, evaluation={}, chosen="m", configs={"m": None}, per_split=pd.DataFrame({"ap": [False]}),
        splits={"seed": 0, "splits": [{"train": included[:8], "val": included[8:]}]},
        ensembles=pd.DataFrame({"variant": "m", "patient_id": cohort.ids("external"), "label": [0, 1, 0, 1]}))
    svg = str(flow(inputs))
    assert "17 patients, 3 excluded with a reason" in svg and cohort_manifest.name in svg
    assert "10 patients, 5 events" in svg and "4 patients, 2 events" in svg  # the included ones per set
    assert svg.count("2 in the manifest (reasons below)") == 1 and svg.count("1 in the manifest (reasons below)") == 1
    table = str(excluded_table(inputs))
    assert f"<td>{REASON}</td><td>development</td><td>2</td><td>P010, P011</td>" in table
    assert "<td>no sagittal series</td><td>external</td><td>1</td><td>P104</td>" in table
    assert exclusion_text(cohort) == (f"3 patient(s) excluded in the manifest: {REASON} (2 development); "
                                      "no sagittal series (1 external)")


def test_the_experiment_stops_before_training_when_the_store_lacks_a_patient(tmp_path, capsys, weights_home):
    """A patient that failed `prepare` passed the preflight, then failed every image run with 'fix it and
    run prepare again', which a series that misses a slice never allows. Now the preflight names it and
    the way out; following it (exclude, move the old splits aside) lets the experiment go on."""
    import yaml

    from tiny_store import build_tiny_cohort
    from vcpred.experiment import load_experiment

    manifest, store, splits = build_tiny_cohort(tmp_path / "cohort", n_external=4)
    index = json.loads((store / "index.json").read_text())
    index["patients"]["P004"] = {"status": "failed", "error": "the series misses a slice (13 of 14 positions)"}
    del index["patients"]["P101"]
    (store / "index.json").write_text(json.dumps(index))
    config = tmp_path / "cohort" / "experiment.yaml"
    config.write_text(yaml.safe_dump({
        "manifest": "manifest.csv", "store": "store", "splits": {"file": "splits.json"},
        "model": {"weights": "random", "backbone": "resnet_test"}, "training": {"epochs": 1, "batch_size": 8},
        "configurations": [{"name": "cnn"}]}))
    runs = tmp_path / "runs"
    assert main(["experiment", str(config), "--out", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: the prepared store {store} lacks 2 patient(s) the image "
                                                  "runs read, so nothing was trained: ")
    assert "P004 (failed in `vcpred prepare`: the series misses a slice (13 of 14 positions)); P101 (not in the store)" \
        in err
    assert f"Next: run `vcpred prepare {manifest} --out {store}` again" in err
    assert f"left out by a reason in its `exclude` cell of {manifest}" in err
    assert f"{splits} still names it: move it aside (`mv {splits} {splits}.old`)" in err
    assert not list(runs.glob("*/split-*"))

    # the way out it names: exclude P004 with its reason; the old splits are then refused, saying to move them
    text = manifest.read_text().splitlines()
    text = [text[0] + ",exclude"] + [line + (",series misses a slice" if line.startswith("P004,") else ",")
                                     for line in text[1:]]
    manifest.write_text("\n".join(text) + "\n")
    assert main(["experiment", str(config), "--out", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "'P004' (excluded: 'series misses a slice')" in err and f"`mv {splits} {splits}.old`" in err
    splits.rename(f"{splits}.old")
    specs = load_experiment(config)  # new splits, without P004
    assert "P004" not in splits.read_text()
    from vcpred.experiment.preflight import check_store

    with pytest.raises(VcpredError, match=r"lacks 1 patient\(s\).*P101 \(not in the store\)") as caught:
        check_store(specs)
    assert "exclude" not in str(caught.value)  # nothing failed: preparing again is the way

"""What `vcpred cohort check` tells a user fixing a manifest (issue 28, consistency): the command that
places missing ROIs, the cohort's shape below the problem list, and 0/1 clinical flags read as flags."""

from __future__ import annotations

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from vcpred.cli import main
from vcpred.cohort import check_manifest, summarize

NO_ROI = dict.fromkeys(("roi_slice", "roi_row_min", "roi_col_min", "roi_row_max", "roi_col_max"), "")


def test_patients_without_roi_are_sent_to_annotate_with_their_count(tmp_path, capsys):
    rows = [patient_row(i, label=i % 2) for i in range(6)]
    rows += [patient_row(6 + i, label=0, **NO_ROI) for i in range(3)]
    rows.append(patient_row(9, label=1, exclude="series misses slice 12", **NO_ROI))  # excluded: needs none
    manifest = write_manifest(tmp_path, rows, header=MANIFEST_HEADER + ["exclude"])
    assert main(["--quiet", "cohort", "check", str(manifest)]) == 2
    out = capsys.readouterr().out
    # shown under --quiet too: it is the next step of the answer the user asked for
    assert (f"next: place the 3 missing ROI box(es) with `vcpred annotate {manifest}` (docs/annotate.md), then run "
            f"`vcpred cohort check {manifest}` again") in out

    rows = [patient_row(i, label=i % 2) for i in range(6)]
    rows[2]["label"] = 2                 # problems of another kind do not name annotate
    assert main(["cohort", "check", str(write_manifest(tmp_path / "placed", rows))]) == 2
    assert "annotate" not in capsys.readouterr().out


def test_the_summary_follows_the_problem_list(tmp_path, capsys):
    rows = [patient_row(i, label=int(i % 3 == 0)) for i in range(8)]            # events on P000, P006 (P003: below)
    rows += [patient_row(100 + i, set_name="external", label=i % 2) for i in range(4)]
    rows[3]["label"] = 2                 # a label problem: P003 counts as without a label, not as an event
    rows[5]["set"] = "training"          # a set problem: its row is shown under the set as written
    rows[7].update(NO_ROI)               # the ROI problem
    manifest = write_manifest(tmp_path, rows, header=MANIFEST_HEADER + ["exclude"])
    assert main(["cohort", "check", str(manifest)]) == 2
    out = capsys.readouterr().out
    problems = out.index("3 problem(s):")
    summary = out.index("per set:")
    assert problems < summary, out
    body = out[summary:]
    assert "development                  7 patients     2 events  prevalence 33.3%, 1 without a label 0/1" in body
    assert "training                     1 patients     0 events  prevalence 0.0%" in body
    assert "external / B                 4 patients     2 events  prevalence 50.0%" in body
    assert "ROI placed: 11 of 12 patients" in body
    assert "sequences: t2" in body
    assert "age" in body and "sex" in body and "categorical" in body
    assert "no problems found" not in out


def test_flags_are_read_as_yes_no_with_their_counts(tmp_path, capsys):
    rows = [patient_row(i, label=i % 2, steroid=int(i < 3), diabetes="" if i == 0 else int(i == 4))
            for i in range(8)]
    manifest = write_manifest(tmp_path, rows, header=MANIFEST_HEADER + ["steroid", "diabetes"])
    result = check_manifest(manifest)
    text = summarize(result.cohort, result.table)
    assert "steroid                  yes/no flag (1 = yes, 0 = no)    0 missing; 3 yes, 5 no" in text
    assert "diabetes                 yes/no flag (1 = yes, 0 = no)    1 missing; 1 yes, 6 no" in text
    assert "age                      numeric         0 missing" in text  # a number stays a number

    rows[1]["steroid"] = 2               # impossible: a problem, and shown as neither yes nor no
    rows[2].update(NO_ROI)
    assert main(["cohort", "check", str(write_manifest(tmp_path / "bad", rows,
                                                       header=MANIFEST_HEADER + ["steroid", "diabetes"]))]) == 2
    out = capsys.readouterr().out
    assert "steroid                  yes/no flag (1 = yes, 0 = no)    0 missing; 2 yes, 5 no, 1 neither 0 nor 1" in out

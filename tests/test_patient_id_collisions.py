"""Patient ids that differ only in upper/lower case or Unicode normalisation (issue 27): the store and
runs write one file per patient named by its id, and macOS and Windows file systems take EXT0001 and
ext0001 (or NFC and NFD café) as one name, so one patient's file would silently replace the other's.
Such a pair is one problem naming both rows, where the manifest is read and in `cohort check`."""

from __future__ import annotations

import unicodedata

import pytest

from conftest import patient_row, write_manifest
from vcpred.cli import main
from vcpred.cohort import check_manifest, load_manifest
from vcpred.errors import ManifestError

NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


def manifest_with(tmp_path, first: str, second: str):
    rows = [patient_row(i, label=int(i % 3 == 0)) for i in range(6)]
    rows[1] = patient_row(1, patient_id=first, image_t2="images/one.nii.gz")
    rows[4] = patient_row(4, patient_id=second, image_t2="images/two.nii.gz", label=1)
    return write_manifest(tmp_path / "cohort", rows)


@pytest.mark.parametrize("first,second", [("EXT0001", "ext0001"), (NFC, NFD), ("Café", NFD)])
def test_ids_equal_but_for_case_or_normalisation_are_one_problem_naming_both_rows(tmp_path, first, second):
    assert first != second
    check = check_manifest(manifest_with(tmp_path, first, second))
    problems = [p for p in check.problems if p.column == "patient_id"]
    assert len(problems) == 1 and check.cohort is None, check.problems
    problem = problems[0]
    assert problem.row == 6 and "row 3" in problem.message  # header = row 1: rows 3 and 6
    assert repr(first) in problem.message and repr(second) in problem.message
    assert "case" in problem.message and "macOS and Windows" in problem.message
    with pytest.raises(ManifestError, match="differ only in"):
        load_manifest(manifest_with(tmp_path / "again", first, second))


def test_cohort_check_prints_the_pair(tmp_path, capsys):
    assert main(["cohort", "check", str(manifest_with(tmp_path, "EXT0001", "ext0001"))]) != 0
    out = capsys.readouterr()
    assert "'EXT0001'" in out.out + out.err and "'ext0001'" in out.out + out.err


def test_distinct_ids_and_exact_duplicates_keep_their_own_messages(tmp_path):
    assert check_manifest(manifest_with(tmp_path / "a", "EXT0001", "EXT0002")).ok
    problems = check_manifest(manifest_with(tmp_path / "b", "EXT0001", "EXT0001")).problems
    assert [p.message for p in problems] == ["duplicate patient_id, first on row 3"]

"""Choosing a patient's series (issue 28): words in any order, shell-style globs as before, what a
list of candidates shows, and the short reference `DATE#N` that chooses one of them."""

from __future__ import annotations

import csv

import pytest

from imaging_support import small_volume, write_dicom_series
from vcpred.cli import main
from vcpred.cohort.series_choice import description_words, matches
from vcpred.imaging import read_volume
from vcpred.imaging.dicom import scan_folder


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def uid_of(folder):
    return next(iter(scan_folder(folder).groups))


@pytest.mark.parametrize("description, found", [
    ("SAG T2", True), ("SAG T2 FSE", True), ("T2_SAG", True), ("t2-tse.sag(FS)", True), ("Sag/T2+C", True),
    ("T2SAG", False), ("SAG T1", False), ("AX T2", False), ("SAGITTAL T2", False), ("", False)])
def test_words_match_in_any_order_case_insensitive(description, found):
    assert matches("t2 sag", description) is found
    assert matches("SAG_T2", description) is found  # the pattern is split into words the same way


def test_how_descriptions_are_split_into_words():
    assert description_words("SAG T2 FSE") == ["sag", "t2", "fse"]
    assert description_words("  T2_TSE-sag.(fs)/3mm ") == ["t2", "tse", "sag", "fs", "3mm"]
    assert description_words("Ça T2") == ["ça", "t2"]


@pytest.mark.parametrize("pattern, description, found", [
    ("*t2*sag*", "T2_TSE_SAG", True), ("*t2*sag*", "SAG T2", False), ("T2*", "t2 sag", True),
    ("t2 sa?", "T2 SAG", True), ("t2 sa?", "SAG T2", False), ("[st]*", "STIR", True)])
def test_globs_match_as_before(pattern, description, found):
    assert matches(pattern, description) is found


@pytest.fixture
def named_series(tmp_path):
    """One patient folder whose sagittal series are named the ways scanners name them."""
    folder = tmp_path / "root" / "P001"
    for seed, description in enumerate(["SAG T2", "T1 SAG", "STIR SAG"]):
        write_dicom_series(folder / str(seed), small_volume(seed=seed), flips=(0,), description=description)
    write_dicom_series(folder / "ax", small_volume(seed=9), perm=(1, 0, 2), description="AX T2")
    return folder


def test_init_chooses_by_words_in_any_order(tmp_path, named_series):
    out = tmp_path / "manifest.csv"
    assert main(["cohort", "init", str(named_series.parent), "--out", str(out), "--series", "t2 sag"]) == 0
    assert read_rows(out)[0]["series_t2"] == uid_of(named_series / "0")  # "SAG T2", not "AX T2" (axial)


def test_init_glob_keeps_its_order(tmp_path, named_series):
    out = tmp_path / "manifest.csv"
    assert main(["cohort", "init", str(named_series.parent), "--out", str(out), "--series", "*sag*"]) == 0
    assert read_rows(out)[0]["series_t2"] == ""  # three sagittal descriptions hold "sag"
    assert main(["cohort", "init", str(named_series.parent), "--out", str(out), "--force", "--series", "t1*"]) == 0
    assert read_rows(out)[0]["series_t2"] == uid_of(named_series / "1")
    assert main(["cohort", "init", str(named_series.parent), "--out", str(out), "--force", "--series", "*t2*sag*"]) == 0
    assert read_rows(out)[0]["series_t2"] == ""  # a glob is read in its order: "SAG T2" is not "*t2*sag*"


def test_the_series_cell_chooses_by_words(named_series):
    assert read_volume(named_series, series="T2 sag").provenance["series_description"] == "SAG T2"
    assert read_volume(named_series, series="sag stir").provenance["series_description"] == "STIR SAG"
    assert read_volume(named_series, series="T1 SAG").provenance["series_description"] == "T1 SAG"
    assert read_volume(named_series, series="*t1*").provenance["series_description"] == "T1 SAG"

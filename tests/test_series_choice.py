"""Choosing a patient's series (issue 28): words in any order, shell-style globs as before, what a
list of candidates shows, and the short reference `DATE#N` that chooses one of them."""

from __future__ import annotations

import csv
import json

import pytest
from pydicom.uid import generate_uid

from imaging_support import small_volume, write_dicom_series
from vcpred.cli import main
from vcpred.errors import ImageReadError
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


@pytest.fixture
def two_studies(tmp_path):
    """P001: a baseline and a follow-up whose sagittal T2 both are series 3 (as scanners number them),
    an axial T2 and a STIR of the follow-up."""
    folder = tmp_path / "root" / "P001"
    baseline, followup = generate_uid(), generate_uid()
    for name, study, date, number, description, seed in [
            ("base_t2", baseline, "20240105", 3, "SAG T2", 1), ("followup_t2", followup, "20240610", 3, "SAG T2 FSE", 2),
            ("followup_stir", followup, "20240610", 5, "SAG STIR", 3)]:
        write_dicom_series(folder / name, small_volume(seed=seed), flips=(0,), description=description,
                           study_uid=study, study_date=date, series_number=number)
    write_dicom_series(folder / "base_ax", small_volume(seed=4), perm=(1, 0, 2), description="AX T2",
                       study_uid=baseline, study_date="20240105", series_number=4)
    return folder


BASE = "20240105#3  study 2024-01-05, series 3, 'SAG T2', sagittal, 9 slices"
FOLLOWUP = "20240610#3  study 2024-06-10, series 3, 'SAG T2 FSE', sagittal, 9 slices"
STIR = "20240610#5  study 2024-06-10, series 5, 'SAG STIR', sagittal, 9 slices"


def init_printed(capsys, root, out, *options):
    assert main(["cohort", "init", str(root), "--out", str(out), "--force", *options]) == 0
    return capsys.readouterr().out


def test_init_says_how_many_series_match_and_lists_them(tmp_path, two_studies, capsys):
    printed = init_printed(capsys, two_studies.parent, tmp_path / "m.csv", "--series", "t2 sag")
    assert ("P001: 2 series match --series 't2 sag'; write the first word of the one to read into series_t2, "
            "or choose it in vcpred annotate (docs/manifest.md, \"Choosing a series\"):") in printed
    assert f"    {BASE}\n    {FOLLOWUP}\n" in printed  # oldest study first
    assert "SAG STIR" not in printed and "no series matches" not in printed
    assert read_rows(tmp_path / "m.csv")[0]["series_t2"] == ""


def test_init_lists_every_sagittal_candidate_when_none_matches(tmp_path, two_studies, capsys):
    printed = init_printed(capsys, two_studies.parent, tmp_path / "m.csv", "--series", "flair")
    assert "P001: no series matches --series 'flair'; write the first word of the one to read" in printed
    assert f"    {BASE}\n    {FOLLOWUP}\n    {STIR}\n" in printed and "AX T2" not in printed
    printed = init_printed(capsys, two_studies.parent, tmp_path / "m.csv")
    assert "P001: 3 sagittal series; write the first word of the one to read" in printed
    assert f"    {BASE}\n    {FOLLOWUP}\n    {STIR}\n" in printed


def test_a_listed_reference_chooses_the_series(two_studies):
    assert read_volume(two_studies, series="20240610#3").provenance["series_description"] == "SAG T2 FSE"
    assert read_volume(two_studies, series="2024-01-05#3").provenance["series_description"] == "SAG T2"
    assert read_volume(two_studies, series="#5").provenance["series_description"] == "SAG STIR"
    with pytest.raises(ImageReadError, match="2 series match '#3': 20240105#3 .study 2024-01-05, series 3, 'SAG T2', "
                                             "sagittal, 9 slices.; 20240610#3 .study 2024-06-10, series 3, 'SAG T2 FSE'"):
        read_volume(two_studies, series="#3")
    with pytest.raises(ImageReadError, match="2 series match 't2 sag': .*choose one by the first word"):
        read_volume(two_studies, series="t2 sag")
    with pytest.raises(ImageReadError, match="no series matches '20240105#5'; the series here: 20240105#3 .*"
                                             "20240105#4 .study 2024-01-05, series 4, 'AX T2', axial, 40 slices."):
        read_volume(two_studies, series="20240105#5")


def test_an_unchosen_folder_lists_its_series_with_their_references(two_studies):
    with pytest.raises(ImageReadError, match=r"mixes 4 series: 20240105#3 \(study 2024-01-05, series 3, 'SAG T2', "
                                             r"sagittal, 9 slices\); 20240105#4 .*; choose one with --series "
                                             r"SEQUENCE=CHOICE or the manifest's series_<sequence> column "
                                             r"\(the first word of its entry above, e.g. 20240105#3"):
        read_volume(two_studies)


def test_a_series_without_number_is_listed_by_its_uid(tmp_path):
    folder = tmp_path / "P001"
    write_dicom_series(folder / "a", small_volume(), series_uid="1.2.3.1", description="T2 SAG")
    write_dicom_series(folder / "b", small_volume(seed=1), description="T2 SAG FS", study_date="20240105",
                       series_number=7)
    with pytest.raises(ImageReadError, match=r"1\.2\.3\.1 \(no study date, no series number, 'T2 SAG', sagittal, "
                                             r"9 slices\); 20240105#7 \(study 2024-01-05, series 7, 'T2 SAG FS'"):
        read_volume(folder)


def test_init_then_the_reference_in_the_manifest_is_what_prepare_reads(tmp_path, two_studies, capsys):
    out = tmp_path / "manifest.csv"
    printed = init_printed(capsys, two_studies.parent, out, "--series", "t2 sag")
    chosen = next(line.split()[0] for line in printed.splitlines() if "'SAG T2 FSE'" in line)
    assert chosen == "20240610#3"  # not the 64-character UID
    rows = read_rows(out)
    rows[0].update(series_t2=chosen, label="0", roi_slice="4", roi_row_min="12", roi_col_min="14",
                   roi_row_max="28", roi_col_max="34")
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["prepare", str(out), "--out", str(tmp_path / "store"), "--size", "32", "--no-n4"]) == 0
    provenance = json.loads((tmp_path / "store" / "provenance" / "P001.json").read_text())
    assert provenance["sequences"]["t2"]["series_uid"] == uid_of(two_studies / "followup_t2")

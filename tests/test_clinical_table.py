"""`vcpred cohort merge-clinical` (issue 28): a hospital's clinical table merged into the manifest by a small
mapping file, without code: renames, age and days from dates, BMI from weight and height, yes/no flags with an
explicit unknown, sex codes, the label from a column and a rule; patients matched by a normalised key, the
unmatched rows of both sides listed; the user's manifest never replaced."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import patient_row, write_manifest
from vcpred.cli import main
from vcpred.cohort.clinical_mapping import load_mapping
from vcpred.cohort.clinical_table import is_unknown, normalise_key, parse_date, yes_no
from vcpred.errors import ConfigError

# A hospital export: its own column names, day-first dates, weight in kg and height in cm, Y/N flags with
# 'unknown', sex as codes 1/2, MRN without the folder's prefix (one with leading zeros) and a patient the
# manifest does not hold.
TABLE = """\
MRN,DOB,MRI_date,Fracture_date,Weight,Height,Glucocorticoids,DM,Sex,T_score,Collapse_6m
10231,31.12.1950,05.01.2024,20.12.2023,60,160,Y,N,2,-2.9,yes
10232,15.06.1945,10.02.2024,01.02.2024,72.5,175,unknown,true,1,-3.1,no
0010233,01.03.1940,01.03.2024,01.01.2024,55,150,N,,2,,N
99999,01.01.1960,01.01.2024,01.12.2023,80,180,N,N,1,-1.0,N
"""

MAPPING = """\
key: {table: MRN, manifest: patient_id, normalise: digits}
date_format: "%d.%m.%Y"
columns:
  age: {years_between: [DOB, MRI_date]}
  days_to_mri: {days_between: [Fracture_date, MRI_date]}
  bmi: {from_weight_height: [Weight, Height], weight_unit: kg, height_unit: cm}
  steroid: {yes_no: Glucocorticoids}
  diabetes: {yes_no: DM}
  sex: {column: Sex, codes: {1: M, 2: F}}
  bmd_tscore: {column: T_score}
  label: {yes_no: Collapse_6m}
"""

HEADER = ["patient_id", "set", "image_t2", "roi_slice", "roi_row_min", "roi_col_min", "roi_row_max",
          "roi_col_max", "label", "site", "level", "age", "sex"]
IDS = ["MRN_10231", "MRN_10232", "MRN_10233", "MRN_77777"]


@pytest.fixture
def hospital(tmp_path: Path) -> dict[str, Path]:
    """A manifest as `cohort init` names its rows (the folder MRN_xxx), label and clinical cells empty, the
    hospital's table and the mapping."""
    rows = [patient_row(i, patient_id=pid, label="", age="", sex="", image_t2=f"images/{pid}.nii.gz")
            for i, pid in enumerate(IDS)]
    manifest = write_manifest(tmp_path / "cohort", rows, header=HEADER)
    table = tmp_path / "cohort" / "clinical.csv"
    table.write_text(TABLE)
    mapping = tmp_path / "cohort" / "mapping.yaml"
    mapping.write_text(MAPPING)
    return {"manifest": manifest, "table": table, "mapping": mapping, "out": tmp_path / "cohort" / "merged.csv"}


def merge(paths: dict[str, Path], *extra: str) -> int:
    return main(["cohort", "merge-clinical", str(paths["manifest"]), str(paths["table"]),
                 "--mapping", str(paths["mapping"]), "--out", str(paths["out"]), *extra])


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["patient_id"]: row for row in csv.DictReader(handle)}


def test_merge_derives_every_column_from_the_hospital_table(hospital, capsys):
    before = hospital["manifest"].read_bytes()
    assert merge(hospital) == 0
    rows = read_rows(hospital["out"])
    first, second, third = rows["MRN_10231"], rows["MRN_10232"], rows["MRN_10233"]
    # age in completed years at the MRI: 31.12.1950 -> 05.01.2024 is 73 (the birthday on 31.12 has passed)
    assert first["age"] == "73" and second["age"] == "78"  # 15.06.1945 -> 10.02.2024: not yet 79
    assert first["days_to_mri"] == "16" and second["days_to_mri"] == "9"
    assert first["bmi"] == "23.4" and second["bmi"] == "23.7"  # 60 / 1.6², 72.5 / 1.75²
    assert (first["steroid"], second["steroid"], third["steroid"]) == ("1", "", "0")  # unknown stays missing
    assert (first["diabetes"], second["diabetes"], third["diabetes"]) == ("0", "1", "")  # empty stays missing
    assert (first["sex"], second["sex"]) == ("F", "M")
    assert (first["bmd_tscore"], third["bmd_tscore"]) == ("-2.9", "")
    assert (first["label"], second["label"], third["label"]) == ("1", "0", "0")
    assert rows["MRN_77777"]["age"] == "" and rows["MRN_77777"]["label"] == ""
    assert first["image_t2"] == "images/MRN_10231.nii.gz" and first["roi_slice"] == "7"  # the rest kept
    assert hospital["manifest"].read_bytes() == before  # the user's manifest is untouched
    printed = capsys.readouterr().out
    assert "clinical values for 3 of 4 manifest row(s)" in printed
    assert "steroid: yes/no from Glucocorticoids: 1 yes, 1 no, 1 missing" in printed
    assert "age: completed years from DOB to MRI_date: 3 values" in printed
    # cohort check of the new manifest: the patient the table does not hold still needs its label
    assert "cohort check of" in printed
    assert "row 5, patient 'MRN_77777', column 'label': development patient without a label" in printed


def test_unmatched_rows_of_both_sides_are_listed(hospital, capsys):
    assert merge(hospital) == 0
    printed = capsys.readouterr().out
    assert "1 manifest row(s) without a table row: row 5 'MRN_77777' (key 77777)" in printed
    assert "1 table row(s) matching no manifest row: table row 5 (MRN '99999', key 99999)" in printed


def test_key_normalisation_rules():
    assert normalise_key("MRN_10231", "digits") == "10231"
    assert normalise_key(" 0010231 ", "digits") == "10231"  # leading zeros dropped
    assert normalise_key("MRN_", "digits") == ""  # no digits: no key, listed as unmatched
    assert normalise_key("000", "digits") == "0"
    assert normalise_key(" Pat-07 ", "casefold") == "pat-07"
    assert normalise_key(" Pat-07 ", "exact") == "Pat-07"


def test_a_yes_no_cell_that_is_no_answer_is_a_problem_naming_its_row(hospital, capsys):
    hospital["table"].write_text(TABLE.replace("10232,15.06.1945,10.02.2024,01.02.2024,72.5,175,unknown",
                                               "10232,15.06.1945,10.02.2024,01.02.2024,72.5,175,maybe"))
    assert merge(hospital) == 2
    captured = capsys.readouterr()
    assert "table row 3 (MRN '10232'), column 'Glucocorticoids': 'maybe' is not a yes/no answer" in captured.out
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "nothing written" in captured.err
    assert not hospital["out"].exists()


@pytest.mark.parametrize("text, expected", [("Y", 1), ("yes", 1), ("TRUE", 1), ("1", 1), ("n", 0), ("No", 0),
                                            ("false", 0), ("0", 0)])
def test_yes_no_words(text, expected):
    assert yes_no(text) == expected


@pytest.mark.parametrize("text", ["", " ", "unknown", "UNK", "?", "NA", "n/a"])
def test_unknown_words_stay_missing_never_no(text):
    assert is_unknown(text)
    with pytest.raises(ValueError):
        yes_no(text)


def test_the_mappings_own_unknown_words_stay_missing(hospital, capsys):
    hospital["table"].write_text(TABLE.replace("72.5,175,unknown", "72.5,175,-"))
    assert merge(hospital) == 2
    assert "column 'Glucocorticoids': '-' is not a yes/no answer" in capsys.readouterr().out
    hospital["mapping"].write_text(MAPPING + "unknown: ['-']\n")
    assert merge(hospital) == 0
    assert read_rows(hospital["out"])["MRN_10232"]["steroid"] == ""


def test_keys_that_never_match_are_an_error_naming_both_sides(hospital, capsys):
    hospital["mapping"].write_text(MAPPING.replace("normalise: digits", "normalise: exact"))
    assert merge(hospital) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no table row matches a manifest row" in err
    assert "MRN_10231" in err and "10231" in err and "normalise" in err
    assert not hospital["out"].exists()


def test_a_date_that_does_not_parse_is_a_problem_never_a_guess(hospital, capsys):
    hospital["table"].write_text(TABLE.replace("31.12.1950", "1950-12-31").replace("15.06.1945", "15/06/1945"))
    assert merge(hospital) == 2
    out = capsys.readouterr().out
    # ISO is always read; a day-first date with slashes does not match the mapping's date_format
    assert "table row 3 (MRN '10232'), column 'DOB': '15/06/1945' is not a date in the format %d.%m.%Y" in out
    assert "table row 2" not in out
    assert not hospital["out"].exists()


def test_dates_iso_or_the_mapping_format():
    assert str(parse_date("2024-01-05", None)) == "2024-01-05"
    assert str(parse_date("2024-01-05 10:30:00", None)) == "2024-01-05"
    assert str(parse_date("31/12/1950", "%d/%m/%Y")) == "1950-12-31"
    with pytest.raises(ValueError, match="not an ISO date.*date_format"):
        parse_date("31.12.1950", None)


def test_two_table_rows_for_one_patient_are_a_problem(hospital, capsys):
    hospital["table"].write_text(TABLE + "MRN_10231,01.01.1951,05.01.2024,20.12.2023,61,160,Y,N,2,-2.9,yes\n")
    assert merge(hospital) == 2
    out = capsys.readouterr().out
    assert "table rows 2 and 6 have the same key 10231" in out


def test_bmi_in_the_wrong_height_unit_fails_the_clinical_value_policy(hospital, capsys):
    hospital["mapping"].write_text(MAPPING.replace("height_unit: cm", "height_unit: m"))
    assert merge(hospital) == 2
    out = capsys.readouterr().out
    assert "column 'bmi'" in out and "bmi=0 kg/m² is impossible" in out
    assert "Weight 60 kg, Height 160 m" in out
    assert not hospital["out"].exists()


def test_an_impossible_age_fails_the_clinical_value_policy(hospital, capsys):
    hospital["table"].write_text(TABLE.replace("31.12.1950", "31.12.1850"))  # a typo in the year of birth
    assert merge(hospital) == 2
    out = capsys.readouterr().out
    assert "row 2, patient 'MRN_10231', column 'age' (table row 2): age=173 years is impossible" in out
    assert "from DOB '31.12.1850' and MRI_date '05.01.2024'" in out
    assert not hospital["out"].exists()


def test_swapped_dates_are_a_problem_whatever_the_column_is_named(hospital, capsys):
    mapping = MAPPING.replace("[DOB, MRI_date]", "[MRI_date, DOB]").replace("days_to_mri:", "days_from_fracture:")
    hospital["mapping"].write_text(mapping.replace("[Fracture_date, MRI_date]", "[MRI_date, Fracture_date]"))
    assert merge(hospital) == 2
    out = capsys.readouterr().out
    assert ("table row 2 (MRN '10231'), column 'DOB': '31.12.1950' is before MRI_date '05.01.2024', but "
            "years_between counts from the first date to the second") in out
    assert "column 'Fracture_date': '20.12.2023' is before MRI_date '05.01.2024', but days_between" in out


@pytest.mark.parametrize("rule, expected", [
    ("{column: Collapse_6m, codes: {yes: 1, no: 0, N: 0}}", "YAML reads unquoted yes, no, on, off, true and false as true/false"),
    ("{column: T_score, at_least: -3.0}", None),
    ("{column: Sex, codes: {'1': 0, '2': 1}}", None),
])
def test_label_from_a_column_and_a_rule(hospital, capsys, rule, expected):
    hospital["mapping"].write_text(MAPPING.replace("label: {yes_no: Collapse_6m}", f"label: {rule}"))
    if expected:
        assert merge(hospital) == 2
        assert expected in capsys.readouterr().err
        return
    assert merge(hospital) == 0
    rows = read_rows(hospital["out"])
    labels = [rows[pid]["label"] for pid in IDS[:3]]
    if "at_least" in rule:  # T-score -2.9 >= -3.0: 1; -3.1: 0; empty: missing
        assert labels == ["1", "0", ""]
    else:  # sex code 2 -> 1, 1 -> 0
        assert labels == ["1", "0", "1"]


def test_a_code_the_mapping_does_not_list_is_a_problem(hospital, capsys):
    hospital["table"].write_text(TABLE.replace("Y,N,2,-2.9", "Y,N,9,-2.9"))
    assert merge(hospital) == 2
    assert "table row 2 (MRN '10231'), column 'Sex': '9' is not one of the codes 1, 2" in capsys.readouterr().out


def test_a_filled_manifest_cell_that_differs_is_a_conflict_not_overwritten(hospital, capsys):
    text = hospital["manifest"].read_text().splitlines()
    cells = text[1].split(",")
    cells[HEADER.index("age")] = "71"
    text[1] = ",".join(cells)
    hospital["manifest"].write_text("\n".join(text) + "\n")
    assert merge(hospital) == 2
    out = capsys.readouterr().out
    assert "row 2, patient 'MRN_10231', column 'age': the manifest holds '71', the table gives 73 (table row 2)" in out


def test_the_users_manifest_is_never_replaced(hospital, capsys):
    before = hospital["manifest"].read_bytes()
    for target, flags in ((hospital["manifest"], ["--force"]), (hospital["table"], ["--force"])):
        assert main(["cohort", "merge-clinical", str(hospital["manifest"]), str(hospital["table"]), "--mapping",
                     str(hospital["mapping"]), "--out", str(target), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "new file" in err
    assert hospital["manifest"].read_bytes() == before
    hospital["out"].write_text("mine\n")
    assert merge(hospital) == 2
    assert "pass --force" in capsys.readouterr().err and hospital["out"].read_text() == "mine\n"
    assert merge(hospital, "--force") == 0 and "age" in hospital["out"].read_text()


def test_default_out_is_a_new_file_beside_the_manifest(hospital):
    assert main(["cohort", "merge-clinical", str(hospital["manifest"]), str(hospital["table"]), "--mapping",
                 str(hospital["mapping"])]) == 0
    assert read_rows(hospital["manifest"].with_name("manifest.clinical.csv"))["MRN_10231"]["age"] == "73"


def test_out_in_another_folder_is_refused(hospital, tmp_path, capsys):
    hospital["out"] = tmp_path / "elsewhere" / "merged.csv"
    assert merge(hospital) == 2
    assert "image paths are relative" in capsys.readouterr().err


def test_cohort_check_of_the_result_is_printed(hospital, capsys):
    text = hospital["manifest"].read_text().replace("MRN_10232,development,images/MRN_10232.nii.gz,7,100,80,140,120",
                                                    "MRN_10232,development,images/MRN_10232.nii.gz,,,,,")
    hospital["manifest"].write_text(text)
    assert merge(hospital) == 0  # the merge is done; what is still to do is listed
    out = capsys.readouterr().out
    assert "cohort check of" in out and "1 patient(s) without ROI (roi_slice and box empty): MRN_10232" in out


@pytest.mark.parametrize("mapping, message", [
    (MAPPING.replace("years_between", "years_betwen"), "columns.age: unknown key 'years_betwen'"),
    (MAPPING.replace(", weight_unit: kg", ""), "columns.bmi: weight_unit is required (kg or lb)"),
    (MAPPING.replace("height_unit: cm", "height_unit: feet"), "columns.bmi: height_unit 'feet'"),
    (MAPPING.replace("normalise: digits", "normalise: digit"), "key.normalise 'digit'"),
    (MAPPING.replace('date_format: "%d.%m.%Y"', 'date_format: "%d.%m.%y"'), "two-digit year"),
    (MAPPING + "extra: 1\n", "unknown key 'extra'"),
    (MAPPING.replace("{yes_no: DM}", "{yes_no: DM, column: DM}"), "columns.diabetes: give one of"),
    (MAPPING.replace("{column: T_score}", "{column: T_Score}"), "T_Score is not a column of"),
    (MAPPING.replace("bmd_tscore:", "roi_slice:"), "columns.roi_slice: a column vcpred fills itself"),
])
def test_mapping_mistakes_are_one_line_errors(hospital, capsys, mapping, message):
    hospital["mapping"].write_text(mapping)
    assert merge(hospital) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not hospital["out"].exists()


def test_mapping_loads_typed(hospital):
    mapping = load_mapping(hospital["mapping"])
    assert mapping.key.table == "MRN" and mapping.key.normalise == "digits"
    assert mapping.columns["bmi"].rule == "from_weight_height"
    assert mapping.columns["bmi"].sources == ("Weight", "Height")
    with pytest.raises(ConfigError, match="not found"):
        load_mapping(hospital["mapping"].with_name("none.yaml"))


def test_semicolon_table_with_decimal_commas(hospital):
    text = TABLE.replace(",", ";").replace("72.5", "72,5").replace("-2.9", "-2,9")
    hospital["table"].write_text(text)
    hospital["mapping"].write_text(MAPPING + 'decimal: ","\n')
    assert merge(hospital) == 0
    rows = read_rows(hospital["out"])
    assert rows["MRN_10232"]["bmi"] == "23.7" and rows["MRN_10231"]["bmd_tscore"] == "-2.9"


def test_an_xlsx_table_is_refused_with_the_way_out(hospital, capsys):
    hospital["table"] = hospital["table"].with_suffix(".xlsx")
    hospital["table"].write_bytes(b"PK\x03\x04")
    assert merge(hospital) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CSV" in err and "save" in err


def test_cohort_check_on_a_clinical_table_points_to_merge(hospital, capsys):
    assert main(["cohort", "check", str(hospital["table"])]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "looks like a clinical table" in captured.err and "vcpred cohort merge-clinical" in captured.err
    assert "required column is missing" not in captured.out


def test_cohort_check_on_a_manifest_gives_no_clinical_table_hint(hospital, capsys):
    assert main(["cohort", "check", str(hospital["manifest"])]) == 2  # labels empty: problems, but a manifest
    captured = capsys.readouterr()
    assert "clinical table" not in captured.err + captured.out


def test_the_documented_example_gives_the_documented_output(tmp_path, monkeypatch, capsys):
    """docs/manifest.md's table, mapping and printed lines are what the command reads and prints."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "manifest.md").read_text()
    section = text.split("## Merging a clinical table")[1].split("\n## ")[0]
    blocks = [block.split("\n", 1)[1] for block in section.split("```")[1::2]]
    table, mapping, printed = blocks[1], blocks[2], blocks[3]
    rows = [patient_row(i, patient_id=pid, label="", age="", sex="", image_t2=f"images/{pid}.nii.gz")
            for i, pid in enumerate(IDS)]
    write_manifest(tmp_path / "cohort", rows, header=HEADER)
    (tmp_path / "cohort" / "clinical.csv").write_text(table)
    (tmp_path / "cohort" / "mapping.yaml").write_text(mapping)
    monkeypatch.chdir(tmp_path)
    assert main(["cohort", "merge-clinical", "cohort/manifest.csv", "cohort/clinical.csv",
                 "--mapping", "cohort/mapping.yaml"]) == 0
    assert capsys.readouterr().out == printed

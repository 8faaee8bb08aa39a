"""The `set` column from the clinical table by a rule of the merge-clinical mapping (issue 28): the values
listed under `external` make a patient external, every other value development; a missing value is a
problem, never silently development. Without it the researcher had to edit `set` by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import patient_row, write_manifest
from test_clinical_table import HEADER, IDS, MAPPING, TABLE, merge, read_rows

# The example table with the hospital of each patient (its own way of writing it: case differs).
HOSPITALS = {"10231": "Hospital A", "10232": "Hospital C", "0010233": "hospital c", "99999": "Hospital B"}
SET_RULE = '  set: {column: Hospital, external: ["Hospital C"]}\n'


def with_hospital(table: str, hospitals: dict[str, str]) -> str:
    lines = table.splitlines()
    lines[0] += ",Hospital"
    lines[1:] = [f"{line},{hospitals[line.split(',')[0]]}" for line in lines[1:]]
    return "\n".join(lines) + "\n"


@pytest.fixture
def hospital(tmp_path: Path) -> dict[str, Path]:
    """test_clinical_table's manifest (every row development, as cohort init writes it), its table with a
    Hospital column, and its mapping with the set rule."""
    rows = [patient_row(i, patient_id=pid, label="", age="", sex="", image_t2=f"images/{pid}.nii.gz")
            for i, pid in enumerate(IDS)]
    manifest = write_manifest(tmp_path / "cohort", rows, header=HEADER)
    table = tmp_path / "cohort" / "clinical.csv"
    table.write_text(with_hospital(TABLE, HOSPITALS))
    mapping = tmp_path / "cohort" / "mapping.yaml"
    mapping.write_text(MAPPING + SET_RULE)
    return {"manifest": manifest, "table": table, "mapping": mapping, "out": tmp_path / "cohort" / "merged.csv"}


def test_the_set_comes_from_a_column_listed_values_external(hospital, capsys):
    assert merge(hospital) == 0
    rows = read_rows(hospital["out"])
    assert [rows[pid]["set"] for pid in IDS] == ["development", "external", "external", "development"]
    # MRN_77777 has no table row: its set stays the manifest's, and it is listed as unmatched
    printed = capsys.readouterr().out
    assert "1 manifest row(s) without a table row: row 5 'MRN_77777'" in printed
    assert ("set: external when Hospital is 'Hospital C', else development: 3 values (development: 1, "
            "external: 2)") in printed


@pytest.mark.parametrize("cell", ["", "unknown"])
def test_a_missing_value_is_a_problem_never_development(hospital, capsys, cell):
    hospital["table"].write_text(with_hospital(TABLE, {**HOSPITALS, "10231": cell}))
    assert merge(hospital) == 2
    captured = capsys.readouterr()
    assert (f"table row 2 (MRN '10231'), column 'Hospital': {cell!r} gives no set: write the patient's Hospital "
            "into the table (the mapping makes 'Hospital C' external, every other value development)") in captured.out
    assert captured.err.startswith("error: ") and "nothing written" in captured.err
    assert not hospital["out"].exists()


def test_a_manifest_external_is_never_made_development(hospital, capsys):
    """cohort init --set external wrote it: a table that says otherwise is a conflict, never a silent move of
    a held-out patient into training."""
    hospital["manifest"].write_text(hospital["manifest"].read_text().replace("MRN_10231,development",
                                                                             "MRN_10231,external"))
    assert merge(hospital) == 2
    assert ("row 2, patient 'MRN_10231', column 'set': the manifest holds 'external', the table gives development "
            "(table row 2)") in capsys.readouterr().out
    assert not hospital["out"].exists()


@pytest.mark.parametrize("rule, message", [
    ('{column: Site, external: ["Hospital C"]}', "Site is not a column of"),
    ("{column: Hospital, external: []}", "columns.set: external must list"),
    ("{column: Hospital}", "columns.set: external must list"),
    ("Hospital", "columns.set: external must list"),
    ("{yes_no: Hospital}", "columns.set: the set comes from {column: NAME, external: [VALUES]}"),
    ('{column: Hospital, codes: {A: development}, external: ["Hospital C"]}', "columns.set: unknown key 'codes'"),
    ("{column: Hospital, external: [yes]}", "YAML reads unquoted yes"),
    ('{column: Hospital, external: ["Hospital D"]}',
     "columns.set: external lists 'Hospital D', which no row of"),
])
def test_set_rule_mistakes_are_one_line_errors(hospital, capsys, rule, message):
    hospital["mapping"].write_text(MAPPING + f"  set: {rule}\n")
    assert merge(hospital) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not hospital["out"].exists()


def test_external_is_only_a_set_option(hospital, capsys):
    hospital["mapping"].write_text(MAPPING.replace("{column: T_score}", '{column: T_score, external: ["-2.9"]}'))
    assert merge(hospital) == 2
    assert "columns.bmd_tscore: unknown key 'external'" in capsys.readouterr().err

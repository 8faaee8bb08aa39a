"""Manifest mistakes a user makes in a spreadsheet: each is one clear problem with its row (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from vcpred.cli import main
from vcpred.cohort import check_manifest, load_manifest
from vcpred.errors import ManifestError


def _rows(n: int = 4) -> list[dict]:
    return [patient_row(i, label=i % 2) for i in range(n)]


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab")])
def test_semicolon_or_tab_separated_manifest_names_the_delimiter(tmp_path: Path, sep: str, name: str, capsys):
    path = write_manifest(tmp_path, _rows())
    path.write_text(path.read_text().replace(",", sep))
    with pytest.raises(ManifestError, match=f"separated by {name}s") as raised:
        check_manifest(path)
    message = str(raised.value)
    assert "comma" in message and "required column" not in message
    assert main(["cohort", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and f"{name}s" in err


def test_rows_with_extra_or_missing_cells_are_named(tmp_path: Path):
    path = write_manifest(tmp_path, _rows(5))
    lines = path.read_text().splitlines()
    lines[2] += ",oops"            # row 3: one cell too many (an unquoted comma in a value)
    lines[4] = lines[4].rsplit(",", 1)[0]  # row 5: one cell too few
    path.write_text("\n".join(lines) + "\n")
    result = check_manifest(path)
    assert result.cohort is None
    found = {(p.row, p.message) for p in result.problems}
    assert (3, f"14 cells but the header has {len(MANIFEST_HEADER)} columns; a comma inside a value? "
               "quote the value or remove the comma") in found
    assert (5, f"12 cells but the header has {len(MANIFEST_HEADER)} columns; a missing comma?") in found
    # the other rows are read with their own columns, not shifted
    assert {p.row for p in result.problems} == {3, 5}


def test_extra_cells_on_the_first_row_do_not_shift_the_columns(tmp_path: Path):
    path = write_manifest(tmp_path, _rows(3))
    lines = path.read_text().splitlines()
    lines[1] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    result = check_manifest(path)
    assert [p.row for p in result.problems] == [2]
    assert list(result.table["patient_id"]) == ["P000", "P001", "P002"]


def test_duplicate_column_names_are_an_error_naming_the_column(tmp_path: Path):
    header = MANIFEST_HEADER + ["age"]
    rows = [dict(r) for r in _rows()]
    path = write_manifest(tmp_path, rows, header=header)
    result = check_manifest(path)
    messages = [str(p) for p in result.problems]
    assert messages == ["column 'age': the header names this column twice (columns 12 and 14); rename or "
                        "remove one"]
    assert "age.1" not in " ".join(messages)


@pytest.mark.parametrize("value", ["inf", "1e400", "-Infinity"])
def test_infinite_number_in_a_numeric_clinical_column_is_a_problem(tmp_path: Path, value: str):
    rows = _rows()
    rows[2]["age"] = value
    result = check_manifest(write_manifest(tmp_path, rows))
    assert [(p.row, p.column) for p in result.problems] == [(4, "age")]
    assert "not a finite number" in result.problems[0].message
    assert result.cohort is None
    with pytest.raises(ManifestError, match="row 4, patient 'P002', column 'age'"):
        load_manifest(tmp_path / "manifest.csv")


def test_a_clean_manifest_still_reads_quoted_commas_and_a_bom(tmp_path: Path):
    rows = _rows()
    rows[1]["site"] = '"Site, north"'
    path = write_manifest(tmp_path, rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    cohort = load_manifest(path)
    assert cohort.records[1].site == "Site, north" and cohort.clinical_columns["age"] == "numeric"

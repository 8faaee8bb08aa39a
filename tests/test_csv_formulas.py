"""CSV formula injection (issue 27): a patient id, site or level that spreadsheet software would run as
a formula (OWASP: a cell beginning with = + - @ tab or carriage return) is refused where the manifest is
read, so it never reaches a CSV vcpred writes; negative numbers stay numbers."""

from __future__ import annotations

import csv

import pytest

from conftest import MANIFEST_HEADER, patient_row, write_manifest
from vcpred.cli import main
from vcpred.cohort import check_manifest

ATTACK = '=HYPERLINK("http://x","y")'
TRIGGERS = ["=1+2", "+1-2", "-1+cmd|' /C calc'!A0", "@SUM(1+1)"]


def _manifest(tmp_path, **overrides):
    rows = [patient_row(i, label=int(i % 3 == 0)) for i in range(8)]
    rows[2] = patient_row(2, **overrides)
    return write_manifest(tmp_path / "cohort", rows, header=[*MANIFEST_HEADER, "bmd_tscore"])


def _write_csv(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("column", ["patient_id", "site", "level"])
@pytest.mark.parametrize("text", TRIGGERS)
def test_a_formula_in_an_identifying_cell_is_a_problem_on_its_row(tmp_path, column, text):
    manifest = _write_csv(tmp_path / "manifest.csv", [*MANIFEST_HEADER, "bmd_tscore"],
                          [[patient_row(i, **({column: text} if i == 2 else {})).get(c, "-2.5")
                            for c in [*MANIFEST_HEADER, "bmd_tscore"]] for i in range(4)])
    for i in range(4):
        (tmp_path / f"images/P{i:03d}.nii.gz").parent.mkdir(exist_ok=True)
        (tmp_path / f"images/P{i:03d}.nii.gz").touch()

    result = check_manifest(manifest, check_files=False)

    [problem] = [p for p in result.problems if p.column == column]
    assert problem.row == 4 and "formula" in problem.message and result.cohort is None


def test_a_leading_tab_or_carriage_return_never_reaches_an_output(tmp_path):
    # the manifest's cells are read without surrounding white space, so the id is what follows it
    manifest = _write_csv(tmp_path / "manifest.csv", MANIFEST_HEADER,
                          [[patient_row(i, patient_id=f"{start}P{i}").get(c) for c in MANIFEST_HEADER]
                           for i, start in enumerate(["\t", "\r", "", ""])])
    cohort = check_manifest(manifest, check_files=False).cohort
    assert cohort.ids() == ["P0", "P1", "P2", "P3"]


def test_negative_numbers_and_ordinary_text_are_not_formulas(tmp_path):
    rows = [patient_row(i, label=int(i % 3 == 0), bmd_tscore=-2.5 - i / 10, site="A-1", level="T12")
            for i in range(8)]
    manifest = write_manifest(tmp_path / "cohort", rows, header=[*MANIFEST_HEADER, "bmd_tscore"])

    result = check_manifest(manifest, check_files=False)

    assert result.problems == [] and result.cohort.clinical_columns["bmd_tscore"] == "numeric"
    assert result.cohort.records[1].clinical["bmd_tscore"] == pytest.approx(-2.6)


def test_a_formula_in_a_column_name_is_a_problem(tmp_path):
    rows = [patient_row(i, label=int(i % 3 == 0), **{"=cmd": 1}) for i in range(4)]
    manifest = write_manifest(tmp_path / "cohort", rows, header=[*MANIFEST_HEADER, "=cmd"])

    problems = check_manifest(manifest, check_files=False).problems

    assert [p.column for p in problems] == ["=cmd"] and "formula" in problems[0].message


def test_cohort_check_names_the_row_of_a_hyperlink_id(tmp_path, capsys):
    rows = [patient_row(i, label=int(i % 3 == 0)) for i in range(8)]
    rows[3]["patient_id"] = ATTACK
    manifest = _write_csv(tmp_path / "manifest.csv", MANIFEST_HEADER,
                          [[row[c] for c in MANIFEST_HEADER] for row in rows])
    for row in rows:
        (tmp_path / row["image_t2"]).parent.mkdir(exist_ok=True)
        (tmp_path / row["image_t2"]).touch()

    assert main(["cohort", "check", str(manifest)]) != 0
    printed = capsys.readouterr()
    assert "row 5" in printed.out + printed.err and "formula" in printed.out + printed.err


def test_a_hyperlink_id_never_reaches_predict_or_validate_csvs(artefacts, tmp_path, capsys):
    from predict_support import T2_LUMBAR

    from vcpred.bundle import export_configuration

    runs = artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex"))
    model = export_configuration(runs, "clinical", tmp_path / "bundle")
    header = "patient_id,set,site,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label,age,sex"
    rows = [f"A{i},external,B,{T2_LUMBAR},19,103,140,127,171,{i % 2},{70 + i},{'FM'[i % 2]}" for i in range(6)]
    quoted = ATTACK.replace('"', '""')
    rows[2] = rows[2].replace("A2,", f'"{quoted}",', 1)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")

    for command in (["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(tmp_path / "p")],
                    ["validate", "--model", str(model), "--manifest", str(manifest), "--out", str(tmp_path / "v")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "formula" in err and "row 4" in err
    written = [p for p in tmp_path.rglob("*.csv") if p != manifest]
    assert not any("HYPERLINK" in p.read_text() for p in written)
    assert not (tmp_path / "p").exists() and not (tmp_path / "v").exists()

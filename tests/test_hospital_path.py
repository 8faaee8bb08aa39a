"""The whole path from a hospital's PACS export and clinical table to a validated model, with the CLI
alone and the docs' walkthrough (docs/hospital.md; issue 28, "Done when"): no code of the user's.

The export is built here as a PACS writes one: patient folders named by MRN (`MRN_10231`), nested
study/series folders, a zip, an enhanced multi-frame file, files without the DICOM preamble, stray
files, an axial localiser and a fat-saturated twin of the T2 beside it, and one patient whose series
misses a slice. The clinical table is the hospital's: semicolons, decimal commas, its own column
names, day-first dates, weight and height, Y/N flags with an explicit "unknown", sex codes, a height
loss in % that the label is derived from, and the MRN without the folder's prefix (once with leading
zeros). The ROIs are placed, the series chosen and the unreadable patient excluded through annotate's
HTTP API, posting what the page posts (the user's clicks).
"""

from __future__ import annotations

import csv
import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sklearn.metrics import roc_auc_score

from dicom_variants import STRAY_FILES, without_preamble, write_enhanced, zipped
from imaging_support import small_volume, write_dicom_series
from test_annotate import PAGE, annotating
from vcpred.cli import main
from vcpred.imaging import read_volume
from vcpred.synth import generate_cohort


FIRST_MRN = 10231
DEVELOPMENT = range(14)  # sites A (even) and B (odd): 3 cases and 4 controls each
EXTERNAL = range(14, 21)  # site C
CASES = {0, 3, 5, 8, 10, 13, 14, 16, 19}
UNREADABLE = 17  # an external patient whose series misses a slice
TWIN = 4  # a "SAG T2" and a fat-saturated "SAG T2 FS" in one study: two series match 't2 sag'
UNKNOWN_STEROID = 6  # "unknown" in the table: stays missing, never "no"
LEADING_ZEROS = 2  # the table writes 0010233: Excel kept the zeros of this export
REASON = "series misses a slice (unreadable)"


def mrn(i: int) -> int:
    return FIRST_MRN + i


def folder_name(i: int) -> str:
    return f"MRN_{mrn(i)}"


# --- the hospital's export -------------------------------------------------------------------------------


def with_patient(folder: Path, i: int) -> None:
    """Every DICOM file of folder names the patient as the hospital does: PatientID is the bare MRN."""
    for path in folder.rglob("*"):
        if path.is_file() and path.name not in STRAY_FILES:
            dataset = pydicom.dcmread(path)
            dataset.PatientID, dataset.PatientName = str(mrn(i)), f"DOE^PATIENT{i}"
            dataset.save_as(path)


def drop_middle_slice(folder: Path) -> None:
    """Delete the file of the series' middle slice (by position along the slice normal)."""
    files = sorted(folder.iterdir())
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    orientation = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    order = np.argsort([float(np.dot(normal, d.ImagePositionPatient)) for d in datasets])
    files[order[len(order) // 2]].unlink()


def write_patient(root: Path, scratch: Path, i: int, volume) -> None:
    """Patient i's sagittal T2 as one of the variants a PACS export holds (by i % 4), PatientID set."""
    study = {"study_date": f"2024{1 + i % 6:02d}{10 + i % 15:02d}", "series_number": 3}
    if i == UNREADABLE:
        series = write_dicom_series(root / folder_name(i) / "SE000003", volume, flips=(0,), seed=i, **study)
        with_patient(series, i)
        drop_middle_slice(series)
    elif i == TWIN:
        uid = pydicom.uid.generate_uid()
        write_dicom_series(root / folder_name(i) / "ST1" / "SE3", volume, flips=(0,), seed=i, description="SAG T2",
                           study_uid=uid, **study)
        fat_sat = read_volume(root / folder_name(i) / "ST1" / "SE3")
        fat_sat.array[:] = fat_sat.array * 0.5  # another contrast, same geometry
        write_dicom_series(root / folder_name(i) / "ST1" / "SE4", fat_sat, flips=(0,), seed=i + 100,
                           description="SAG T2 FS", study_uid=uid, study_date=study["study_date"], series_number=4)
        with_patient(root / folder_name(i), i)
    elif i % 4 == 0:  # classic single-frame files in nested study/series folders, stray files, an axial localiser
        series = write_dicom_series(root / folder_name(i) / "STUDY1" / "SERIES3", volume, flips=(0,), seed=i,
                                    description="SAG T2 TSE", **study)
        write_dicom_series(root / folder_name(i) / "STUDY1" / "SERIES1", volume, perm=(1, 0, 2), seed=i,
                           description="AX T2 LOC", study_date=study["study_date"], series_number=1)
        with_patient(root / folder_name(i), i)
        for name, data in STRAY_FILES.items():
            (series / name).write_bytes(data)
    elif i % 4 == 1:  # one enhanced MR multi-frame file
        path = write_enhanced(root / folder_name(i) / "DICOM" / "IM0001", volume, description="t2_tse_sag", seed=i)
        with_patient(path.parent, i)
    elif i % 4 == 2:  # files without the 128-byte preamble
        series = write_dicom_series(root / folder_name(i), volume, flips=(0,), seed=i, description="T2 SAG", **study)
        with_patient(series, i)
        without_preamble(series)
    else:  # a zip of the patient's folder
        series = write_dicom_series(scratch / folder_name(i), volume, flips=(0,), seed=i, description="Sag T2",
                                    **study)
        with_patient(series, i)
        zipped(series, root / f"{folder_name(i)}.zip")


@pytest.fixture(scope="module")
def hospital(tmp_path_factory) -> dict:
    """The PACS export (`pacs/`), the true ROI of each patient (canonical, from the synthetic images it was
    made of) and the folder the study is done in."""
    base = tmp_path_factory.mktemp("hospital")
    synthetic = base / "synthetic"
    generate_cohort(synthetic, n_development=len(DEVELOPMENT), n_external=len(EXTERNAL), sequences=("t2",),
                    size=48, seed=5)
    with open(synthetic / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    root, rois = base / "pacs", {}
    root.mkdir()
    for i, row in enumerate(rows):
        write_patient(root, base / "scratch", i, read_volume(synthetic / row["image_t2"]))
        rois[folder_name(i)] = [int(row[c]) for c in ("roi_slice", "roi_row_min", "roi_col_min", "roi_row_max",
                                                       "roi_col_max")]
    (root / "export_log.txt").write_text("PACS export 2024-07-01, 21 patients\n")
    study = base / "study"
    study.mkdir()
    return {"root": root, "rois": rois, "study": study}


# --- the hospital's clinical table -----------------------------------------------------------------------


def clinical_facts(i: int) -> dict:
    """Patient i's facts as the hospital records them (the table is written from these, and the expected
    manifest values are computed from them here, independently of vcpred)."""
    j = i * 8 % 21  # the external patients' values within the development patients' range
    mri = date(2024, 1 + i % 6, 10 + i % 15)
    birthday_late = i % 3 == 0  # the birthday falls after the MRI's day in the year: one year fewer
    birth = date(1938 + j, mri.month + 1 if birthday_late else mri.month, 5)
    return {"birth": birth, "mri": mri, "fracture": mri - timedelta(days=3 + 2 * j),
            "weight": 48.5 + 1.5 * j, "height": 148 + i,
            "steroid": None if i == UNKNOWN_STEROID else i % 5 == 0, "diabetes": i % 4 == 1,
            "sex": "M" if i % 3 == 1 else "F", "tscore": None if i == 9 else -3.4 + 0.1 * i,
            "site": "C" if i in EXTERNAL else "AB"[i % 2], "level": ["T12", "L1", "L2"][i % 3],
            "height_loss": 20.5 + i if i in CASES else float(i % 10)}


def decimal_comma(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def write_table(path: Path) -> None:
    """The export of the hospital's clinical system: semicolons, decimal commas, day-first dates."""
    flag = {True: "Y", False: "N", None: "unknown"}
    lines = ["MRN;DOB;MRI_date;Fracture_date;Weight_kg;Height_cm;Glucocorticoids;DM;Sex;T_score;Hospital;Level;"
             "Height_loss_pct"]
    for i in [*DEVELOPMENT, *EXTERNAL]:
        f = clinical_facts(i)
        key = f"{mrn(i):07d}" if i == LEADING_ZEROS else str(mrn(i))
        lines.append(";".join([
            key, f["birth"].strftime("%d.%m.%Y"), f["mri"].strftime("%d.%m.%Y"), f["fracture"].strftime("%d.%m.%Y"),
            decimal_comma(f["weight"]), str(f["height"]), flag[f["steroid"]], flag[f["diabetes"]].lower(),
            "1" if f["sex"] == "M" else "2", "" if f["tscore"] is None else decimal_comma(round(f["tscore"], 1)),
            f["site"], f["level"], decimal_comma(f["height_loss"])]))
    lines.append("99999;01.01.1950;01.01.2024;01.12.2023;70;170;N;N;1;-2,0;A;L1;3")  # not in this export
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


# The mapping exactly as docs/hospital.md shows it (step 3; every rule: docs/manifest.md).
MAPPING = """\
key: {table: MRN, manifest: patient_id, normalise: digits}
date_format: "%d.%m.%Y"
decimal: ","
columns:
  age: {years_between: [DOB, MRI_date]}
  days_to_mri: {days_between: [Fracture_date, MRI_date]}
  bmi: {from_weight_height: [Weight_kg, Height_cm], weight_unit: kg, height_unit: cm}
  steroid: {yes_no: Glucocorticoids}
  diabetes: {yes_no: DM}
  sex: {column: Sex, codes: {1: M, 2: F}}
  bmd_tscore: {column: T_score}
  site: {column: Hospital}
  level: {column: Level}
  label: {column: Height_loss_pct, at_least: 15}
  set: {column: Hospital, external: [C]}
"""

# The experiment as docs/models.md shows it, made tiny: two splits, one epoch, the 64 px test backbone.
EXPERIMENT = """\
manifest: manifest.clinical.csv
store: store
splits: {file: splits.json, n_splits: 2, val_fraction: 0.3, seed: 0}
model: {backbone: resnet_test, weights: random}
training: {epochs: 1, batch_size: 8}
configurations:
  - name: cnn-cf
    model: {method: full, clinical_columns: [age, bmi, steroid, days_to_mri]}
  - name: clinical-only
    model: {image: false, clinical_columns: [age, bmi, steroid, days_to_mri]}
"""


def expected_age(f: dict) -> int:
    before_birthday = (f["mri"].month, f["mri"].day) < (f["birth"].month, f["birth"].day)
    return f["mri"].year - f["birth"].year - before_birthday


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


# --- the path --------------------------------------------------------------------------------------------


def run(capsys, *args: str) -> str:
    """One command as the user types it; exit 0, its console output returned."""
    code = main([str(a) for a in args])
    printed = capsys.readouterr()
    assert code == 0, f"vcpred {' '.join(map(str, args))} exited {code}:\n{printed.out}\n{printed.err}"
    return printed.out + printed.err


def annotate_every_patient(manifest: Path, rois: dict, workdir: Path) -> dict:
    """What the user does on the page: each patient opened; where several series match, the T2 chosen from
    the list; the box drawn and saved; the patient whose series cannot be read excluded with the reason.
    Returns the messages the page showed per patient id."""
    shown = {}
    with annotating(manifest, workdir) as client:
        for patient in client.get("/api/annotate").json()["patients"]:
            index, pid = patient["index"], patient["patient_id"]
            opened = client.post(f"/api/annotate/patients/{index}/open", headers=PAGE)
            if opened.status_code == 422 and "series" in opened.json()["error"] and pid == folder_name(TWIN):
                shown[pid] = opened.json()["error"]
                listed = client.get(f"/api/annotate/patients/{index}/series").json()["series"]
                plain = next(s for s in listed if s["description"] == "SAG T2")
                chosen = client.post(f"/api/annotate/patients/{index}/series", headers=PAGE,
                                     json={"series": plain["reference"], "version": patient["version"]})
                assert chosen.status_code == 200, chosen.text
                patient = chosen.json()["patient"]
                opened = client.post(f"/api/annotate/patients/{index}/open", headers=PAGE)
            if opened.status_code == 422:
                shown[pid] = opened.json()["error"]
                answer = client.post(f"/api/annotate/patients/{index}/exclude", headers=PAGE,
                                     json={"reason": REASON, "version": patient["version"]})
                assert answer.status_code == 200, answer.text
                continue
            assert opened.status_code == 201, opened.text
            assert opened.json()["patient"]["identity_warning"] == ""  # PatientID 10231 is MRN_10231
            roi = rois[pid]
            saved = client.post(f"/api/annotate/patients/{index}/roi", headers=PAGE,
                                json={"slice": roi[0], "box": roi[1:], "version": patient["version"]})
            assert saved.status_code == 200, saved.text
            closed = client.delete(f"/api/studies/{opened.json()['study_id']}", headers=PAGE)  # the page moves on
            assert closed.status_code < 300, closed.text
        final = client.get("/api/annotate").json()
    assert (final["annotated"], final["total"], final["excluded"]) == (20, 20, 1)
    return shown


@pytest.mark.slow  # about 80 s on 2 busy cores; the fixture's export about 15 s of it
@pytest.mark.usefixtures("weights_home")
def test_a_hospital_export_and_table_go_through_to_validation_with_the_cli_alone(hospital, capsys, tmp_path):
    root, study, rois = hospital["root"], hospital["study"], hospital["rois"]
    manifest = study / "manifest.csv"

    # 1. cohort init: one row per MRN folder or zip, the sagittal T2 chosen by words in any order.
    printed = run(capsys, "cohort", "init", root, "--out", manifest, "--series", "t2 sag")
    rows = rows_of(manifest)
    assert [r["patient_id"] for r in rows] == [folder_name(i) for i in range(21)]  # export_log.txt passed over
    assert f"{folder_name(TWIN)}: 2 series match --series 't2 sag'" in printed
    assert rows[TWIN]["series_t2"] == "" and rows[0]["series_t2"] != ""  # the localiser was not a candidate
    assert all(r["set"] == "development" and r["exclude"] == "" for r in rows)
    assert f"`vcpred cohort merge-clinical {manifest} " in printed and "`vcpred annotate`" in printed

    # 2-3. merge-clinical: every manifest patient matched, values computed from dates, weights, flags, codes;
    # the external set from the table's Hospital column (no spreadsheet edit).
    table, mapping = study / "clinical_export.csv", study / "mapping.yaml"
    write_table(table)
    mapping.write_text(MAPPING)
    printed = run(capsys, "cohort", "merge-clinical", manifest, table, "--mapping", mapping)
    assert "manifest row(s) without a table row" not in printed
    assert "1 table row(s) matching no manifest row: table row 23 (MRN '99999', key 99999)" in printed
    assert "clinical values for 21 of 21 manifest row(s)" in printed
    assert ("set: external when Hospital is 'C', else development: 21 values (development: 14, external: 7)"
            in printed)
    merged = study / "manifest.clinical.csv"
    assert f"next: place the 21 missing ROI box(es) with `vcpred annotate {merged}`" in printed
    by_id = {r["patient_id"]: r for r in rows_of(merged)}
    for i in range(21):
        f, row = clinical_facts(i), by_id[folder_name(i)]
        assert int(row["age"]) == expected_age(f)
        assert int(row["days_to_mri"]) == (f["mri"] - f["fracture"]).days
        assert float(row["bmi"]) == pytest.approx(f["weight"] / (f["height"] / 100) ** 2, abs=0.05)
        assert row["steroid"] == ("" if f["steroid"] is None else str(int(f["steroid"])))
        assert row["diabetes"] == str(int(f["diabetes"])) and row["sex"] == f["sex"]
        assert row["label"] == str(int(i in CASES)) and row["site"] == f["site"] and row["level"] == f["level"]
        assert row["bmd_tscore"] == ("" if f["tscore"] is None else f"{round(f['tscore'], 1):g}")
        assert row["set"] == ("external" if i in EXTERNAL else "development")
    assert by_id[folder_name(UNKNOWN_STEROID)]["steroid"] == ""  # "unknown" stays missing, never "no"
    assert manifest.read_text() != merged.read_text()  # the user's manifest is not replaced

    # 4. annotate: ROIs placed, the twin's series chosen, the unreadable patient excluded with the reason.
    shown = annotate_every_patient(merged, rois, tmp_path)
    assert "1 slice(s) probably missing" in shown[folder_name(UNREADABLE)]
    merged_rows = {r["patient_id"]: r for r in rows_of(merged)}
    assert merged_rows[folder_name(UNREADABLE)]["exclude"] == REASON
    assert merged_rows[folder_name(TWIN)]["series_t2"] != ""

    # 5. cohort check: clean, the excluded patient listed with its reason.
    printed = run(capsys, "cohort", "check", merged)
    assert re.search(rf"{folder_name(UNREADABLE)} \(row {UNREADABLE + 2}, external\): {re.escape(REASON)}", printed)

    # 6. prepare: every included patient, the excluded one named and not read.
    store = study / "store"
    printed = run(capsys, "prepare", merged, "--out", store, "--size", "64", "--no-n4")
    assert f"1 patient(s) excluded in the manifest, not prepared: {folder_name(UNREADABLE)} ({REASON})" in printed
    prepared = {p.stem for p in store.rglob("*.npz")}
    assert folder_name(UNREADABLE) not in prepared and len(prepared) == 20

    # 7. experiment, evaluate, export: a configuration file as the docs show it.
    config = study / "experiment.yaml"
    config.write_text(EXPERIMENT)
    run(capsys, "experiment", config, "--out", study / "runs")
    run(capsys, "evaluate", study / "runs", "--out", study / "eval", "--manifest", merged)
    run(capsys, "export", study / "runs", "--configuration", "cnn-cf", "--out", study / "model",
        "--eval", study / "eval")

    # 8. validate on the external patients: the excluded one listed and left out, the others scored.
    out = study / "validation"
    printed = run(capsys, "validate", "--model", study / "model", "--manifest", merged, "--out", out,
                  "--set", "external")
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = rows_of(out / "predictions.csv")
    scored = [folder_name(i) for i in EXTERNAL if i != UNREADABLE]
    assert [p["patient_id"] for p in predictions] == scored and metrics["n"] == len(scored)
    labels = [int(p["label"]) for p in predictions]
    assert labels == [int(i in CASES) for i in EXTERNAL if i != UNREADABLE]
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, [float(p["probability"]) for p in predictions]))
    excluded = rows_of(out / "excluded.csv")
    assert [(e["patient_id"], e["reason"]) for e in excluded] == [
        (folder_name(UNREADABLE), f"excluded in the manifest: {REASON}")]


def test_the_mapping_is_the_one_docs_hospital_shows():
    """The walkthrough's mapping (the set rule included) is what this test runs."""
    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "hospital.md").read_text()
    step = text.split("## 3. ")[1].split("\n## ")[0]
    shown = next(block for block in step.split("```")[1::2] if block.startswith("yaml"))
    assert yaml.safe_load(shown.split("\n", 1)[1]) == yaml.safe_load(MAPPING)


def test_cohort_init_names_the_commands_that_fill_the_manifest_next(tmp_path, capsys):
    """Its last line named "fill label, the clinical columns and the ROI (docs/manifest.md)", not the
    commands that do it: merge-clinical, annotate, then check (docs/hospital.md)."""
    write_dicom_series(tmp_path / "pacs" / "MRN_10231", small_volume(), flips=(0,), description="T2 SAG")
    out = tmp_path / "study" / "manifest.csv"
    assert main(["cohort", "init", str(tmp_path / "pacs"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (f"next: the label and clinical columns from the hospital's table with `vcpred cohort merge-clinical {out} "
            "TABLE.csv --mapping MAPPING.yaml`, the ROIs with `vcpred annotate` on the manifest it writes, then "
            f"`vcpred cohort check` (docs/hospital.md)") in printed


def test_merge_clinical_names_annotate_for_the_rois_still_to_place(tmp_path, capsys):
    """merge-clinical prints `cohort check` of the manifest it wrote; with ROIs still to place it named only
    "fill the roi_ columns", where `cohort check` itself names `vcpred annotate` on that manifest."""
    write_dicom_series(tmp_path / "pacs" / "MRN_10231", small_volume(), flips=(0,), description="T2 SAG")
    manifest = tmp_path / "study" / "manifest.csv"
    assert main(["cohort", "init", str(tmp_path / "pacs"), "--out", str(manifest)]) == 0
    table, mapping = tmp_path / "study" / "clinical.csv", tmp_path / "study" / "mapping.yaml"
    table.write_text("MRN,Collapse\n10231,Y\n")
    mapping.write_text("key: {table: MRN, normalise: digits}\ncolumns:\n  label: {yes_no: Collapse}\n")
    capsys.readouterr()
    assert main(["cohort", "merge-clinical", str(manifest), str(table), "--mapping", str(mapping)]) == 0
    merged = tmp_path / "study" / "manifest.clinical.csv"
    assert (f"next: place the 1 missing ROI box(es) with `vcpred annotate {merged}` (docs/annotate.md), then run "
            f"`vcpred cohort check {merged}` again") in capsys.readouterr().out

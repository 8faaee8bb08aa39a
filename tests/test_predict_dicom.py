"""`vcpred predict` on hospital DICOM (issue 18): --series, and the Secondary Capture heat map
joined to the source's patient and study."""

from __future__ import annotations

import json

import pydicom
import pytest

from test_cohort_images import two_series_study
from vcpred.cli import main

VIT = dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))


def predict_args(model, image, out, *extra) -> list[str]:
    return ["predict", "--model", str(model), "--image-t2", str(image), "--roi-slice", "4", "--roi-box",
            "12,14,28,34", "--clinical", "age=70,sex=F", "--out", str(out), *extra]


@pytest.mark.parametrize("series, found", [(None, "mixes 2 series"), ("t2=STIR SAG", None)])
def test_predict_series_option(artefacts, tmp_path, capsys, series, found):
    study = two_series_study(tmp_path / "study")
    args = predict_args(artefacts.exported("vitlora", **VIT), study, tmp_path / "out")
    code = main(args + (["--series", series] if series else []))
    if found:
        err = capsys.readouterr().err
        assert code == 2 and found in err and "--series" in err
    else:
        assert code == 0
        result = json.loads((tmp_path / "out" / "prediction.json").read_text())
        assert result["provenance"]["sequences"]["t2"]["series_description"] == "STIR SAG"


IDENTITY = {"PatientID": "MRN-0042", "PatientName": "Doe^Jane", "PatientBirthDate": "19480301", "PatientSex": "F",
            "StudyDate": "20240115", "StudyTime": "093012", "AccessionNumber": "ACC77", "StudyID": "S12",
            "ReferringPhysicianName": "House^Gregory"}


def identified_series(folder):
    """A classic series whose files carry one patient's and study's identity, as a PACS exports it."""
    from imaging_support import small_volume, write_dicom_series

    write_dicom_series(folder, small_volume(), flips=(0,))
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        for keyword, value in IDENTITY.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    return folder


@pytest.mark.parametrize("zipped_input", [False, True])
def test_secondary_capture_joins_the_source_patient_and_study_as_a_new_series(artefacts, tmp_path, capsys, zipped_input):
    from dicom_variants import zipped

    series = identified_series(tmp_path / "series")
    source = pydicom.dcmread(next(series.iterdir()), stop_before_pixels=True)
    image = zipped(series, tmp_path / "t2.zip") if zipped_input else series
    out = tmp_path / "out"
    assert main(predict_args(artefacts.exported("vitlora", **VIT), image, out, "--dicom-sc", "--patient-id", "case 7")) == 0
    sc = pydicom.dcmread(out / "heatmap_sc.dcm")
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        assert sc[keyword].value == source[keyword].value, keyword
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID and sc.SeriesNumber == 999
    assert "research heat map" in sc.SeriesDescription and "not a medical device" in sc.ImageComments
    assert "not DICOM" not in capsys.readouterr().err


def test_secondary_capture_from_nifti_says_it_has_no_patient(artefacts, tmp_path, capsys):
    from imaging_support import save_nifti, small_volume

    image = save_nifti(small_volume(), tmp_path / "t2.nii.gz")
    out = tmp_path / "out"
    assert main(predict_args(artefacts.exported("vitlora", **VIT), image, out, "--dicom-sc", "--patient-id", "case 7")) == 0
    sc = pydicom.dcmread(out / "heatmap_sc.dcm")
    assert sc.PatientID == "case 7" and sc.PatientName == "case 7" and sc.PatientBirthDate == ""
    assert "the input was not DICOM" in sc.ImageComments
    assert "heatmap_sc.dcm: the input was not DICOM" in capsys.readouterr().err


def test_predict_manifest_reads_each_patients_series_column(artefacts, tmp_path, capsys):
    import pandas as pd

    from conftest import MANIFEST_HEADER, patient_row, write_manifest

    for i in range(2):
        two_series_study(tmp_path / f"P{i:03d}", seed=i)
    roi = {"roi_slice": 4, "roi_row_min": 12, "roi_col_min": 14, "roi_row_max": 28, "roi_col_max": 34}
    rows = [patient_row(0, image_t2="P000", series_t2="STIR SAG", **roi),
            patient_row(1, image_t2="P001", series_t2="", **roi)]
    manifest = write_manifest(tmp_path, rows, MANIFEST_HEADER + ["series_t2"], make_images=False)
    model = artefacts.exported("vitlora", **VIT)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(out)]) == 0
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert table.loc[0, "error"] == "" and "mixes 2 series" in table.loc[1, "error"]
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--manifest", str(manifest), "--series", "t2=T2 SAG",
                 "--out", str(tmp_path / "out2")]) == 2
    assert "with --manifest give each patient's in its series_<sequence> column" in capsys.readouterr().err

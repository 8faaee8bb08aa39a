"""`vcpred predict`, the CLI and saved models under bad input and a hostile disk: one line `error: ...`,
exit 2, and in `predict --manifest` a bad patient is reported and the others predicted (issue 14)."""

from __future__ import annotations

import errno
import json
import shutil

import pandas as pd
import pydicom
import pytest

from conftest import siblings, snapshot
from imaging_support import small_volume, write_dicom_series
from predict_support import BOX_TEXT, BODY, T2_LUMBAR
from vcpred import console
from vcpred.cli import main
from vcpred.errors import WeightsError
from vcpred.models import load_model

CNN = dict(backbone="resnet_test", method="lora")


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def one_patient(model, out, *extra, box: str = BOX_TEXT) -> list[str]:
    return ["predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice", str(BODY.slice),
            "--roi-box", box, "--out", str(out), *extra]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def test_duplicate_clinical_keys_are_an_error(artefacts, tmp_path, capsys):
    model = artefacts.exported("resnetlora", **CNN)
    assert main(one_patient(model, tmp_path / "out", "--clinical", "age=74,sex=F,age=75")) == 2
    line = _one_error_line(capsys)
    assert "age" in line and "twice" in line and "74" in line and "75" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("box, words", [("100,140,101,141", "smaller than 4 x 4 pixels"),
                                        ("0,0,1000000000000,1000000000000", "larger than the")])
def test_a_one_pixel_or_huge_roi_is_refused_not_predicted(artefacts, tmp_path, capsys, box, words):
    model = artefacts.exported("resnetlora", **CNN)
    assert main(one_patient(model, tmp_path / "out", box=box)) == 2
    assert words in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_predict_manifest_skips_crashing_patients_and_predicts_the_others(artefacts, tmp_path, capsys, monkeypatch):
    """A DICOM with PixelSpacing 0 (a SimpleITK RuntimeError before) and a patient whose prediction
    raises an unexpected exception are listed with their reasons; the good patient is predicted."""
    folder = write_dicom_series(tmp_path / "zero_spacing", small_volume())
    console.configure()
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = [0, 0]
        ds.save_as(path)
    header = "patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label"
    box = f"{BODY.row_min},{BODY.col_min},{BODY.row_max},{BODY.col_max}"
    rows = [f"A,external,{T2_LUMBAR},{BODY.slice},{box},1", f"B,external,{folder},4,10,12,30,36,0",
            f"C,external,{T2_LUMBAR},{BODY.slice},{box},0", f"D,external,{T2_LUMBAR},{BODY.slice},100,140,101,141,0"]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")

    from vcpred.predict import outputs

    real = outputs.predict_patient

    def flaky(bundle, record, **kwargs):
        if record.patient_id == "C":
            raise RuntimeError("something vcpred did not foresee")
        return real(bundle, record, **kwargs)

    monkeypatch.setattr(outputs, "predict_patient", flaky)
    model = artefacts.exported("resnetlora", **CNN)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False).set_index("patient_id")
    assert table.loc["A", "error"] == "" and 0 <= float(table.loc["A", "probability"]) <= 1
    assert "PixelSpacing [0.0, 0.0] is not two positive numbers" in table.loc["B", "error"]
    assert table.loc["C", "error"].startswith("internal error (a bug in vcpred): RuntimeError: something")
    assert "smaller than 4 x 4 pixels" in table.loc["D", "error"]
    assert "patient 'B' not predicted" in err and "patient 'C' not predicted" in err and "Traceback" not in err
    assert json.loads((out / "summary.json").read_text())["failed"] == 3


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on the device"),
                                         (errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied"),
                                         (errno.EDQUOT, "disk quota exceeded")])
def test_a_full_or_read_only_disk_is_a_clear_error(tmp_path, capsys, monkeypatch, code, words, clean_manifest):
    """OSError Errno 28/30/13/122 was shown as 'internal error (a bug in vcpred)'."""
    from vcpred.cohort import command

    target = tmp_path / "splits.json"

    def refuse(path, *args, **kwargs):
        raise OSError(code, "as the OS says it", str(path))

    monkeypatch.setattr(command, "save_splits", refuse)
    assert main(["cohort", "split", str(clean_manifest), "--out", str(target), "--val-fraction", "0.3"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {target}: {words} ({errno.errorcode[code]})"), line


def test_an_os_error_without_a_file_name_names_the_output_folder(tmp_path, capsys, monkeypatch, clean_manifest):
    from vcpred.cohort import command

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(command, "save_splits", refuse)
    assert main(["cohort", "split", str(clean_manifest), "--out", str(tmp_path / "s.json"), "--val-fraction", "0.3"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: no space left on the device (ENOSPC) while writing ") and "s.json" in line


def test_a_full_disk_while_writing_a_prediction_keeps_the_earlier_one(artefacts, tmp_path, capsys, monkeypatch):
    model = artefacts.exported("resnetlora", **CNN)
    out = tmp_path / "out"
    assert main(one_patient(model, out)) == 0
    before = snapshot(out)
    capsys.readouterr()

    from vcpred.predict import outputs

    def full(folder, prediction, **kwargs):
        (folder / "prediction.json").write_text("{\"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "heatmap.png"))

    monkeypatch.setattr(outputs, "write_patient", full)
    assert main(one_patient(model, out)) == 2
    line = _one_error_line(capsys)
    assert "no space left on the device (ENOSPC)" in line and "heatmap.png" in line
    assert snapshot(out) == before and siblings(out) == ["out"]


def test_a_truncated_run_model_is_named(artefacts, tmp_path, capsys):
    """SafetensorError from a run's truncated model.safetensors became an internal error."""
    runs = tmp_path / "runs"
    shutil.copytree(artefacts.trained_runs("resnetlora", **CNN), runs)
    weights = runs / "resnetlora" / "split-00" / "model" / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(WeightsError, match=r"model\.safetensors is damaged"):
        load_model(weights.parent)
    assert main(["export", str(runs), "--configuration", "resnetlora", "--out", str(tmp_path / "bundle")]) == 2
    line = _one_error_line(capsys)
    assert "split-00" in line and "model" in line
    weights.write_bytes(intact)
    (weights.parent / "model.json").write_text("{}")
    with pytest.raises(WeightsError, match=r"model\.json is not a saved vcpred model description"):
        load_model(weights.parent)

"""`vcpred predict`: one patient on the real lumbar T2, a manifest, clinical values and errors."""

from __future__ import annotations

import json
from html import escape

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from conftest import siblings, snapshot
from predict_support import BODY, BOX_TEXT, T2_LUMBAR
from vcpred.cli import main
from vcpred.cohort.provenance import SYNTHETIC_WARNING, warning_sentence
from vcpred.bundle import export_configuration
from vcpred.predict import load_bundle, make_record, predict_patient

VIT = dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))
CNN = dict(backbone="resnet_test", method="lora")


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def one_patient(model, out, *extra) -> list[str]:
    return ["predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice", str(BODY.slice),
            "--roi-box", BOX_TEXT, "--out", str(out), *extra]


def test_predict_on_the_real_lumbar_t2_writes_every_output(artefacts, tmp_path, capsys):
    model = artefacts.exported("vitlora", **VIT)
    assert main(one_patient(model, tmp_path / "out", "--clinical", "age=74,sex=F", "--dicom-sc")) == 0
    out = tmp_path / "out"
    result = json.loads((out / "prediction.json").read_text())
    assert result["notice"] == "research use only, not a medical device"
    assert 0 <= result["interval"]["low"] <= result["probability"] <= result["interval"]["high"] <= 1
    assert len(result["per_model"]) == 2 and [f["offset"] for f in result["per_frame"]] == [-2, -1, 0, 1, 2]
    assert all(0 <= p <= 1 for m in result["per_model"] for p in m["frames"])
    assert result["probability"] == pytest.approx(np.mean([m["probability"] for m in result["per_model"]]))
    assert result["category"] == ("high risk of collapse" if result["probability"] >= result["threshold"]
                                  else "low risk of collapse")
    assert result["provenance"]["sequences"]["t2"]["source"] == str(T2_LUMBAR)
    assert result["clinical"] == {"age": 74.0, "sex": "F"} and result["imputed"] == {}
    assert result["model_id"].startswith("vitlora+AP@") and result["heatmap"]["file"] == "heatmap.png"
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Research use only, not a medical device" in html
    assert "research use only" in capsys.readouterr().out.lower()
    sc = pydicom.dcmread(out / "heatmap_sc.dcm")
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and sc.pixel_array.shape == (sc.Rows, sc.Columns, 3)
    assert "not a medical device" in sc.ImageComments and sc.BurnedInAnnotation == "YES"
    # a model trained on real (not synth-marked) data carries no synthetic-data warning anywhere
    assert result["training_data"]["synthetic"] is False and "warning" not in result
    assert 'id="synthetic-warning"' not in html and "synthetic" not in sc.ImageComments


def test_the_heat_map_lies_in_the_crop_around_the_roi(artefacts):
    bundle = load_bundle(artefacts.exported("vitlora", **VIT))
    record = make_record({"t2": T2_LUMBAR}, BODY.slice, BODY.box, {"age": "80", "sex": "M"})
    prediction = predict_patient(bundle, record)
    r0, c0, r1, c1 = prediction.result["crop_box"]
    inside = np.isfinite(prediction.heat)
    rows, cols = np.nonzero(inside)
    assert prediction.heat.shape == prediction.prepared.main_slice.shape
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (max(r0, 0), r1, max(c0, 0), c1)
    assert r0 <= BODY.row_min and BODY.row_max <= r1 and c0 <= BODY.col_min and BODY.col_max <= c1


def test_cnn_bundles_use_grad_cam_and_bf16_stays_close(artefacts, tmp_path):
    model = artefacts.exported("resnetlora", **CNN)
    record = make_record({"t2": T2_LUMBAR}, BODY.slice, BODY.box, {})
    fp32 = predict_patient(load_bundle(model, precision="fp32"), record)
    bf16 = predict_patient(load_bundle(model, precision="bf16"), record)
    assert fp32.result["heatmap"]["method"].startswith("Grad-CAM")
    assert bf16.result["heatmap"]["method"].startswith("Grad-CAM") and np.isfinite(bf16.heat).any()
    assert (fp32.result["precision"], bf16.result["precision"]) == ("fp32", "bf16")
    assert abs(fp32.result["probability"] - bf16.result["probability"]) < 0.05


def test_clinical_values_missing_unknown_or_imputed(artefacts, tmp_path, capsys):
    model = artefacts.exported("vitlora", **VIT)
    assert main(one_patient(model, tmp_path / "a", "--clinical", "age=74")) == 2
    err = capsys.readouterr().err
    assert "sex needed by this model but not given" in err and "--allow-missing" in err and "Traceback" not in err
    assert main(one_patient(model, tmp_path / "b", "--clinical", "age=74,sex=F,bmi=22")) == 2
    assert "unknown clinical value(s) bmi" in capsys.readouterr().err
    assert main(one_patient(model, tmp_path / "c", "--clinical", "age=old,sex=F")) == 2
    assert "age='old' must be a number" in capsys.readouterr().err
    assert main(one_patient(model, tmp_path / "d", "--clinical", "sex=F", "--allow-missing")) == 0
    assert "age missing: imputed with the training median" in capsys.readouterr().err
    result = json.loads((tmp_path / "d" / "prediction.json").read_text())
    assert list(result["imputed"]) == ["age"] and any("imputed" in w for w in result["warnings"])


def test_image_errors_exit_2_without_traceback(artefacts, tmp_path, capsys):
    model = artefacts.exported("resnetlora", **CNN)
    outside = ["predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice", "19",
               "--roi-box", "400,400,420,430", "--out", str(tmp_path / "a")]
    assert main(outside) == 2
    err = capsys.readouterr().err
    assert "outside" in err and "Traceback" not in err
    axial = tmp_path / "axial.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64, 12), dtype=np.float32),
                             np.diag([0.8, 0.8, 4.0, 1.0])), str(axial))
    assert main(["predict", "--model", str(model), "--image-t2", str(axial), "--roi-slice", "5",
                 "--roi-box", "10,10,30,30", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "axial series" in err and "not a sagittal one" in err
    assert main(["predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice", "19",
                 "--roi-box", "10,10,5,30", "--out", str(tmp_path / "c")]) == 2
    assert "r0 < r1" in capsys.readouterr().err


def test_out_is_never_clobbered_unless_it_is_an_earlier_prediction(artefacts, tmp_path, capsys):
    model = artefacts.exported("resnetlora", **CNN)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(one_patient(model, tmp_path / "mine")) == 2
    assert "not an earlier `vcpred predict` output" in capsys.readouterr().err
    assert main(one_patient(model, tmp_path / "out")) == 0
    assert main(one_patient(model, tmp_path / "out")) == 0  # an earlier output is replaced


def test_a_failing_rerun_leaves_the_earlier_prediction_as_it_was(artefacts, tmp_path, capsys):
    """Issue 14: predict deleted the earlier prediction before computing the new one."""
    model = artefacts.exported("resnetlora", **CNN)
    out = tmp_path / "out"
    assert main(one_patient(model, out)) == 0
    before = snapshot(out)
    assert {"prediction.json", "heatmap.png", "report.html"} <= set(before)
    outside = ["predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice", "19",
               "--roi-box", "400,400,420,430", "--out", str(out)]
    capsys.readouterr()
    assert main(outside) == 2
    assert "outside" in capsys.readouterr().err
    assert snapshot(out) == before and siblings(out) == ["out"]


def test_force_never_touches_a_folder_predict_did_not_write(artefacts, tmp_path, capsys):
    """Issue 14: `predict --force` into a user's folder deleted every file whose name vcpred could
    write, even when the prediction then failed."""
    model = artefacts.exported("resnetlora", **CNN)
    mine = tmp_path / "mine"
    (mine / "heatmaps").mkdir(parents=True)
    for name in ("report.html", "summary.json", "predictions.csv", "prediction.json", "heatmaps/a.png", "notes.txt"):
        (mine / name).write_text(f"the user's {name}")
    before = snapshot(mine)
    outside = ["--roi-box", "400,400,420,430"]  # a failing prediction, after the given box is replaced
    for argv in (one_patient(model, mine, "--force"), one_patient(model, mine, "--force", *outside),
                 one_patient(model, mine)):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "choose a new or empty folder" in err
        assert snapshot(mine) == before
    assert siblings(mine) == ["mine"]


def test_manifest_prediction_writes_a_table_and_heat_maps(artefacts, tmp_path):
    header = "patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label,age,sex"
    rows = [f"A,external,{T2_LUMBAR},19,103,140,127,171,1,74,F",
            f"B,external,{T2_LUMBAR},19,400,400,420,430,0,70,M",  # ROI outside the image
            f"C,external,{T2_LUMBAR},20,70,140,95,171,,,F"]  # age missing: imputed with --allow-missing
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    model = artefacts.exported("vitlora", **VIT)
    assert main(["--quiet", "predict", "--model", str(model), "--manifest", str(manifest), "--allow-missing",
                 "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False)
    assert list(table["patient_id"]) == ["A", "B", "C"]
    assert table.loc[1, "error"] and not table.loc[0, "error"] and not table.loc[2, "error"]
    assert table.loc[2, "imputed"] == "age"
    ok = table[table["error"] == ""]
    assert ok["probability"].astype(float).between(0, 1).all()
    assert all((tmp_path / "out" / p).is_file() for p in ok["heatmap"])


def test_a_manifest_where_every_patient_fails_replaces_nothing(artefacts, tmp_path, capsys):
    header = "patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"{header}\nB,external,{T2_LUMBAR},19,400,400,420,430,0\n")  # ROI outside the image
    model = artefacts.exported("resnetlora", **CNN)
    out = tmp_path / "out"
    assert main(one_patient(model, out)) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "patient 'B' not predicted" in err and "error: none of the 1 patient(s)" in err and "left as it was" in err
    assert snapshot(out) == before and siblings(out) == ["manifest.csv", "out"]


def test_clinical_only_models_predict_without_an_image(artefacts, tmp_path):
    runs = artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex"))
    model = export_configuration(runs, "clinical", tmp_path / "bundle")
    assert main(["predict", "--model", str(model), "--clinical", "age=81,sex=M", "--out", str(tmp_path / "o")]) == 0
    result = json.loads((tmp_path / "o" / "prediction.json").read_text())
    assert 0 <= result["probability"] <= 1 and result["per_frame"] == [] and "heatmap" not in result
    assert (tmp_path / "o" / "report.html").is_file() and not (tmp_path / "o" / "heatmap.png").exists()


def test_a_model_trained_on_synthetic_data_says_so_in_every_output(artefacts, tmp_path, capsys):
    model = artefacts.exported("vitlora", synthetic=True, **VIT)
    assert main(one_patient(model, tmp_path / "out", "--clinical", "age=74,sex=F", "--dicom-sc")) == 0
    assert SYNTHETIC_WARNING in capsys.readouterr().err  # said once on the console
    result = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert result["warning"] == SYNTHETIC_WARNING and result["training_data"]["synthetic"] is True
    html = (tmp_path / "out" / "report.html").read_text()
    banner = f'<p class="notice synthetic" id="synthetic-warning">{escape(warning_sentence())}</p>'
    assert banner in html and html.index(banner) < html.index("<h1>")  # above the result
    assert SYNTHETIC_WARNING in pydicom.dcmread(tmp_path / "out" / "heatmap_sc.dcm").ImageComments


def test_manifest_summaries_carry_the_training_data(artefacts, tmp_path):
    manifest, _, _ = artefacts.tiny_cohort()
    runs = {False: artefacts.trained_runs("clinical", image=False, clinical_columns=("age", "sex")),
            True: artefacts.trained_runs("clinical", synthetic=True, image=False, clinical_columns=("age", "sex"))}
    for synthetic, folder in runs.items():
        model = export_configuration(folder, "clinical", tmp_path / f"bundle-{synthetic}")
        out = tmp_path / f"out-{synthetic}"
        assert main(["--quiet", "predict", "--model", str(model), "--manifest", str(manifest), "--allow-missing",
                     "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["training_data"]["synthetic"] is synthetic
        assert summary.get("warning") == (SYNTHETIC_WARNING if synthetic else None)

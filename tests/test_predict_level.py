"""The vertebral level of the fracture in a prediction's outputs (issue 28, "Vertebral level"):
prediction.json `level`, the report's title, the heat-map title (and so the Secondary Capture's
pixels) and the Secondary Capture's comments; `vcpred predict --level`, the viewer's field
(tests/test_serve.py, tests/test_serve_page.py) and the manifest's level column give it.

Before: no output named the level; a reader had only the slice number to tell T12 from L1.
Fast: hand-built prediction results, as tests/test_consistency.py builds them.
"""

from __future__ import annotations

import argparse

import pytest

from test_consistency import dicom_provenance, heatmap_title, result_for, secondary_capture_comments
from vcpred.cli import main
from vcpred.errors import ConfigError
from vcpred.predict.inputs import parse_level
from vcpred.predict.report import report_html


def test_the_level_is_in_the_heat_map_title_the_report_and_the_secondary_capture(monkeypatch, tmp_path):
    numbers = list(range(40, 0, -1))
    result = {**result_for([0.6, 0.7], provenance=dicom_provenance(numbers)), "level": "L1"}
    assert heatmap_title(result, monkeypatch).startswith("P7, level L1, image 21 (index 19): P(collapse) 65.0 %")
    page = report_html(result, None)
    assert "<h1>Vertebral collapse risk: P7, level L1</h1>" in page and "<title>vcpred: P7, level L1</title>" in page
    assert secondary_capture_comments(result, tmp_path).startswith("Vertebral level L1. P(collapse) 0.650")
    unknown = {**result, "level": None}  # no level given: nothing said about one
    assert heatmap_title(unknown, monkeypatch).startswith("P7, image 21 (index 19)")
    assert "<h1>Vertebral collapse risk: P7</h1>" in report_html(unknown, None)
    assert secondary_capture_comments(unknown, tmp_path).startswith("P(collapse)")


@pytest.mark.parametrize("given, level", [("L1", "L1"), (" T12-L1 ", "T12-L1"), ("L2/L3", "L2/L3"), ("", None),
                                          (None, None), ("  ", None)])
def test_a_level_is_short_text_or_none(given, level):
    assert parse_level(given) == level


@pytest.mark.parametrize("given", ["=HYPERLINK(1)", "-L1", "+1", "@A1", "L1\nL2", "L1;drop", "L" * 25])
def test_a_level_that_is_not_short_text_is_refused(given):
    with pytest.raises(ConfigError, match="vertebral level .* must be short text such as L1"):
        parse_level(given)


def test_predict_takes_one_patients_level_and_refuses_it_with_a_manifest(tmp_path, capsys):
    from vcpred.predict.command import _one_patient_record

    args = argparse.Namespace(image_t2=str(tmp_path / "t2.nii.gz"), image_t1=None, roi_slice=4, roi_box="1,2,9,12",
                              clinical="age=74", patient_id="P7", series=[], level=" L1 ")
    assert _one_patient_record(args, True).level == "L1"
    assert _one_patient_record(argparse.Namespace(**{**vars(args), "level": None}), True).level is None
    assert main(["predict", "--model", str(tmp_path / "model"), "--manifest", str(tmp_path / "m.csv"),
                 "--level", "L1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --level is one patient's; with --manifest give each patient's in its level column"

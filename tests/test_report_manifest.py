"""`vcpred report --manifest`: a manifest that differs from the runs' own only in what the gallery reads
(image paths, series, ROIs) describes the same cohort; one that differs in a patient, set, label, site or
clinical value does not (the report then refuses it, naming it: tests/test_run_inputs.py)."""

from dataclasses import replace
from pathlib import Path

import pytest

from vcpred.cohort.manifest import Cohort, PatientRecord, Roi
from vcpred.report.inputs import _described_alike


def cohort(**changes) -> Cohort:
    first = PatientRecord("p1", "development", 1, {"t2": Path("/a/p1")}, Roi(3, 0, 0, 8, 8), "L1", "A",
                          {"age": 70.0, "bmi": float("nan")})
    second = PatientRecord("p2", "external", 0, {"t2": Path("/a/p2")}, Roi(3, 0, 0, 8, 8), "T12", "D",
                           {"age": 80.0, "bmi": 22.0})
    return Cohort(Path("m.csv"), [replace(first, **changes), second], ["t2"], {"age": "numeric", "bmi": "numeric"})


def test_other_images_and_rois_describe_the_same_cohort():
    assert _described_alike(cohort(), cohort(images={"t2": Path("/b/p1")}, roi=Roi(4, 1, 1, 9, 9)))


@pytest.mark.parametrize("changes", [{"label": 0}, {"set": "external"}, {"site": "B"}, {"level": "L2"},
                                     {"patient_id": "p9"}, {"clinical": {"age": 71.0, "bmi": float("nan")}}])
def test_a_patient_label_set_site_level_or_clinical_value_is_another_cohort(changes):
    assert not _described_alike(cohort(), cohort(**changes))

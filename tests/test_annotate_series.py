"""`vcpred annotate` chooses among a patient's series (issue 28): the candidates listed with study date,
series number, description, plane and slices; a choice written into the row's series_<sequence> cell
(its short reference, like a ROI: only that cell changes, the original kept as .bak), checked, versioned,
and never leaving a ROI placed on another series behind unless the page says so."""

from __future__ import annotations

import csv

import pytest
from pydicom.uid import generate_uid

from imaging_support import small_volume, write_dicom_series
from test_annotate import PAGE, annotating, open_patient, save
from vcpred.cli import main
from vcpred.imaging import read_volume


@pytest.fixture
def initialised(tmp_path):
    """`cohort init --series 't2 sag'` over P001 (a baseline and a follow-up whose sagittal T2 both are
    series 3, an axial T2 of the baseline: two match, none chosen) and P002 (one series)."""
    root = tmp_path / "root"
    baseline, followup = generate_uid(), generate_uid()
    for name, study, date, number, description, perm in [
            ("base_t2", baseline, "20240105", 3, "SAG T2", (0, 1, 2)), ("base_ax", baseline, "20240105", 4, "AX T2",
                                                                         (1, 0, 2)),
            ("followup_t2", followup, "20240610", 3, "SAG T2 FSE", (0, 1, 2))]:
        write_dicom_series(root / "P001" / name, small_volume(seed=number), perm=perm, flips=(0,),
                           description=description, study_uid=study, study_date=date, series_number=number)
    write_dicom_series(root / "P002", small_volume(seed=7), flips=(0,), description="T2 SAG", study_date="20240301",
                       series_number=2)
    manifest = tmp_path / "manifest.csv"
    assert main(["cohort", "init", str(root), "--out", str(manifest), "--series", "t2 sag"]) == 0
    return manifest


def rows(manifest):
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


def choose(client, index, series, version=None, **more):
    if version is None:
        version = client.get("/api/annotate").json()["patients"][index]["version"]
    return client.post(f"/api/annotate/patients/{index}/series", headers=PAGE,
                       json={"series": series, "version": version, **more})


def test_a_patients_series_are_listed_with_what_tells_them_apart(initialised, tmp_path):
    with annotating(initialised, tmp_path) as client:
        listed = client.get("/api/annotate/patients/0/series").json()
        alone = client.get("/api/annotate/patients/1/series").json()
    assert listed["column"] == "series_t2" and listed["choice"] == ""
    assert [(s["reference"], s["study_date"], s["number"], s["description"], s["plane"], s["slices"], s["chosen"])
            for s in listed["series"]] == [("20240105#3", "2024-01-05", 3, "SAG T2", "sagittal", 9, False),
                                           ("20240105#4", "2024-01-05", 4, "AX T2", "axial", 40, False),
                                           ("20240610#3", "2024-06-10", 3, "SAG T2 FSE", "sagittal", 9, False)]
    assert [(s["reference"], s["chosen"]) for s in alone["series"]] == [("20240301#2", True)]


def test_choosing_a_series_writes_its_reference_into_the_row_like_a_roi(initialised, tmp_path):
    before = rows(initialised)
    original = initialised.read_bytes()
    with annotating(initialised, tmp_path) as client:
        refused = client.post("/api/annotate/patients/0/open", headers=PAGE)
        assert refused.status_code == 422 and "mixes 3 series" in refused.json()["error"]
        answer = choose(client, 0, "20240610#3")
        assert answer.status_code == 200, answer.text
        assert answer.json()["patient"]["series"] == "20240610#3" and answer.json()["patient"]["version"] == 1
        assert open_patient(client, 0)["chosen"]["series"]["description"] == "SAG T2 FSE"
        assert save(client, 0, [4, 12, 14, 28, 34]).status_code == 200
        listed = client.get("/api/annotate/patients/0/series").json()
    assert [s["reference"] for s in listed["series"] if s["chosen"]] == ["20240610#3"]
    after = rows(initialised)
    assert after[1] == before[1]
    assert {k: v for k, v in after[0].items() if k != "series_t2" and not k.startswith("roi_")} == \
        {k: v for k, v in before[0].items() if k != "series_t2" and not k.startswith("roi_")}
    assert after[0]["series_t2"] == "20240610#3"
    assert initialised.with_name("manifest.csv.bak").read_bytes() == original
    image = read_volume(initialised.parent / after[0]["image_t2"], series=after[0]["series_t2"])
    assert image.provenance["series_description"] == "SAG T2 FSE"  # what prepare reads


def test_another_series_for_a_patient_with_a_roi_clears_it_only_when_asked(initialised, tmp_path):
    with annotating(initialised, tmp_path) as client:
        choose(client, 0, "20240610#3")
        open_patient(client, 0)
        assert save(client, 0, [4, 12, 14, 28, 34]).status_code == 200
        kept = choose(client, 0, "20240105#3")
        assert kept.status_code == 409 and "placed on series 20240610#3" in kept.json()["error"]
        assert rows(initialised)[0]["series_t2"] == "20240610#3" and rows(initialised)[0]["roi_slice"] == "4"
        same = choose(client, 0, "20240610#3")  # the series it has: the ROI stays
        assert same.status_code == 200 and same.json()["patient"]["roi"] is not None
        cleared = choose(client, 0, "20240105#3", clear_roi=True)
        assert cleared.status_code == 200 and cleared.json()["patient"]["roi"] is None
        assert cleared.json()["annotated"] == 0
        assert save(client, 0, [4, 12, 14, 28, 34]).status_code == 409  # the chosen series is not open yet
    row = rows(initialised)[0]
    assert row["series_t2"] == "20240105#3" and all(row[c] == "" for c in row if c.startswith("roi_"))


def test_a_series_choice_is_checked(initialised, tmp_path):
    original = initialised.read_bytes()
    with annotating(initialised, tmp_path) as client:
        unknown = choose(client, 0, "20240105#9")
        assert unknown.status_code == 422 and "no series matches '20240105#9'" in unknown.json()["error"]
        several = choose(client, 0, "#3")
        assert several.status_code == 422 and "2 series match '#3'" in several.json()["error"]
        stale = choose(client, 0, "20240610#3", version=5)
        assert stale.status_code == 409 and "another tab or client" in stale.json()["error"]
        headerless = client.post("/api/annotate/patients/0/series", json={"series": "20240610#3", "version": 0})
        assert headerless.status_code == 403
        missing = client.post("/api/annotate/patients/0/series", headers=PAGE, json={"series": "20240610#3"})
        assert missing.status_code == 422 and "version" in missing.json()["error"]
    assert initialised.read_bytes() == original


def test_a_manifest_without_the_series_column_says_which_to_add(initialised, tmp_path):
    table = rows(initialised)
    with open(initialised, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[c for c in table[0] if c != "series_t2"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    with annotating(initialised, tmp_path) as client:
        assert client.get("/api/annotate/patients/0/series").json()["column"] == "series_t2"
        answer = choose(client, 0, "20240610#3")
    assert answer.status_code == 422 and "has no series_t2 column" in answer.json()["error"]

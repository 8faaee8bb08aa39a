"""`vcpred annotate` and the manifest's `exclude` column (issue 28): a patient is excluded with a reason
(or included again) from the page, written into the row's `exclude` cell the way a ROI is written (only
that cell, the backup, the row version); excluded patients show with their reason and are counted
apart: "n of N patients annotated (M excluded)"."""

from __future__ import annotations

import csv

import pytest

from imaging_support import save_nifti, small_volume
from test_annotate import PAGE, annotating, open_patient, save
from test_annotate_series import initialised  # noqa: F401 (fixture)
from vcpred.cohort import check_manifest
from vcpred.cohort.manifest import ExcludedPatient
from vcpred.serve.annotate_session import AnnotateSession

REASON = "series misses slice 12"
HEADER = ["patient_id", "set", "label", "image_t2", "exclude", "roi_slice", "roi_row_min", "roi_col_min",
          "roi_row_max", "roi_col_max"]


@pytest.fixture
def manifest(tmp_path):
    """P001 and P002 to annotate (NIfTI), P003 already excluded; CRLF line endings."""
    folder = tmp_path / "cohort"
    lines = [",".join(HEADER)]
    for i, reason in ((1, ""), (2, ""), (3, REASON)):
        save_nifti(small_volume(seed=i), folder / "images" / f"P00{i}.nii.gz")
        lines.append(f"P00{i},development,{i % 2},images/P00{i}.nii.gz,{reason},,,,,")
    path = folder / "manifest.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def exclude(client, index, reason, version=None):
    if version is None:
        version = client.get("/api/annotate").json()["patients"][index]["version"]
    return client.post(f"/api/annotate/patients/{index}/exclude", headers=PAGE,
                       json={"reason": reason, "version": version})


def test_excluded_patients_show_their_reason_and_are_counted_apart(manifest, tmp_path):
    session = AnnotateSession.open(manifest)
    assert session.progress_text() == "0 of 2 patients annotated (1 excluded)"
    with annotating(manifest, tmp_path) as client:
        state = client.get("/api/annotate").json()
        assert (state["annotated"], state["total"], state["excluded"]) == (0, 2, 1)
        assert [p["exclude"] for p in state["patients"]] == ["", "", REASON]
        open_patient(client, 1)
        answer = save(client, 1, [4, 12, 14, 28, 34])
        assert (answer.json()["annotated"], answer.json()["total"], answer.json()["excluded"]) == (1, 2, 1)


def test_an_exclusion_is_written_into_its_cell_alone_and_cleared_byte_for_byte(manifest, tmp_path):
    original = manifest.read_bytes()
    reason = 'série incomplète, "coupe 12" absente'  # a comma, quotes and accents: quoted, UTF-8
    with annotating(manifest, tmp_path) as client:
        answer = exclude(client, 0, f"  {reason} ")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["patient"]["exclude"] == reason and body["patient"]["version"] == 1
        assert (body["annotated"], body["total"], body["excluded"]) == (0, 1, 2)
        after = rows(manifest)
        assert after[0]["exclude"] == reason
        assert [{k: v for k, v in r.items() if k != "exclude"} for r in after] == \
            [{k: v for k, v in r.items() if k != "exclude"} for r in rows(manifest.with_name("manifest.csv.bak"))]
        assert manifest.read_bytes().split(b"\r\n")[2:] == original.split(b"\r\n")[2:]  # other rows: same bytes
        assert manifest.with_name("manifest.csv.bak").read_bytes() == original
        assert check_manifest(manifest).excluded[0] == ExcludedPatient("P001", "development", reason, 2)

        cleared = exclude(client, 0, "")
        assert cleared.status_code == 200 and cleared.json()["patient"]["exclude"] == ""
        assert cleared.json()["patient"]["version"] == 2 and cleared.json()["excluded"] == 1
        assert manifest.read_bytes() == original
        included = exclude(client, 2, "")  # the patient excluded before the session
        assert included.status_code == 200 and included.json()["total"] == 3 and included.json()["excluded"] == 0
    assert rows(manifest)[2]["exclude"] == ""


@pytest.mark.parametrize("reason, status, says", [
    ("yes", 422, "reads as a yes/no mark, not a reason"),
    ("x", 422, "reads as a yes/no mark, not a reason"),
    ("=HYPERLINK(\"http://x\")", 422, "run it as a formula"),
    ("missing\nslice", 422, "one line"),
    ("a" * 301, 422, "at most 300 characters"),
    (12, 422, "'reason' must be text"),
])
def test_an_exclusion_reason_is_checked_as_cohort_check_checks_it(manifest, tmp_path, reason, status, says):
    original = manifest.read_bytes()
    with annotating(manifest, tmp_path) as client:
        answer = exclude(client, 0, reason)
    assert answer.status_code == status and says in answer.json()["error"], answer.text
    assert manifest.read_bytes() == original


def test_a_stale_or_headerless_exclusion_is_refused(manifest, tmp_path):
    original = manifest.read_bytes()
    with annotating(manifest, tmp_path) as client:
        stale = exclude(client, 0, REASON, version=3)
        assert stale.status_code == 409 and "another tab or client" in stale.json()["error"]
        headerless = client.post("/api/annotate/patients/0/exclude", json={"reason": REASON, "version": 0})
        assert headerless.status_code == 403
        missing = client.post("/api/annotate/patients/0/exclude", headers=PAGE, json={"reason": REASON})
        assert missing.status_code == 422 and "version" in missing.json()["error"]
        unknown = exclude(client, 9, REASON, version=0)
        assert unknown.status_code == 404
    assert manifest.read_bytes() == original


def test_a_manifest_without_the_exclude_column_says_which_to_add(manifest, tmp_path):
    table = rows(manifest)
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[c for c in HEADER if c != "exclude"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    original = manifest.read_bytes()
    with annotating(manifest, tmp_path) as client:
        assert client.get("/api/annotate").json()["excluded"] == 0
        answer = exclude(client, 0, REASON)
    assert answer.status_code == 422 and "has no exclude column" in answer.json()["error"]
    assert manifest.read_bytes() == original


def test_a_manifest_from_cohort_init_has_the_exclude_column_annotate_writes(initialised, tmp_path):
    """`cohort init` writes an empty exclude column, so that a patient whose series cannot be read is
    excluded on the page without editing the file by hand."""
    assert all(row["exclude"] == "" for row in rows(initialised))
    with annotating(initialised, tmp_path) as client:
        refused = client.post("/api/annotate/patients/0/open", headers=PAGE)
        assert refused.status_code == 422  # P001 mixes 3 series, none chosen
        answer = exclude(client, 0, "two studies, follow-up not wanted")
        assert answer.status_code == 200, answer.text
    assert rows(initialised)[0]["exclude"] == "two studies, follow-up not wanted"
    assert [e.patient_id for e in check_manifest(initialised).excluded] == ["P001"]

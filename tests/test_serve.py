"""`vcpred serve`: the API with Starlette's test client. Upload -> series -> predict equals
`vcpred predict`; malformed uploads answer 4xx and leave nothing behind; studies never mix."""

from __future__ import annotations

import dataclasses
import csv
import gzip
import io
import json
import logging
import re
import socket
import stat
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from imaging_support import save_nifti, small_volume, write_dicom_series
from predict_support import SharedArtefacts
from vcpred.cli import main
from vcpred.cohort.provenance import SYNTHETIC_WARNING
from vcpred.imaging import read_volume
from vcpred.predict import load_bundle
from vcpred.predict.bundle import Bundle
from vcpred.predict.clinical_input import form_fields
from vcpred.serve.app import STATIC, create_app
from vcpred.serve.command import warn_if_exposed
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import OWNER_FILE
from vcpred.synth import generate_cohort

pytestmark = pytest.mark.usefixtures("weights_home")
VIT = dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))
# What the CLI and the API must agree on exactly (provenance names the file paths, which differ).
COMPARED = ("probability", "sd", "interval", "threshold", "category", "per_model", "per_frame", "roi",
            "crop_box", "clinical", "imputed", "heatmap", "warnings", "model_id", "notice", "precision")


@pytest.fixture(scope="module")
def bundle(artefacts) -> Bundle:
    return load_bundle(artefacts.exported("vitlora", **VIT))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> list[dict]:
    """Two synthetic external patients (DICOM T2): folder, ROI and clinical values of each."""
    out = tmp_path_factory.mktemp("synth")
    generate_cohort(out, n_development=0, n_external=2, sequences=("t2",))
    with open(out / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [{"id": r["patient_id"], "folder": out / r["image_t2"], "slice": int(r["roi_slice"]),
             "box": [int(r[f"roi_{k}"]) for k in ("row_min", "col_min", "row_max", "col_max")],
             "clinical": {"age": r["age"], "sex": r["sex"]}} for r in rows]


def zip_bytes(files: dict[str, bytes], *, method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_folders(*folders: Path) -> bytes:
    return zip_bytes({f"{folder.name}-{i}/{p.name}": p.read_bytes()
                      for i, folder in enumerate(folders) for p in sorted(folder.iterdir())})


# The address tests talk to (the server's own origin) and the header the page sends on every
# state-changing request (docs/serve.md, "Safety measures").
BASE = "http://127.0.0.1:8000"
PAGE_HEADERS = {"X-Vcpred-Request": "1"}


@pytest.fixture
def make_client(bundle, tmp_path):
    """A client factory (settings overridable); every app is shut down at the end of the test."""
    clients = []

    def make(**settings) -> TestClient:
        workdir = tmp_path / f"work{len(clients)}"
        workdir.mkdir()
        settings.setdefault("port", 8000)
        client = TestClient(create_app(bundle, ServeSettings(workdir=workdir, **settings)), base_url=BASE,
                            headers=PAGE_HEADERS)
        client.__enter__()  # runs the lifespan (the idle-study reaper; deleting everything at exit)
        clients.append(client)
        return client
    yield make
    for client in clients:
        client.__exit__(None, None, None)
        assert not client.app.state.store.root.exists()  # shutdown deletes every study


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def leftovers(client: TestClient) -> list[Path]:
    """What the server's private root holds besides its owner mark (the studies' folders)."""
    return [p for p in client.app.state.store.root.iterdir() if p.name != OWNER_FILE]


def upload(client: TestClient, data: bytes):
    return client.post("/api/studies", content=data, headers={"Content-Type": "application/octet-stream"})


def open_patient(client: TestClient, patient: dict) -> str:
    answer = upload(client, zip_folders(patient["folder"]))
    assert answer.status_code == 201, answer.text
    return answer.json()["study_id"]


def predict(client: TestClient, study: str, patient: dict, **changes):
    body = {"slice": patient["slice"], "box": patient["box"], "clinical": dict(patient["clinical"]), **changes}
    return client.post(f"/api/studies/{study}/predict", json=body)


def cli_prediction(bundle: Bundle, patient: dict, out: Path) -> dict:
    clinical = ",".join(f"{k}={v}" for k, v in patient["clinical"].items())
    assert main(["predict", "--model", str(bundle.path), "--image-t2", str(patient["folder"]), "--roi-slice",
                 str(patient["slice"]), "--roi-box", ",".join(map(str, patient["box"])), "--clinical", clinical,
                 "--out", str(out)]) == 0
    return json.loads((out / "prediction.json").read_text())


def test_upload_then_predict_equals_vcpred_predict(client, bundle, cohort, tmp_path):
    patient = cohort[0]
    answer = upload(client, zip_folders(patient["folder"]))
    assert answer.status_code == 201
    state = answer.json()
    study = state["study_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", study)
    assert [s["plane"] for s in state["series"]] == ["sagittal"] and state["series"][0]["usable"]
    shape = state["chosen"]["shape"]  # one series: opened at once
    volume = client.get(f"/api/studies/{study}/volume")
    assert volume.headers["x-shape"] == ",".join(map(str, shape))
    assert len(volume.content) == 4 * shape[0] * shape[1] * shape[2]
    assert volume.content == read_volume(patient["folder"]).array.astype("<f4").tobytes()

    answer = predict(client, study, patient)
    assert answer.status_code == 200, answer.text
    mine, cli = answer.json()["result"], cli_prediction(bundle, patient, tmp_path / "cli")
    assert {k: mine[k] for k in COMPARED} == {k: cli[k] for k in COMPARED}
    downloaded = client.get(f"/api/studies/{study}/prediction.json")
    assert downloaded.headers["content-disposition"] == 'attachment; filename="prediction.json"'
    assert {k: downloaded.json()[k] for k in COMPARED} == {k: cli[k] for k in COMPARED}
    report = client.get(f"/api/studies/{study}/report.html").text
    assert "Research use only, not a medical device" in report and "data:image/png;base64," in report
    heat = client.get(f"/api/studies/{study}/heatmap")
    assert heat.headers["x-shape"] == f"{shape[1]},{shape[2]}" and len(heat.content) == 4 * shape[1] * shape[2]
    assert answer.json()["heatmap"] is True and answer.json()["input_warnings"] == []

    assert client.delete(f"/api/studies/{study}").json() == {"closed": True}
    assert leftovers(client) == [] and client.get(f"/api/studies/{study}").status_code == 404


def test_a_zip_with_several_series_lists_them_and_refuses_the_axial_one(client, cohort, tmp_path):
    axial = write_dicom_series(tmp_path / "axial", small_volume(), perm=(1, 0, 2), description="AX T2")
    answer = upload(client, zip_folders(cohort[0]["folder"], axial))
    assert answer.status_code == 201
    state = answer.json()
    assert state["chosen"] is None  # the user chooses
    by_plane = {s["plane"]: s for s in state["series"]}
    assert set(by_plane) == {"sagittal", "axial"}
    assert by_plane["axial"]["description"] == "AX T2" and by_plane["axial"]["slices"] == 40
    assert not by_plane["axial"]["usable"] and "axial series" in by_plane["axial"]["refused"]
    study = state["study_id"]
    refused = client.post(f"/api/studies/{study}/series", json={"series": by_plane["axial"]["id"]})
    assert refused.status_code == 422 and "sagittal series only" in refused.json()["error"]
    chosen = client.post(f"/api/studies/{study}/series", json={"series": by_plane["sagittal"]["id"]})
    assert chosen.status_code == 200 and chosen.json()["chosen"]["series"]["description"] == "SAG T2 FSE"
    assert client.post(f"/api/studies/{study}/series", json={"series": "s9"}).status_code == 404


def _dicom_file(cohort) -> bytes:
    return sorted(cohort[0]["folder"].iterdir())[0].read_bytes()


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("t2/0001.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


MALFORMED = {
    "not a zip": (lambda c, t: b"these are clinical notes, not an image\n" * 20, 415, "not a zipped DICOM series"),
    "empty": (lambda c, t: b"", 400, "the upload is empty"),
    "dotdot": (lambda c, t: zip_bytes({"../escape.dcm": _dicom_file(c)}), 400, "unsafe path '../escape.dcm'"),
    "absolute": (lambda c, t: zip_bytes({"/tmp/abs.dcm": _dicom_file(c)}), 400, "unsafe path"),
    "symlink": (lambda c, t: _symlink_zip(), 400, "symbolic link"),
    "bomb": (lambda c, t: zip_bytes({"t2/big.dcm": bytes(30 * 2**20)}), 400, "possible zip bomb"),
    "oversize": (lambda c, t: bytes(21 * 2**20), 413, "over the 20 MB limit"),
    "axial only": (lambda c, t: zip_folders(write_dicom_series(t / "ax", small_volume(), perm=(1, 0, 2))), 422,
                   "no sagittal series to use: 'T2 SAG' (40 slices): this is an axial series"),
    "no dicom inside": (lambda c, t: zip_bytes({"readme.txt": b"hello"}), 400, "the zip holds no DICOM file"),
    "one dicom file": (lambda c, t: _dicom_file(c), 415, "single DICOM file; zip the folder"),
    "gzip, not nifti": (lambda c, t: gzip.compress(b"x" * 1000), 415, "does not hold a NIfTI image"),
    "damaged zip": (lambda c, t: zip_folders(c[0]["folder"])[:-4000], 415, "damaged"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_uploads_answer_4xx_and_leave_nothing_behind(case, make_client, cohort, tmp_path):
    client = make_client(max_upload_mb=20)
    build, status, message = MALFORMED[case]
    answer = upload(client, build(cohort, tmp_path))
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert str(client.app.state.store.root) not in answer.json()["error"]  # no server paths
    assert leftovers(client) == [] and len(client.app.state.store) == 0
    assert not (tmp_path / "escape.dcm").exists() and not (client.app.state.store.root.parent / "escape.dcm").exists()


@pytest.mark.parametrize("changes,message", [
    ({"clinical": {"age": "74"}}, "clinical value(s) sex needed by this model but not given"),
    ({"clinical": {"age": "old", "sex": "F"}}, "age='old' must be a number (finite"),
    ({"clinical": {"age": "740", "sex": "F"}}, "age=740 years is impossible"),
    ({"clinical": {"age": "74", "sex": "X"}}, "sex='X' is not a category the model knows"),
    ({"clinical": {"age": "74", "sex": "F", "bmi": "22"}}, "unknown clinical value(s) bmi"),
    ({"box": [300, 300, 400, 400]}, "outside the 322 x 322 image"),
    ({"box": [60, 60, 40, 90]}, "is empty or outside"),
    ({"box": [60, 60, 62, 90]}, "smaller than 4 pixels"),
    ({"slice": 99}, "ROI slice 99 is outside the volume"),
    ({"box": "somewhere"}, "draw the ROI"),
    ({"level": 5}, "'level' (the vertebral level, e.g. L1) must be text, not 5"),
    ({"level": "=HYPERLINK(1)"}, "vertebral level '=HYPERLINK(1)' must be short text such as L1"),
    ({"level": "L1\nL2"}, "vertebral level 'L1\\nL2' must be short text"),
    ({"level": "L" * 25}, "at most 24 characters"),
])
def test_bad_roi_or_clinical_values_are_refused_with_the_reason(changes, message, client, cohort):
    study = open_patient(client, cohort[0])
    answer = predict(client, study, cohort[0], **changes)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]
    assert client.get(f"/api/studies/{study}/prediction.json").status_code == 409


def test_requests_that_are_not_json_or_for_unknown_studies(client, cohort):
    study = open_patient(client, cohort[0])
    bad = client.post(f"/api/studies/{study}/predict", content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "must be JSON" in bad.json()["error"]
    assert client.get(f"/api/studies/{study}/heatmap").status_code == 409
    assert client.get(f"/api/studies/{study}/secrets.txt").status_code == 404  # not a download: no such route
    missing = client.get("/api/studies/0123456789abcdef0123456789abcdef/volume")
    assert missing.status_code == 404 and "load it again" in missing.json()["error"]


def test_imputation_and_range_warnings_and_logs_without_patient_names(client, cohort, caplog):
    study = open_patient(client, cohort[0])
    with caplog.at_level(logging.INFO):
        answer = predict(client, study, cohort[0], clinical={"age": "90"}, allow_missing=True, label="Mrs Example")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["result"]["imputed"] == {"sex": "'missing' category"}
    assert body["input_warnings"] == ["age=90 years is outside the training range 64 to 83 (development "
                                      "min-max): the model extrapolates"]
    assert body["result"]["patient_id"] == "Mrs Example"  # the report's name, like --patient-id
    assert "Mrs Example" in client.get(f"/api/studies/{study}/report.html").text
    assert study in caplog.text  # predict's warning names the random study id ...
    for private in ("Mrs Example", cohort[0]["id"], "SYNTHETIC"):  # ... never the patient
        assert private not in caplog.text


def test_the_vertebral_level_is_written_into_the_result_and_the_report(client, cohort):
    """Issue 28: the level typed beside the clinical values, as `vcpred predict --level`."""
    study = open_patient(client, cohort[0])
    answer = predict(client, study, cohort[0], level=" T12-L1 ", label="Mrs Example")
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["level"] == "T12-L1"
    assert client.get(f"/api/studies/{study}/prediction.json").json()["level"] == "T12-L1"
    report = client.get(f"/api/studies/{study}/report.html").text
    assert "Vertebral collapse risk: Mrs Example, level T12-L1" in report
    unnamed = predict(client, study, cohort[0], level="")  # optional: no level, none written
    assert unnamed.status_code == 200 and unnamed.json()["result"]["level"] is None
    assert ", level" not in client.get(f"/api/studies/{study}/report.html").text


def test_two_studies_at_once_do_not_mix(client, cohort):
    studies = [open_patient(client, patient) for patient in cohort]
    alone = [predict(client, s, p).json()["result"] for s, p in zip(studies, cohort)]
    volumes = [client.get(f"/api/studies/{s}/volume").content for s in studies]
    assert alone[0]["probability"] != alone[1]["probability"] and volumes[0] != volumes[1]

    def both(index: int):
        study, patient = studies[index % 2], cohort[index % 2]
        return predict(client, study, patient).json()["result"], client.get(f"/api/studies/{study}/volume").content
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(both, range(4)))
    for index, (result, volume) in enumerate(together):
        assert {k: result[k] for k in COMPARED} == {k: alone[index % 2][k] for k in COMPARED}
        assert volume == volumes[index % 2]


def test_nifti_upload_predicts_and_closing_deletes_it(client, cohort, tmp_path):
    path = save_nifti(read_volume(cohort[0]["folder"]), tmp_path / "t2.nii.gz")
    answer = upload(client, path.read_bytes())
    assert answer.status_code == 201, answer.text
    state = answer.json()
    assert state["series"][0]["description"] == "NIfTI volume" and state["chosen"]["shape"][0] == 12
    assert predict(client, state["study_id"], cohort[0]).status_code == 200
    assert client.post(f"/api/studies/{state['study_id']}/close").json() == {"closed": True}
    assert leftovers(client) == []


def test_an_axial_nifti_is_refused(client, tmp_path):
    volume = small_volume()
    volume.direction = volume.direction[:, [1, 0, 2]]  # the slice axis now runs head-foot: axial
    answer = upload(client, save_nifti(volume, tmp_path / "axial.nii.gz").read_bytes())
    assert answer.status_code == 422 and "axial series" in answer.json()["error"]
    assert leftovers(client) == []


def test_idle_studies_are_deleted_after_the_timeout(make_client, cohort):
    client = make_client(study_timeout_s=60)
    study = open_patient(client, cohort[0])
    store = client.app.state.store
    assert store.reap() == [] and len(leftovers(client)) == 1
    assert store.reap(now=time.monotonic() + 61) == [study]
    assert leftovers(client) == []
    answer = client.get(f"/api/studies/{study}")
    assert answer.status_code == 404 and "timed out after 1 minutes idle" in answer.json()["error"]


def test_studies_from_the_local_folder(make_client, cohort):
    images = cohort[0]["folder"].parents[1]  # images/<patient>/t2
    before = sorted(p.name for p in images.rglob("*"))
    client = make_client(data_dir=images)
    listing = client.get("/api/local").json()
    assert listing["enabled"] and listing["entries"] == [{"name": p["id"], "kind": "DICOM folder"} for p in cohort]
    answer = client.post("/api/studies/local", json={"name": cohort[1]["id"]})
    assert answer.status_code == 201 and answer.json()["chosen"]["series"]["plane"] == "sagittal"
    assert predict(client, answer.json()["study_id"], cohort[1]).status_code == 200
    for name in ("../manifest.csv", "/etc", ""):
        refused = client.post("/api/studies/local", json={"name": name})
        assert refused.status_code == 404 and "not an entry of the local folder" in refused.json()["error"]
    client.delete(f"/api/studies/{answer.json()['study_id']}")
    assert leftovers(client) == [] and sorted(p.name for p in images.rglob("*")) == before  # untouched
    assert make_client().get("/api/local").json() == {"enabled": False, "entries": []}


def test_patient_folders_of_nifti_files_are_listed_and_opened_as_nifti(make_client, tmp_path):
    # a NIfTI cohort (images/<patient>/t2.nii.gz) was listed as "DICOM folder" and failed to open
    generate_cohort(tmp_path / "nifti", n_development=0, n_external=2, sequences=("t2",), fmt="nifti")
    with open(tmp_path / "nifti" / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    images = tmp_path / "nifti" / "images"
    client = make_client(data_dir=images)

    listing = client.get("/api/local").json()["entries"]

    assert listing == [{"name": r["patient_id"], "kind": "NIfTI folder"} for r in rows]
    answer = client.post("/api/studies/local", json={"name": rows[0]["patient_id"]})
    assert answer.status_code == 201, answer.text
    chosen = answer.json()["chosen"]
    assert chosen["series"]["plane"] == "sagittal" and chosen["series"]["description"] == "t2.nii.gz"
    patient = {"slice": int(rows[0]["roi_slice"]), "clinical": {"age": rows[0]["age"], "sex": rows[0]["sex"]},
               "box": [int(rows[0][f"roi_{k}"]) for k in ("row_min", "col_min", "row_max", "col_max")]}
    assert predict(client, answer.json()["study_id"], patient).status_code == 200


def test_the_page_and_model_description(client, bundle):
    page = client.get("/")
    assert page.status_code == 200 and "Research use only, not a medical device." in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    for path in STATIC.iterdir():  # works offline: nothing fetched from elsewhere
        assert not re.search(r"https?://", path.read_text()), path.name
        answer = client.get(f"/static/{path.name}")
        assert answer.status_code == 200
        if path.suffix == ".js":  # ES modules run only with a JavaScript MIME type
            assert answer.headers["content-type"] == "text/javascript; charset=utf-8", path.name
    info = client.get("/api/model").json()
    assert info["k"] == 2 and info["splits"] == 2 and info["threshold"] == bundle.threshold
    age, sex = info["clinical"]
    assert (age["name"], age["unit"], age["min"], age["max"]) == ("age", "years", 64.0, 83.0)
    assert age["range_source"] == "development min-max" and age["plausible"] == [0, 125]
    assert age["limits"]["low_open"] is True  # age 0 is impossible too
    assert sex == {"name": "sex", "kind": "categorical", "unit": "", "choices": ["F", "M"]}


def test_the_page_warns_when_the_model_was_trained_on_synthetic_data(artefacts, client, tmp_path):
    """/api/model carries the warning the page shows at the top and above every result; a model
    trained on data not marked synthetic carries none."""
    info = client.get("/api/model").json()
    assert "warning" not in info and info["training_data"]["synthetic"] is False
    synthetic = load_bundle(artefacts.exported("vitlora", synthetic=True, **VIT))
    with TestClient(create_app(synthetic, ServeSettings(workdir=tmp_path)), base_url=BASE) as other:
        info = other.get("/api/model").json()
        page = other.get("/").text
    assert info["warning"] == SYNTHETIC_WARNING and info["training_data"]["synthetic"] is True
    for element in ("synthetic-warning", "result-synthetic-warning"):  # hidden until the model says so
        assert f'<p class="notice synthetic" id="{element}" hidden></p>' in page
    script = (STATIC / "app.js").read_text()  # the model's view shows it and hides it otherwise
    assert "m.warning ?" in script and '$(id).hidden = !m.warning' in script


def test_bundles_without_recorded_ranges_fall_back_to_the_training_scaling(artefacts, bundle):
    ages = load_manifest_ages(artefacts)
    assert bundle.clinical_ranges == {"age": {"min": min(ages), "max": max(ages)}}
    old = dataclasses.replace(bundle, meta=dataclasses.replace(bundle.meta, clinical_ranges={}))
    age = form_fields(old)[0]
    assert age["range_source"] == "training mean +- 3 SD" and age["min"] < min(ages) and age["max"] > max(ages)


def load_manifest_ages(artefacts: SharedArtefacts) -> list[float]:
    from vcpred.cohort import load_manifest

    return [r.clinical["age"] for r in load_manifest(artefacts.tiny_cohort()[0]).subset("development")
            if r.clinical["age"] is not None]


def test_cli_refuses_bad_arguments_and_warns_when_exposed(bundle, tmp_path, capsys, monkeypatch):
    assert main(["serve", "--model", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--model", str(bundle.path), "--data-dir", str(tmp_path / "absent")]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(["serve", "--model", str(bundle.path), "--study-timeout", "0"]) == 2
    assert not warn_if_exposed("127.0.0.1", 8000)
    served = {}
    from vcpred.serve import listen
    monkeypatch.setattr(listen, "run_server", lambda app, sock: served.update(app=app, address=sock.getsockname()))
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    assert main(["serve", "--model", str(bundle.path), "--host", "0.0.0.0", "--port", str(port)]) == 0
    assert served["address"] == ("0.0.0.0", port)  # bound before the address was printed (issue 27)
    printed = capsys.readouterr()  # the CLI sends warnings to stderr through its own logging setup
    assert "OTHER COMPUTERS CAN REACH THIS PAGE" in printed.err and f"open http://0.0.0.0:{port}/" not in printed.out
    assert re.search(rf"open http://\S+:{port}/\?token=\S{{32}}", printed.out), printed.out  # an address that works


def test_a_store_whose_server_never_ran_leaves_no_folder(tmp_path):
    """close_all runs at server shutdown; a dropped store (app never started) still removes its root."""
    import gc

    from vcpred.serve.studies import StudyStore

    store = StudyStore(60, tmp_path)
    root = store.create().folder.parent
    assert root.is_dir() and oct(root.stat().st_mode & 0o777) == "0o700"
    del store
    gc.collect()
    assert not root.exists()
    closed = StudyStore(60, tmp_path)
    closed.create()
    closed.close_all()
    assert list(tmp_path.iterdir()) == []


def test_studies_carry_the_identity_and_the_scanner_slice_numbers(client, cohort, tmp_path):
    """What the page shows to tell whose study is open (patient, study date, series) and the scanner's
    InstanceNumber of each canonical slice; a NIfTI file has neither."""
    state = upload(client, zip_folders(cohort[0]["folder"])).json()
    identity = state["series"][0]["identity"]
    assert identity["patient_name"] == f"SYNTHETIC {cohort[0]['id']}" and identity["patient_id"] == cohort[0]["id"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", identity["study_date"]) and identity["series_number"]
    numbers = state["chosen"]["instance_numbers"]
    assert sorted(numbers) == list(range(1, state["chosen"]["shape"][0] + 1))
    nifti = upload(client, save_nifti(read_volume(cohort[0]["folder"]), tmp_path / "t2.nii.gz").read_bytes()).json()
    assert nifti["series"][0]["identity"] == {} and nifti["chosen"]["instance_numbers"] is None

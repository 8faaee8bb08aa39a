"""The viewer's low-severity cases of issue 27, over HTTP with a stand-in model (none of them
reaches the model): zip member names too long or too deep for the file system, duplicate JSON keys,
symbolic links in --data-dir, slices placed absurdly far apart, and GET on a POST-only route."""

from __future__ import annotations

import io
import logging
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from imaging_support import small_volume, write_dicom_series
from test_serve_slow_clients import viewer_without_model

PAGE_HEADERS = {"X-Vcpred-Request": "1"}
PATIENT = "Doe^Jane"  # a patient's name in a member path: it must reach neither the answer nor the log


@pytest.fixture
def make_client(tmp_path):
    clients = []

    def make(**settings) -> TestClient:
        workdir = tmp_path / f"work{len(clients)}"
        workdir.mkdir()
        app = viewer_without_model(workdir, **settings)
        client = TestClient(app, base_url=f"http://127.0.0.1:{app.state.settings.port}", headers=PAGE_HEADERS)
        client.__enter__()
        clients.append(client)
        return client
    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    return write_dicom_series(tmp_path_factory.mktemp("series") / "t2", small_volume(shape=(5, 24, 28)))


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(client: TestClient, data: bytes):
    return client.post("/api/studies", content=data, headers={"Content-Type": "application/octet-stream"})


def study_folders(client: TestClient) -> list[Path]:
    return [p for p in client.app.state.store.root.iterdir() if p.is_dir()]


@pytest.mark.parametrize("member", [
    f"{PATIENT}/{'a' * 300}.dcm",  # one name longer than any file system's 255 bytes
    f"{PATIENT}/{'d/' * 3000}IM0001.dcm",  # a path longer than PATH_MAX
    f"{PATIENT}/{'d/' * 100}IM0001.dcm",  # short, but 100 folders deep
])
def test_over_long_or_deep_member_names_are_refused_without_naming_them(member, make_client, series, caplog):
    client = make_client()
    slices = {f"{PATIENT}/{p.name}": p.read_bytes() for p in sorted(series.iterdir())}
    with caplog.at_level(logging.DEBUG):
        answer = upload(client, zipped({**slices, member: next(iter(slices.values()))}))
    assert answer.status_code == 400, answer.text
    assert "too long" in answer.json()["error"] or "too deep" in answer.json()["error"]
    assert "Doe" not in answer.text and "Doe" not in caplog.text  # no patient name in the answer or the log
    assert study_folders(client) == [] and len(client.app.state.store) == 0


@pytest.mark.parametrize("path,body", [
    ("/api/studies/local", '{"name": "P001", "name": "P002"}'),
    ("/api/studies/local", '{"name": "P001", "extra": {"a": 1, "a": 2}}'),
])
def test_duplicate_json_keys_are_refused(path, body, make_client, tmp_path):
    client = make_client(data_dir=tmp_path)
    answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "duplicate key" in answer.json()["error"]


def test_data_dir_neither_lists_nor_follows_symbolic_links(make_client, series, tmp_path):
    outside = tmp_path / "outside"
    other = write_dicom_series(outside / "other", small_volume(shape=(5, 24, 28), seed=1), seed=1)
    data = tmp_path / "data"
    shutil.copytree(series, data / "P001")
    os.symlink(outside / "other", data / "LINKED")  # a folder elsewhere
    (outside / "study.zip").write_bytes(zipped({f"t2/{p.name}": p.read_bytes() for p in sorted(series.iterdir())}))
    os.symlink(outside / "study.zip", data / "linked.zip")
    os.symlink(sorted(other.iterdir())[0], data / "P001" / "IM_LINK")  # a slice of another series inside
    client = make_client(data_dir=data)

    assert client.get("/api/local").json()["entries"] == [{"name": "P001", "kind": "DICOM folder"}]
    for name in ("LINKED", "linked.zip"):
        refused = client.post("/api/studies/local", json={"name": name})
        assert refused.status_code == 404, refused.text
    opened = client.post("/api/studies/local", json={"name": "P001"})
    assert opened.status_code == 201, opened.text
    assert [s["slices"] for s in opened.json()["series"]] == [5]  # the linked slice of the other series not read


@pytest.mark.parametrize("gap", [1e300, 5000.0])
def test_slices_placed_absurdly_far_apart_are_refused(gap, make_client, tmp_path):
    folder = write_dicom_series(tmp_path / "t2", small_volume(shape=(5, 24, 28), spacing=(gap, 1.0, 1.0)))
    answer = upload(make_client(), zipped({f"t2/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())}))
    assert answer.status_code == 422, answer.text
    assert "mm apart" in answer.json()["error"]


def test_a_normal_series_still_opens(make_client, series):
    answer = upload(make_client(), zipped({f"t2/{p.name}": p.read_bytes() for p in sorted(series.iterdir())}))
    assert answer.status_code == 201, answer.text
    assert answer.json()["chosen"]["spacing"] == [3.0, 1.0, 1.0]


def test_get_on_post_only_study_routes_is_405(make_client, series):
    client = make_client()
    study = upload(client, zipped({f"t2/{p.name}": p.read_bytes() for p in sorted(series.iterdir())})).json()["study_id"]
    for action in ("close", "series", "predict"):
        answer = client.get(f"/api/studies/{study}/{action}")
        assert answer.status_code == 405, (action, answer.text)
        assert answer.headers["allow"] == "POST" and "GET is not allowed" in answer.json()["error"]
    assert client.get(f"/api/studies/{study}/prediction.json").status_code == 409  # downloads: none made yet
    assert client.get(f"/api/studies/{study}/nothing.txt").status_code == 404
    assert client.post(f"/api/studies/{study}/close").json() == {"closed": True}

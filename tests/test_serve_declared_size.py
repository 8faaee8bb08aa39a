"""DICOM headers that declare more than they hold, uploaded to `vcpred serve` (issue 27): one ~150 KB
file declaring NumberOfFrames = 10^9 used to have a header built per declared frame before any
budget was checked (no answer in 120 s, memory growing), and a zip of many small files, each
declaring as many frames as one file may, still had every declared frame's header built (each file
within the reader's budget, their sum without bound). Both are answered 413 from the headers, before
any frame's header is built; a real multi-frame upload still opens."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from pydicom.uid import RLELossless, generate_uid
from starlette.testclient import TestClient

from dicom_variants import write_enhanced
from imaging_support import small_volume
from vcpred.imaging import dicom
from vcpred.serve.app import create_app
from vcpred.serve.settings import ServeSettings

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def viewer(tmp_path):
    """The viewer's app with a stand-in model (uploads never touch the model), as a client."""
    model = SimpleNamespace(kind="image", prepare_params=lambda: SimpleNamespace(sequences=("t2",)))
    (tmp_path / "work").mkdir()
    app = create_app(model, ServeSettings(workdir=tmp_path / "work", port=8000))
    with TestClient(app, base_url=BASE, headers={"X-Vcpred-Request": "1"}) as client:
        yield client


@pytest.fixture
def frames_built(monkeypatch):
    """Counts the frame headers the reader builds; fails the request past 100 (the attack's cost)."""
    built = []
    real = dicom._frame_dataset

    def counted(*args):
        built.append(1)
        if len(built) > 100:
            raise AssertionError("frame headers built for a header the viewer should have refused first")
        return real(*args)

    monkeypatch.setattr(dicom, "_frame_dataset", counted)
    return built


def declaring(path: Path, frames: int, *, rows: int | None = None, compressed: bool = False) -> bytes:
    """A small enhanced file (its own series) whose header declares `frames` frames (rows x rows
    pixels); compressed: an RLE transfer syntax and no pixel data (compressed data can be far
    smaller than its pixels, so the file's size says nothing)."""
    write_enhanced(path, small_volume())
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames, ds.SeriesInstanceUID = frames, generate_uid()
    if rows:
        ds.Rows = ds.Columns = rows
    del ds.PerFrameFunctionalGroupsSequence
    if compressed:
        del ds.PixelData
        ds.file_meta.TransferSyntaxUID = RLELossless
    ds.save_as(path)
    return path.read_bytes()


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(client: TestClient, data: bytes):
    return client.post("/api/studies", content=data, headers={"Content-Type": "application/octet-stream"})


def studies_left(client: TestClient) -> list[str]:
    return [p.name for p in client.app.state.store.root.iterdir() if p.name != "owner.json"]


def test_one_file_declaring_a_billion_frames_is_refused_before_any_frame(viewer, frames_built, tmp_path):
    data = zipped({"series/IM0001": declaring(tmp_path / "IM0001", 1_000_000_000)})
    assert len(data) < 200_000
    answer = upload(viewer, data)
    assert answer.status_code == 413, answer.text
    assert "declares 1000000000 frames" in answer.json()["error"]
    assert frames_built == [] and studies_left(viewer) == []


def test_many_files_each_within_the_budget_are_bounded_in_total(viewer, frames_built, tmp_path):
    """20 files of a few KB, each declaring 2048 frames (the most one file may) of 16 x 16 pixels:
    40960 frames in one upload."""
    files = {f"study/IM{i:04d}": declaring(tmp_path / f"IM{i:04d}", 2048, rows=16, compressed=True) for i in range(20)}
    data = zipped(files)
    assert len(data) < 200_000
    answer = upload(viewer, data)
    assert answer.status_code == 413, answer.text
    message = answer.json()["error"]
    assert "40960 frames" in message and "5000" in message, message
    assert frames_built == [] and studies_left(viewer) == []


def test_a_real_multiframe_upload_still_opens(viewer, frames_built, tmp_path):
    path = write_enhanced(tmp_path / "IM0001", small_volume())
    answer = upload(viewer, zipped({"series/IM0001": path.read_bytes()}))
    assert answer.status_code == 201, answer.text
    assert [entry["slices"] for entry in answer.json()["series"]] == [small_volume().shape[0]] and frames_built

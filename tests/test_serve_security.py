"""`vcpred serve` under attack (issue 15), each attack reproduced over HTTP: DNS rebinding (foreign
Host), cross-site requests (CSRF), resource exhaustion (an inflating NIfTI, oversized DICOM headers,
a zip of many small members, too many studies, a prediction queue, huge JSON bodies), folders left
by a killed server, server paths and study ids in outputs, and errors that are not clear JSON."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from starlette.testclient import TestClient

from imaging_support import save_nifti, small_volume, write_dicom_series
from test_serve import (BASE, PAGE_HEADERS, bundle, client, cohort, leftovers, make_client,  # noqa: F401
                        open_patient, predict, upload, zip_bytes, zip_folders)
from vcpred.imaging import read_volume
from vcpred.serve.app import create_app
from vcpred.serve.settings import ServeSettings

pytestmark = pytest.mark.usefixtures("weights_home")
FOREIGN = "http://evil.example:8000"


def assert_json_error(answer, status: int | tuple, *needles: str) -> str:
    """A clear JSON error with the security headers; returns the message."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    message = answer.json()["error"]
    for needle in needles:
        assert needle in message, message
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["cache-control"] == "no-store"
    return message


def small_nifti(tmp_path: Path, name: str = "small.nii.gz", **changes) -> bytes:
    volume = small_volume()
    for key, value in changes.items():
        setattr(volume, key, value)
    return save_nifti(volume, tmp_path / name).read_bytes()


# ---------- DNS rebinding: the Host header ----------

def test_a_foreign_host_is_refused_on_every_route(make_client, cohort, tmp_path):
    """A page on evil.example rebinding to 127.0.0.1 sends Host: evil.example: nothing answers it,
    not the page, the static files, the model, the data-folder listing or a study's volume."""
    images = cohort[0]["folder"].parents[1]
    client = make_client(data_dir=images)
    study = open_patient(client, cohort[0])
    routes = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/model"), ("GET", "/api/local"),
              ("GET", f"/api/studies/{study}"), ("GET", f"/api/studies/{study}/volume"),
              ("GET", f"/api/studies/{study}/heatmap"), ("GET", "/nowhere"),
              ("POST", "/api/studies"), ("POST", "/api/studies/local"), ("POST", f"/api/studies/{study}/series"),
              ("POST", f"/api/studies/{study}/predict"), ("DELETE", f"/api/studies/{study}")]
    for host in ("evil.example:8000", "evil.example", "127.0.0.1.evil.example:8000", "127.0.0.1:9999",
                 "localhost:8001", "[::2]:8000", "", "0.0.0.0:8000"):
        for method, path in routes:
            answer = client.request(method, path, headers={"Host": host})
            message = assert_json_error(answer, 421, "Host")
            assert "127.0.0.1:8000" in message and cohort[0]["id"] not in answer.text
    assert len(client.app.state.store) == 1 and client.get(f"/api/studies/{study}").status_code == 200
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000", "[::1]:8000"):
        assert client.get("/api/local", headers={"Host": host}).status_code == 200, host


def test_the_host_named_with_host_or_allow_host_is_accepted(make_client):
    lan = make_client(host="192.168.1.5", allow_hosts=("ward-pc.example",))
    for host in ("192.168.1.5:8000", "ward-pc.example:8000", "127.0.0.1:8000"):
        assert lan.get("/api/model", headers={"Host": host}).status_code == 200, host
    assert_json_error(lan.get("/api/model", headers={"Host": "evil.example:8000"}), 421, "--allow-host")
    default = make_client()
    assert_json_error(default.get("/api/model", headers={"Host": "192.168.1.5:8000"}), 421)


# ---------- CSRF: Origin, custom header, content type ----------

def test_blind_cross_origin_posts_are_refused(make_client, cohort, tmp_path):
    """Another origin's page posting text/plain (no preflight) creates, predicts and closes nothing."""
    images = cohort[0]["folder"].parents[1]
    client = make_client(data_dir=images)
    study = open_patient(client, cohort[0])
    bare = TestClient(client.app, base_url=BASE)  # no X-Vcpred-Request: what another site's form or fetch sends
    text = {"Content-Type": "text/plain", "Origin": FOREIGN}
    body = json.dumps({"slice": cohort[0]["slice"], "box": cohort[0]["box"], "clinical": cohort[0]["clinical"]})
    attacks = [
        bare.post("/api/studies", content=zip_folders(cohort[1]["folder"]), headers=text),
        bare.post("/api/studies/local", content=json.dumps({"name": cohort[1]["id"]}), headers=text),
        bare.post(f"/api/studies/{study}/predict", content=body, headers=text),
        bare.post(f"/api/studies/{study}/close", content=b"", headers=text),
        bare.post(f"/api/studies/{study}/series", content=json.dumps({"series": "s1"}), headers=text),
        bare.delete(f"/api/studies/{study}", headers={"Origin": FOREIGN}),
        # the page's header cannot be sent cross-origin without a preflight, which is refused too
        bare.options("/api/studies", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "x-vcpred-request"}),
        # ... and even when sent, another Origin or a cross-site fetch is refused
        client.post("/api/studies", content=zip_folders(cohort[1]["folder"]),
                    headers={"Content-Type": "application/octet-stream", "Origin": FOREIGN}),
        client.post("/api/studies/local", json={"name": cohort[1]["id"]}, headers={"Origin": "null"}),
        client.post("/api/studies/local", json={"name": cohort[1]["id"]}, headers={"Sec-Fetch-Site": "cross-site"}),
        client.post("/api/studies/local", json={"name": cohort[1]["id"]}, headers={"Sec-Fetch-Site": "same-site"}),
        client.post("/api/studies/local", json={"name": cohort[1]["id"]},
                    headers={"Origin": "http://127.0.0.1:8001"}),
        client.get(f"/api/studies/{study}/volume", headers={"Origin": FOREIGN}),
    ]
    # without an Origin (a script on this machine, curl): the header is still required
    attacks.append(bare.post("/api/studies", content=zip_folders(cohort[1]["folder"]),
                             headers={"Content-Type": "application/octet-stream"}))
    for answer in attacks:
        assert_json_error(answer, 403)
        assert "access-control-allow-origin" not in answer.headers
    assert "Origin" in attacks[0].json()["error"] and "Origin" in attacks[7].json()["error"]
    assert "X-Vcpred-Request: 1" in attacks[-1].json()["error"]
    assert len(client.app.state.store) == 1 and client.get(f"/api/studies/{study}/prediction.json").status_code == 409
    assert len(leftovers(client)) == 1
    # The page itself: same origin, the header, and JSON bodies as JSON.
    same = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/studies/local", json={"name": cohort[1]["id"]}, headers=same).status_code == 201
    assert_json_error(client.post("/api/studies/local", content=json.dumps({"name": cohort[1]["id"]}),
                                  headers={**same, "Content-Type": "text/plain"}), 415, "application/json")
    assert_json_error(client.post("/api/studies", content=zip_folders(cohort[1]["folder"]),
                                  headers={**same, "Content-Type": "text/plain"}), 415, "application/octet-stream")
    assert len(client.app.state.store) == 2


# ---------- resource exhaustion ----------

def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM (the peak resident size) to the current size (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakSampler:
    """The highest VmRSS seen every 5 ms (when VmHWM cannot be reset)."""

    def __init__(self):
        self.peak, self._stop = vm_kb("VmRSS"), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, vm_kb("VmRSS"))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def inflating_nifti(shape=(12, 4000, 4000), dtype=np.int16) -> bytes:
    """A sagittal NIfTI-1 (.nii.gz) whose header names `shape`, every voxel 0: a few hundred KB that
    unpack to hundreds of MB. Built in 1 MB pieces (the test process never holds the volume)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    affine = np.diag([4.0, 0.1, 0.1, 1.0])  # axis 0 runs left-right, 4 mm: sagittal slices
    header.set_qform(affine, 1)
    header.set_sform(affine, 1)
    header["vox_offset"] = 352
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    pieces = [compressor.compress(header.binaryblock + b"\0" * 4)]
    left, zeros = int(np.prod(shape)) * np.dtype(dtype).itemsize, bytes(1 << 20)
    while left > 0:
        pieces.append(compressor.compress(zeros[:min(left, len(zeros))]))
        left -= len(zeros)
    pieces.append(compressor.flush())
    return b"".join(pieces)


def test_an_inflating_nifti_is_refused_from_its_header_without_the_memory_growing(client, capsys):
    data = inflating_nifti()
    assert len(data) < 400_000
    gc.collect()
    before, resettable = vm_kb("VmRSS"), reset_peak()
    started = time.perf_counter()
    with PeakSampler() as sampler:
        answer = upload(client, data)
    seconds = time.perf_counter() - started
    peak = vm_kb("VmHWM") if resettable else sampler.peak
    after = vm_kb("VmRSS")
    with capsys.disabled():
        print(f"\ninflating NIfTI ({len(data) / 1000:.0f} KB, 12 x 4000 x 4000 int16): HTTP {answer.status_code} "
              f"in {seconds:.2f} s; resident {before / 1024:.0f} MB before, peak {peak / 1024:.0f} MB "
              f"(+{(peak - before) / 1024:.0f} MB), {after / 1024:.0f} MB after")
    assert_json_error(answer, 413, "4000", "voxels")
    assert (peak - before) < 100 * 1024 and (after - before) < 100 * 1024
    assert leftovers(client) == [] and len(client.app.state.store) == 0


@pytest.mark.parametrize("settings,needle", [({}, "2500 x 2500"), ({"max_voxels": 10_000}, "17280 voxels")])
def test_dicom_headers_beyond_the_voxel_budget_are_refused_before_reading_pixels(settings, needle, make_client,
                                                                                  tmp_path, monkeypatch):
    folder = write_dicom_series(tmp_path / "big", small_volume())  # 9 slices of 40 x 48
    if not settings:
        for path in folder.iterdir():  # the header claims 2500 x 2500 (over the 2048 a side)
            dataset = pydicom.dcmread(path)
            dataset.Rows = dataset.Columns = 2500
            dataset.save_as(path)
    client = make_client(**settings)
    import vcpred.serve.loading as loading
    read = []
    monkeypatch.setattr(loading, "read_volume", lambda *a, **k: read.append(a) or 1 / 0)
    assert_json_error(upload(client, zip_folders(folder)), 413, needle, "voxels")
    assert read == [] and leftovers(client) == []


def test_nifti_and_dicom_refusals_are_worded_by_one_budget():
    from vcpred.serve.errors import TooLarge
    from vcpred.serve.limits import check_shape, dicom_series_refusal

    def nifti(shape, settings):
        with pytest.raises(TooLarge) as refused:
            check_shape(shape, settings, "the NIfTI image")
        return str(refused.value)

    slices = [{"Rows": 40, "Columns": 48}] * 9
    total = ServeSettings(max_voxels=10_000)
    for message in (nifti((9, 40, 48), total), dicom_series_refusal(slices, total)):
        assert "(17280 voxels), more than the viewer's budget of 10000 voxels" in message
        assert "--max-megavoxels" in message and message.endswith("before any voxel is read")
    side = ServeSettings(max_dimension=40)
    for message in (nifti((9, 40, 48), side), dicom_series_refusal(slices, side)):
        assert "(17280 voxels): 48 is more than the 40 a side the viewer reads" in message
    assert "the NIfTI image is 9 x 40 x 48 (" in nifti((9, 40, 48), total)
    assert "this series is 9 slices of 40 x 48 pixels (" in dicom_series_refusal(slices, total)
    assert dicom_series_refusal(slices, ServeSettings()) is None
    check_shape((9, 40, 48), ServeSettings(), "the NIfTI image")  # within the budget: no refusal


def test_nifti_over_the_total_budget_or_a_side_is_refused(make_client, tmp_path):
    client = make_client(max_voxels=10_000)
    assert_json_error(upload(client, small_nifti(tmp_path)), 413, "9 x 40 x 48", "17280 voxels", "10000")
    plain = save_nifti(small_volume(), tmp_path / "small.nii").read_bytes()  # not gzipped: same check
    assert_json_error(upload(client, plain), 413, "17280 voxels")
    wide = make_client(max_dimension=40)
    assert_json_error(upload(wide, small_nifti(tmp_path)), 413, "48", "40 a side")
    assert leftovers(client) == [] and leftovers(wide) == []
    assert upload(make_client(), small_nifti(tmp_path)).status_code == 201  # the same file, default limits


def test_a_zip_of_many_small_members_is_refused_before_anything_is_written(client, monkeypatch):
    """300 members of 1 MB (each under the per-member ratio floor) from a ~300 KB zip."""
    import vcpred.serve.archive as archive

    opened = []
    real = archive._private_file
    monkeypatch.setattr(archive, "_private_file", lambda path: opened.append(path) or real(path))
    data = zip_bytes({f"t2/{i:04d}.dcm": bytes(2**20) for i in range(300)})
    assert len(data) < 2**20
    assert_json_error(upload(client, data), 400, "expands", "zip bomb")
    assert opened == [] and leftovers(client) == []


def test_open_studies_are_capped_the_oldest_idle_one_is_closed(make_client, tmp_path):
    client = make_client(max_studies=2)
    data = small_nifti(tmp_path)
    first, second = (upload(client, data).json()["study_id"] for _ in range(2))
    client.get(f"/api/studies/{first}")  # used last: the second is now the oldest idle study
    third = upload(client, data)
    assert third.status_code == 201
    assert_json_error(client.get(f"/api/studies/{second}"), 404, "load it again")
    assert client.get(f"/api/studies/{first}").status_code == 200
    assert len(client.app.state.store) == 2 and len(leftovers(client)) == 2
    store = client.app.state.store
    busy = [store.get(s) for s in (first, third.json()["study_id"])]
    for study in busy:  # both in use (a request running on each): none can be closed
        study.lock.acquire()
    try:
        assert_json_error(upload(client, data), 429, "2 studies are open", "close one")
    finally:
        for study in busy:
            study.lock.release()
    assert len(store) == 2 and len(leftovers(client)) == 2


def test_predictions_beyond_the_queue_answer_429(make_client, cohort):
    from vcpred.serve.inference import INFERENCE_LOCK

    client = make_client(max_predictions=2)
    studies = [open_patient(client, cohort[0]) for _ in range(3)]
    gate = client.app.state.predictions
    with ThreadPoolExecutor(max_workers=2) as pool:
        with INFERENCE_LOCK:  # another prediction is running
            queued = [pool.submit(predict, client, s, cohort[0]) for s in studies[:2]]
            deadline = time.monotonic() + 30
            while gate.admitted < 2:
                assert time.monotonic() < deadline, "the two predictions were not admitted"
                time.sleep(0.01)
            assert_json_error(predict(client, studies[2], cohort[0]), 429, "busy", "2 predictions")
        assert [f.result().status_code for f in queued] == [200, 200]
    assert predict(client, studies[2], cohort[0]).status_code == 200


async def _call(app, method: str, path: str, headers: dict, chunks) -> tuple[int, int, dict]:
    """One request straight into the ASGI app, the body fed chunk by chunk; (status, bytes the app
    read, response body)."""
    read, status, body = 0, None, b""
    chunks = iter(chunks)

    async def receive():
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    await app(scope, receive, send)
    return status, read, json.loads(body)


def test_json_bodies_over_the_cap_are_refused_early(client):
    """300 MB of JSON: refused from Content-Length without reading it, and when streamed without a
    length, as soon as the count passes the cap."""
    total, piece = 300 * 2**20, b'{"name": "' + b"a" * (2**16 - 10)

    def body():
        for _ in range(total // len(piece)):
            yield piece
    headers = {"host": "127.0.0.1:8000", "content-type": "application/json", **PAGE_HEADERS}
    status, read, answer = asyncio.run(_call(client.app, "POST", "/api/studies/local",
                                             {**headers, "content-length": str(total)}, body()))
    assert status == 413 and read == 0 and "64 KB" in answer["error"]
    status, read, answer = asyncio.run(_call(client.app, "POST", "/api/studies/local", headers, body()))
    assert status == 413 and read <= 2 * 2**16 and "64 KB" in answer["error"]


# ---------- patient data left behind ----------

KILLED_SERVER = """
import os, signal, sys
from pathlib import Path
from vcpred.serve.studies import StudyStore
store = StudyStore(60, Path(sys.argv[1]))
study = store.create()
(study.folder / "IM0001.dcm").write_bytes(b"DICM patient data")
print(store.root, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_folders_of_a_killed_server_are_swept_at_the_next_start(bundle, tmp_path):
    from vcpred.serve.studies import OWNER_FILE, StudyStore, private_prefix

    killed = subprocess.run([sys.executable, "-c", KILLED_SERVER, str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = Path(killed.stdout.strip())
    assert left.parent == tmp_path and any(left.rglob("IM0001.dcm"))
    owner = json.loads((left / OWNER_FILE).read_text())
    assert owner["host"] == socket.gethostname() and owner["pid"] != os.getpid() and f"-{owner['pid']}-" in left.name

    by_hand = tmp_path / f"{private_prefix(dead_pid())}manual1"  # as a dead process would leave it
    (by_hand / "0123456789abcdef0123456789abcdef").mkdir(parents=True)
    reused = tmp_path / f"{private_prefix(os.getpid())}reused1"  # a live pid now, but another process's
    reused.mkdir()
    (reused / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "start": "1"}))
    other_host = tmp_path / f"{private_prefix(dead_pid(), host='other-machine')}remote1"
    other_host.mkdir()
    alive = StudyStore(60, tmp_path)  # this process's own store: its owner lives
    alive.create()
    keep = [tmp_path / "vcpred-serve-legacy", tmp_path / "notes"]
    for folder in keep:
        folder.mkdir()

    with TestClient(create_app(bundle, ServeSettings(workdir=tmp_path)), base_url=BASE) as started:
        new_root = started.app.state.store.root
        assert not left.exists() and not by_hand.exists() and not reused.exists()
        assert other_host.exists() and alive.root.exists() and all(folder.exists() for folder in keep)
        assert new_root.exists() and f"-{os.getpid()}-" in new_root.name
    alive.close_all()


# ---------- no server paths or study ids in outputs ----------

def test_no_server_paths_or_study_ids_in_results_reports_or_errors(make_client, cohort, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cohort[0]["folder"], data / "P1")
    save_nifti(read_volume(cohort[1]["folder"]), data / "P2.nii.gz")
    shutil.copytree(cohort[0]["folder"], data / "P3")
    damaged = sorted((data / "P3").iterdir())[3]
    damaged.write_bytes(damaged.read_bytes()[:200])  # a truncated DICOM header names its file
    noise = np.random.default_rng(0).normal(size=(4, 30, 30)).astype(np.float32)
    (data / "P4.nii.gz").write_bytes(gzip.compress(nib.Nifti1Image(noise, np.diag([4.0, 1, 1, 1])).to_bytes())[:3000])
    client = make_client(data_dir=data)
    server_paths = [str(tmp_path), str(tmp_path.resolve()), str(client.app.state.store.root)]
    texts, ids = [], []
    for name, patient in (("P1", cohort[0]), ("P2.nii.gz", cohort[1])):
        opened = client.post("/api/studies/local", json={"name": name})
        assert opened.status_code == 201, opened.text
        study = opened.json()["study_id"]
        ids.append(study)
        answer = predict(client, study, patient, label="Mrs Example")
        assert answer.status_code == 200, answer.text
        texts += [json.dumps(answer.json()["result"]), json.dumps(answer.json()["input_warnings"]),
                  client.get(f"/api/studies/{study}/prediction.json").text,
                  client.get(f"/api/studies/{study}/report.html").text]
        written = list((client.app.state.store.root / study).rglob("result/*"))
        texts += [p.read_text() for p in written if p.suffix in (".json", ".html")]
        assert len(written) >= 2
        texts.append(assert_json_error(predict(client, study, patient, slice=99), 422))
        texts.append(assert_json_error(client.post(f"/api/studies/{study}/series", json={"series": "s9"}), 404))
    for name in ("P3", "P4.nii.gz"):
        texts.append(assert_json_error(client.post("/api/studies/local", json={"name": name}), (415, 422)))
    assert "0003" in texts[-2] or "truncated" in texts[-2] or "corrupt" in texts[-2], texts[-2]
    texts.append(assert_json_error(upload(client, zip_folders(data / "P3")), 422))
    for text in texts:
        for secret in server_paths + ids:
            assert secret not in text, (secret, text[:2000])
        assert not re.search(r"(^|[\s'\"(])/(tmp|home|root|var|work)/", text), text[:2000]


# ---------- every error: clear JSON with the security headers ----------

def test_every_bad_request_is_a_clear_json_error_with_the_security_headers(client, cohort, tmp_path, monkeypatch):
    study = open_patient(client, cohort[0])
    p = cohort[0]
    good = {"slice": p["slice"], "box": p["box"], "clinical": p["clinical"]}
    raw = [
        ('{"slice": 1e400, "box": %s, "clinical": {}}' % json.dumps(p["box"]), 422, "slice"),
        ('{"slice": %d, "box": [1e400, 0, 10, 10], "clinical": {}}' % p["slice"], 422, "box"),
        ('{"slice": NaN, "box": [0, 0, 10, 10]}', 400, "JSON"),
        ('{"slice": -Infinity, "box": [0, 0, 10, 10]}', 400, "JSON"),
        ('[1, 2]', 400, "object"),
    ]
    for text, status, needle in raw:
        answer = client.post(f"/api/studies/{study}/predict", content=text, headers={"Content-Type": "application/json"})
        assert_json_error(answer, status, needle)
    typed = [
        ({"allow_missing": "false"}, "allow_missing"), ({"allow_missing": 1}, "allow_missing"),
        ({"slice": True}, "slice"), ({"slice": "7"}, "slice"), ({"slice": 7.5}, "slice"),
        ({"box": [94, 125, 116.5, 155]}, "box"), ({"box": [94, 125, 116]}, "box"), ({"box": None}, "box"),
        ({"label": 5}, "label"), ({"label": "x" * 500}, "label"), ({"clinical": ["age", 74]}, "clinical"),
        ({"clinical": {"age": [74], "sex": "F"}}, "age"), ({"clinical": {"age": True, "sex": "F"}}, "age"),
        ({"clinical": {"age": {"v": 1}, "sex": "F"}}, "age"), ({"surprise": 1}, "surprise"),
    ]
    for change, needle in typed:
        answer = client.post(f"/api/studies/{study}/predict", json={**good, **change})
        assert_json_error(answer, 422, needle)
    assert client.get(f"/api/studies/{study}/prediction.json").status_code == 409  # none of them predicted
    for body, needle in (({"series": 1}, "series"), ({"series": ["s1"]}, "series"), ({}, "series")):
        assert_json_error(client.post(f"/api/studies/{study}/series", json=body), 422, needle)
    for body in ({"name": ["x"]}, {"name": None}, {"name": 5}):
        assert_json_error(client.post("/api/studies/local", json=body), 422, "name")
    assert_json_error(client.get("/nowhere"), 404, "no such page")
    assert_json_error(client.get("/static/nothing.js"), 404)
    assert_json_error(client.put(f"/api/studies/{study}"), 405, "PUT")
    assert_json_error(client.get("/api/studies/not-an-id/volume"), 404)

    nan = small_volume().array.copy()
    nan[4, 10:12, 10:12] = np.nan  # four voxels of a converted image lost
    assert_json_error(upload(client, small_nifti(tmp_path, "nan.nii.gz", array=nan)), 422, "NaN")

    import vcpred.serve.app as app_module
    monkeypatch.setattr(app_module, "form_fields", lambda bundle: 1 / 0)  # a bug of ours
    message = assert_json_error(client.get("/api/model"), 500, "internal error")
    assert "ZeroDivisionError" not in message and "Traceback" not in message

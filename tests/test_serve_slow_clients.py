"""Slow clients against a running `vcpred serve` (issue 27), over real sockets: uploads that send
their headers and a few bytes of body, then stall, used to hold every study slot (each new upload
got 429 while they stayed open). A study now counts only once its upload has arrived, and a body
that stalls past the idle timeout is answered 408."""

from __future__ import annotations

import http.client
import socket
import time
from types import SimpleNamespace

from imaging_support import save_nifti, small_volume
from test_serve_browser import free_port, serving
from vcpred.serve.app import create_app
from vcpred.serve.settings import ServeSettings

IDLE_S = 1.0


def viewer_without_model(tmp_path, **settings):
    """The viewer's app with a stand-in model: uploads and studies never touch the model."""
    model = SimpleNamespace(kind="image", prepare_params=lambda: SimpleNamespace(sequences=("t2",)))
    return create_app(model, ServeSettings(workdir=tmp_path, port=free_port(), **settings))


def stalled_upload(port: int) -> socket.socket:
    """An upload that announces 100 kB, sends 4 bytes and stalls."""
    stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
    stalled.sendall(f"POST /api/studies HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Vcpred-Request: 1\r\n"
                    "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\nABCD".encode())
    return stalled


def read_all(connection: socket.socket) -> str:
    """What the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received.decode(errors="replace")


def post_upload(port: int, data: bytes) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/api/studies", body=data, headers={
        "Host": f"127.0.0.1:{port}", "X-Vcpred-Request": "1", "Content-Type": "application/octet-stream"})
    answer = connection.getresponse()
    return answer.status, answer.read().decode()


def test_stalled_uploads_hold_no_study_slot_and_are_answered_408(tmp_path):
    app = viewer_without_model(tmp_path, max_studies=2, upload_idle_timeout_s=IDLE_S)
    nifti = save_nifti(small_volume(), tmp_path / "small.nii.gz").read_bytes()
    port = app.state.settings.port
    with serving(app):
        stalled = [stalled_upload(port) for _ in range(4)]
        time.sleep(0.3)  # the server has read their headers and 4 bytes each
        for _ in range(2):  # every slot free for complete uploads while the stalled ones wait
            status, text = post_upload(port, nifti)
            assert status == 201, text
        for connection in stalled:
            answer = read_all(connection)
            assert answer.startswith("HTTP/1.1 408"), answer
            assert "no data" in answer and "upload again" in answer
            connection.close()
        store = app.state.store
        assert len(store) == 2  # only the complete uploads became studies; the stalled ones left nothing
        assert sorted(p.name for p in store.root.iterdir() if p.name != "owner.json") == sorted(store.ids())

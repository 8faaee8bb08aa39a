"""A viewer other computers can reach (`--host 0.0.0.0` or another non-loopback address; issue 27):
before, anyone on the network who sent `Host: <machine name>:PORT` got annotate's whole cohort and
could rewrite the manifest, while the printed address and the machine's own address got 421. Now
such a server prints an address holding a random token, which it sets as a cookie; every request
without it answers 401. Loopback servers (127.0.0.2 too) need no token and print no banner."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from test_annotate import PAGE, cohort, synthetic  # noqa: F401
from vcpred.cli import main
from vcpred.serve.access import is_loopback, outward_address
from vcpred.serve.annotate_app import create_annotate_app
from vcpred.serve.annotate_session import AnnotateSession
from vcpred.serve.settings import ServeSettings

TOKEN = "a-random-token-of-the-server-0123456789"


def annotating(manifest, tmp_path, host: str, token: str | None) -> TestClient:
    settings = ServeSettings(host=host, port=8000, token=token, workdir=tmp_path)
    return TestClient(create_annotate_app(AnnotateSession.open(manifest), settings), follow_redirects=False)


def test_without_the_token_a_network_client_gets_nothing_of_the_cohort(cohort, tmp_path):  # noqa: F811
    machine = f"http://{socket.gethostname()}:8000"
    with annotating(cohort, tmp_path, "0.0.0.0", TOKEN) as client:
        for method, path in (("GET", "/"), ("GET", "/api/annotate"), ("POST", "/api/annotate/patients/0/open"),
                             ("POST", "/api/annotate/patients/0/roi")):
            for cookie in ({}, {"Cookie": "vcpred_token_8000=wrong"}, {"Cookie": f"vcpred_token_9000={TOKEN}"}):
                answer = client.request(method, machine + path + "?token=wrong", headers={**PAGE, **cookie},
                                        json={"slice": 1, "box": [1, 1, 5, 5]})
                assert answer.status_code == 401, (method, path, answer.status_code)
                assert "token" in answer.json()["error"] and "P0" not in answer.text
        assert client.app.state.store.ids() == []


def test_the_printed_address_sets_the_cookie_and_the_page_works_with_it(cohort, tmp_path):  # noqa: F811
    for name in {socket.gethostname(), outward_address() or socket.gethostname()}:
        with annotating(cohort, tmp_path, "0.0.0.0", TOKEN) as client:
            origin = f"http://{name}:8000"
            answer = client.get(f"{origin}/?token={TOKEN}")
            assert answer.status_code == 303 and answer.headers["location"] == "/"
            cookie = answer.headers["set-cookie"]
            assert cookie.startswith(f"vcpred_token_8000={TOKEN};"), cookie
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
            sent = {"Cookie": f"vcpred_token_8000={TOKEN}"}
            assert client.get(f"{origin}/", headers=sent).status_code == 200
            state = client.get(f"{origin}/api/annotate", headers=sent)
            assert state.status_code == 200 and state.json()["total"] == 3


def test_the_host_address_itself_is_answered(cohort, tmp_path):  # noqa: F811
    with annotating(cohort, tmp_path, "192.0.2.7", TOKEN) as client:
        answer = client.get("http://192.0.2.7:8000/api/annotate", headers={"Cookie": f"vcpred_token_8000={TOKEN}"})
        assert answer.status_code == 200


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("192.0.2.7", False),
                                           ("::", False), ("myhost.example", False)])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def run_annotate(cohort, host: str, capsys, monkeypatch):  # noqa: F811
    """The command with its server replaced (the socket is bound): (the app it would serve, its
    port, stdout, stderr)."""
    from vcpred.serve import listen

    served = {}
    monkeypatch.setattr(listen, "run_server", lambda app, sock: served.update(app=app, port=sock.getsockname()[1]))
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    assert main(["annotate", str(cohort), "--host", host, "--port", str(port)]) == 0
    printed = capsys.readouterr()
    assert served["port"] == port
    return served["app"], port, printed.out, printed.err


def test_annotate_on_the_network_prints_an_address_that_works_and_says_what_it_exposes(cohort, capsys,  # noqa: F811
                                                                                       monkeypatch):
    app, port, out, err = run_annotate(cohort, "0.0.0.0", capsys, monkeypatch)
    assert "OTHER COMPUTERS CAN REACH THIS PAGE" in err and "manifest" in err and "every patient's images" in err
    url = re.search(r"open (http://\S+)", out).group(1)
    parts = urlsplit(url)
    assert parts.hostname not in ("0.0.0.0", "127.0.0.1") and parts.port == port and "token=" in parts.query
    with TestClient(app, follow_redirects=False) as client:
        answer = client.get(url)
        assert answer.status_code == 303
        token = answer.headers["set-cookie"].split(";")[0]
        page = client.get(f"{parts.scheme}://{parts.netloc}/api/annotate", headers={"Cookie": token})
        assert page.status_code == 200 and page.json()["total"] == 3


def test_annotate_on_another_loopback_address_prints_no_banner_and_needs_no_token(cohort, capsys,  # noqa: F811
                                                                                   monkeypatch):
    app, port, out, err = run_annotate(cohort, "127.0.0.2", capsys, monkeypatch)
    assert "OTHER COMPUTERS" not in err and f"open http://127.0.0.2:{port}/ " in out
    with TestClient(app) as client:
        assert client.get(f"http://127.0.0.2:{port}/api/annotate").json()["total"] == 3

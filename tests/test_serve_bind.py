"""`vcpred serve` and `vcpred annotate` bind their socket before printing where to open the page
(issue 27): before, they printed `open http://127.0.0.1:PORT/` and then failed to bind (the port
taken, an unresolvable --host) with uvicorn's message and exit 3, after advertising an address that
belonged to another program. Now such a start is one `error:` line, exit 2, and no address."""

from __future__ import annotations

import socket

import pytest

from test_annotate import cohort, synthetic  # noqa: F401
from vcpred.cli import main


@pytest.fixture
def taken_port():
    """A port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def one_error_line(capsys, *needles: str) -> str:
    printed = capsys.readouterr()
    assert "open http" not in printed.out and "http://" not in printed.err, printed
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), printed.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_annotate_on_a_taken_port_says_so_in_one_line(cohort, taken_port, capsys):  # noqa: F811
    assert main(["annotate", str(cohort), "--port", str(taken_port)]) == 2
    one_error_line(capsys, f"port {taken_port}", "--port")
    assert not cohort.with_name("manifest.csv.annotate.lock").exists()


def test_an_unresolvable_host_says_so_in_one_line(cohort, capsys):  # noqa: F811
    assert main(["annotate", str(cohort), "--host", "no-such-host.invalid", "--port", "8123"]) == 2
    one_error_line(capsys, "--host no-such-host.invalid")


def test_serve_on_a_taken_port_says_so_before_loading_the_model(tmp_path, taken_port, capsys):
    assert main(["serve", "--model", str(tmp_path / "model"), "--port", str(taken_port)]) == 2
    one_error_line(capsys, f"port {taken_port}")

"""Kill `vcpred prepare` and `vcpred experiment` (each with 2 worker processes) at random moments
with SIGINT, SIGTERM or SIGKILL. Afterwards no process of theirs may be left, and a rerun must
finish with every output valid: each prepared file passes its hash check, each run's outputs pass
theirs (`vcpred evaluate` verifies them), and no temporary sibling is left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from vcpred.imaging import load_prepared

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("weights_home")]

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
MARKER = "VCPRED_FAULT_TEST"
DEADLINE_S = 300


def start(argv: list[str], marker: str) -> subprocess.Popen:
    """vcpred in a new process; its workers inherit the marker in their environment."""
    env = dict(os.environ, **{MARKER: marker}, HF_HUB_OFFLINE="1")
    # SIGINT as a terminal's Ctrl-C sends it: a shell's background job (`make test &`) starts with SIGINT
    # ignored, and a child would inherit that and run to the end
    return subprocess.Popen([sys.executable, "-m", "vcpred", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def processes_with(marker: str) -> list[int]:
    """Live processes (zombies have no environment) carrying the marker."""
    wanted = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def no_process_left(marker: str, wait_s: float = 15.0) -> list[int]:
    end = time.monotonic() + wait_s
    while processes_with(marker) and time.monotonic() < end:
        time.sleep(0.1)
    return processes_with(marker)


def kill_when(argv: list[str], started, delay: float, signum: int) -> tuple[int, str]:
    """Start vcpred; once started() is true (its work is under way), wait delay seconds more and send
    signum; wait for it to end. Returns (exit code, stderr)."""
    marker = uuid.uuid4().hex
    process = start(argv, marker)
    end = time.monotonic() + DEADLINE_S
    while process.poll() is None and not started() and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(delay)
    assert process.poll() is None, "the command ended before the signal; give it more work"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=DEADLINE_S)
    left = no_process_left(marker)
    assert not left, f"{signal.Signals(signum).name} left processes {left} behind"
    return process.returncode, stderr


def check_interrupted(code: int, stderr: str, signum: int) -> None:
    """Ctrl-C and SIGTERM: 'error: interrupted', exit 130, no traceback; SIGKILL: killed."""
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130 and "error: interrupted" in stderr, (code, stderr[-2000:])
        assert "Traceback" not in stderr


def rerun(argv: list[str]) -> None:
    process = start(argv, uuid.uuid4().hex)
    _, stderr = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0, stderr[-3000:]


def finished_runs(runs: Path) -> int:
    count = 0
    for config in runs.glob("*/split-*/config.yaml"):
        try:
            count += "status: done" in config.read_text()
        except OSError:  # swapped in or out while we looked
            pass
    return count


def temporary_leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".vcpred-" in p.name and p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fault") / "cohort"
    rerun(["--quiet", "synth", "--out", str(out), "--development", "36", "--external", "6", "--size", "64",
           "--sequences", "t2", "--jobs", "2"])
    return out / "manifest.csv"


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_prepare_killed_at_a_random_moment_reruns_to_a_valid_store(cohort, tmp_path, signum):
    from vcpred.cohort import load_manifest

    store = tmp_path / "store"
    argv = ["--quiet", "prepare", str(cohort), "--out", str(store), "--size", "48", "--jobs", "2"]
    delay = random.Random(int(signum)).uniform(0.0, 0.5)  # after the first files: mid-run (42 patients)
    check_interrupted(*kill_when(argv, lambda: len(list(store.glob("**/*.npz"))) >= 3, delay, signum), signum)
    rerun(argv)
    index = json.loads((store / "index.json").read_text())
    patients = load_manifest(cohort).records
    assert {pid: entry["status"] for pid, entry in index["patients"].items()} == {r.patient_id: "ok" for r in patients}
    for record in patients:  # every file passes the store's hash and identity checks
        assert load_prepared(store, record.patient_id).frames.shape[-1] == 48
    assert not temporary_leftovers(store)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_experiment_killed_at_a_random_moment_reruns_to_valid_runs(tiny, tmp_path, signum):
    manifest, store, splits = tiny
    experiment = {"manifest": str(manifest), "store": str(store),
                  "splits": {"file": str(splits), "n_splits": 3, "val_fraction": 0.2, "seed": 0},
                  "model": {"weights": "random", "backbone": "resnet_test"},
                  "training": {"epochs": 2, "batch_size": 8, "precision": "fp32"},
                  "configurations": [{"name": "full", "model": {"method": "full"}},
                                     {"name": "lora", "model": {"method": "lora"}}]}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    runs = tmp_path / "runs"
    argv = ["--quiet", "experiment", str(path), "--out", str(runs), "--jobs", "2"]
    delay = random.Random(10 + int(signum)).uniform(0.0, 1.0)  # after the first run: mid-experiment (6 runs)
    check_interrupted(*kill_when(argv, lambda: finished_runs(runs) >= 1, delay, signum), signum)
    rerun(argv)
    status = json.loads((runs / "experiment_status.json").read_text())
    assert sorted(status["done"]) == sorted(f"{c}/split-{k:02d}" for c in ("full", "lora") for k in range(3)), status
    rerun(["--quiet", "evaluate", str(runs), "--out", str(tmp_path / "eval"), "--no-figures"])  # verifies hashes
    assert not temporary_leftovers(runs)

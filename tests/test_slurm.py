"""`vcpred experiment --executor slurm`: without SLURM an error (exit 2) before anything is written,
never submitit's silent fall back to this machine; with a SLURM cluster (.ci/start_slurm.sh starts a
one-node one as root), a tiny experiment runs as a real job array whose tasks end COMPLETED in
`scontrol`. The cluster tests skip, saying why, when sbatch/squeue are absent or no node is up."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from test_experiment import write_experiment
from vcpred.cli import main
from vcpred.errors import ConfigError
from vcpred.experiment import load_experiment, run_experiment
from vcpred.runs import is_finished

pytestmark = pytest.mark.usefixtures("weights_home")

CLIN = {"name": "clin", "model": {"image": False, "clinical_columns": ["age"]}}
CNN = {"name": "cnn", "model": {"method": "linear"}}  # resnet_test, random weights (write_experiment's defaults)


@pytest.fixture
def no_slurm(tmp_path, monkeypatch):
    """PATH holding only this Python: no sbatch, no srun (whatever this machine has installed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_without_slurm_the_experiment_stops_before_writing_anything(tiny, tmp_path, capsys, no_slurm):
    """submitit's AutoExecutor fell back to local jobs on this machine and vcpred said 'submitted as a
    job array'."""
    path = write_experiment(tiny, tmp_path, [CLIN])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["experiment", str(path), "--out", str(tmp_path / "runs"), "--executor", "slurm"]) == 2
    captured = capsys.readouterr()
    line = captured.err.strip()
    assert line.startswith("error: --executor slurm: sbatch and srun not found on PATH") and "\n" not in line
    assert "--executor local" in line and "Traceback" not in line and "submitted" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs, no splits.json


def test_the_library_refuses_too(tiny, tmp_path, no_slurm):
    specs = load_experiment(write_experiment(tiny, tmp_path, [CLIN]))
    with pytest.raises(ConfigError, match="sbatch and srun not found"):
        run_experiment(specs, tmp_path / "runs", executor="slurm")
    assert not (tmp_path / "runs").exists()


def _cluster_problem() -> str | None:
    """Why the real-SLURM test cannot run here (None when a node is up)."""
    missing = [tool for tool in ("sbatch", "srun", "squeue", "sinfo", "scontrol") if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} not on PATH: no SLURM here (.ci/run installs slurm-wlm and munge and starts a "
                "one-node cluster with .ci/start_slurm.sh)")
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install 'vcpred[slurm]')"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo does not answer ({exc})"
    if states.returncode != 0 or not re.search(r"^(idle|mix|alloc)", states.stdout, flags=re.MULTILINE):
        return (f"no SLURM node is up (sinfo: {(states.stdout + states.stderr).strip() or 'nothing'}); as root, "
                ".ci/start_slurm.sh starts a one-node cluster")
    return None


def _job_states(job_id: str) -> dict[str, str]:
    """Every task of a job array as scontrol shows it: {'12_0': 'COMPLETED', ...}."""
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout
    states = {}
    for block in out.strip().split("\n\n"):
        fields = dict(re.findall(r"(\w+)=(\S+)", block))
        task = f"{fields.get('ArrayJobId', fields.get('JobId'))}_{fields.get('ArrayTaskId', '')}"
        states[task] = fields.get("JobState", "?")
    return states


def _logs(folder) -> str:
    """The jobs' logs, for a failure's message (why a job failed is in its log, not in vcpred's output)."""
    return "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(folder.glob("*_log.*")))


@pytest.mark.slow
def test_a_tiny_experiment_runs_as_slurm_jobs(tiny, tmp_path, capsys):
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    path = write_experiment(tiny, tmp_path, [CLIN, CNN])
    runs = tmp_path / "runs"
    argv = ["experiment", str(path), "--out", str(runs), "--executor", "slurm",
            "--slurm-params", "{timeout_min: 15, cpus_per_task: 1, mem_gb: 2}"]
    status = main(argv)
    captured = capsys.readouterr()
    out = captured.out
    assert status == 0, captured.out + captured.err + _logs(runs / "slurm")
    assert "runs: 6 trained, 0 already finished (skipped), 0 failed" in out
    job = re.search(r"submitted 6 run\(s\) as a job array \(SLURM job (\d+)\)", out)
    assert job, out
    specs = load_experiment(path)
    assert all(is_finished(s.run_dir(runs)) for s in specs)
    assert len(json.loads((runs / "experiment_status.json").read_text())["done"]) == 6
    # the runs ran as the array's tasks on the cluster (submitit's SLURM job environment), and ended COMPLETED
    # (a task writes its result, then exits: SLURM may still show it RUNNING for a moment)
    deadline = time.monotonic() + 120
    while set((states := _job_states(job.group(1))).values()) & {"PENDING", "RUNNING", "COMPLETING"} \
            and time.monotonic() < deadline:
        time.sleep(1)
    assert sorted(states) == [f"{job.group(1)}_{k}" for k in range(6)] and set(states.values()) == {"COMPLETED"}, states
    logs = sorted((runs / "slurm").glob(f"{job.group(1)}_*_log.out"))
    assert len(logs) == 6 and all("Job completed successfully" in p.read_text() for p in logs)
    assert all(f"job_id={job.group(1)}_" in p.read_text() for p in logs)
    # finished runs are skipped: nothing is submitted again
    assert main(argv) == 0
    assert "6 run(s) already finished: skipped" in capsys.readouterr().out


def test_the_ci_script_installs_and_starts_slurm():
    """.ci/run installs slurm-wlm and munge like r-cran-proc (a failure warns, the test skips) and starts
    the one-node cluster; the script is executable and writes slurm.conf only where none of another exists."""
    root = os.path.join(os.path.dirname(__file__), "..", ".ci")
    run = open(os.path.join(root, "run")).read()
    start = os.path.join(root, "start_slurm.sh")
    assert "slurm-wlm munge" in run and "start_slurm.sh" in run and "SLURM tests will skip" in run
    assert os.access(start, os.X_OK)
    script = open(start).read()
    assert "exists and was not written by this script: using it as it is" in script


def test_pending_array_tasks_are_seen_as_pending_not_gone():
    """CI: squeue lists an array's pending tasks on one line ('31_[2-5]|PENDING'), so vcpred read the
    tasks waiting for a free CPU as no longer known to SLURM and failed them after the grace period
    whenever the running tasks took over a minute."""
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    from vcpred.experiment.executor import _squeue_states

    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True).stdout.split("/")[-1])
    tasks = cpus + 3  # more tasks than CPUs: some must wait
    submitted = subprocess.run(["sbatch", "--parsable", f"--array=0-{tasks - 1}", "-c", "1", "-o", "/dev/null",
                                "--wrap", "sleep 30"], capture_output=True, text=True, timeout=30)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    try:
        states = _squeue_states([f"{job_id}_{k}" for k in range(tasks)])
        assert states is not None
        assert sorted(states) == sorted(f"{job_id}_{k}" for k in range(tasks)), states
        assert "PENDING" in states.values(), states
    finally:
        subprocess.run(["scancel", job_id], timeout=30)

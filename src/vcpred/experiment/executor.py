"""Running an experiment's runs: skip finished ones, keep going past failures, local or SLURM.

`local` runs in this process (jobs=1) or in N worker processes; `slurm` submits one job array
through submitit (the `slurm` extra) to SLURM, named explicitly: without `sbatch` and `srun` on PATH
it is an error before anything is written, never a silent fall back to this machine. Pre-trained
weights every configuration still to train needs are checked before the first run. Every run writes its own dir; finished dirs are skipped, so
an interrupted experiment resumes where it stopped.

A run counts as finished only for the same inputs (vcpred.training.run.run_state: resolved
configuration, splits file, manifest, prepared store, and outputs that still have their recorded
sha256). A finished run whose inputs changed, or whose files are damaged, is *stale*: by default
the experiment refuses before training anything and lists the stale runs with the reason (their
results are not replaced behind the researcher's back); with `retrain_stale` (--retrain-stale) they
are trained again. A run dir another process is training (its lock is held) is skipped and
reported, never trained twice. RUNS/experiment_status.json is rewritten from the runs on disk at
the end of every experiment, also an interrupted one, under a lock.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path

from vcpred import console
from vcpred.errors import ConfigError, VcpredError
from vcpred.experiment.grid import RunSpec
from vcpred.experiment.preflight import check_slurm, check_store, check_weights
from vcpred.hashing import atomic_write
from vcpred.workers import worker_pool

STATUS_FILE = "experiment_status.json"
STATUS_LOCK = ".experiment_status.lock"
MAX_LISTED = 5


class StaleRuns(VcpredError):
    """Finished runs whose inputs changed (or whose files are damaged), and retraining was not asked for."""


def run_one(spec: RunSpec, runs: str, threads: int = 0, retrain_stale: bool = False) -> tuple[str, str]:
    """Train one run unless it is finished; returns (status, message): 'done', 'skipped' (finished
    meanwhile), 'held' (another process is training it), 'stale' or 'failed'. Never raises: a failed
    run must not stop the rest."""
    from vcpred.locking import Busy
    from vcpred.training import run as run_module  # imported in the worker process
    import torch

    if threads:
        torch.set_num_threads(threads)
    run_dir = spec.run_dir(Path(runs))
    try:
        return run_module.ensure_run(spec.config, spec.split, run_dir, retrain_stale=retrain_stale), ""
    except Busy as exc:
        return "held", str(exc)
    except run_module.StaleRun as exc:
        return "stale", str(exc)
    except VcpredError as exc:
        return "failed", str(exc)
    except Exception as exc:  # a bug, but the other runs still deserve to run
        return "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"


@dataclass
class ExperimentSummary:
    done: list[str]
    skipped: list[str]
    failed: dict[str, str]
    held: list[str] = field(default_factory=list)  # being trained by another process: left to it
    retrained: dict[str, str] = field(default_factory=dict)  # stale runs trained again -> why they were stale

    def lines(self) -> list[str]:
        stale = f" ({len(self.retrained)} stale: {_reasons(self.retrained)})" if self.retrained else ""
        held = f", {len(self.held)} being trained by another process (left to it)" if self.held else ""
        out = [f"runs: {len(self.done)} trained{stale}, {len(self.skipped)} already finished (skipped){held}, "
               f"{len(self.failed)} failed"]
        out += [f"  failed {name}: {message.splitlines()[0] if message else ''}" for name, message in self.failed.items()]
        return out


def _listing(labels: list[str]) -> str:
    more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
    return ", ".join(labels[:MAX_LISTED]) + more


def _reasons(stale: dict[str, str]) -> str:
    """The distinct reasons, most common first: 'configuration changed (...)'."""
    counts: dict[str, int] = {}
    for reason in stale.values():
        counts[reason] = counts.get(reason, 0) + 1
    return "; ".join(sorted(counts, key=lambda r: -counts[r]))


def _stale_error(stale: dict[str, str], runs: Path) -> StaleRuns:
    groups: dict[str, list[str]] = {}
    for label, reason in stale.items():
        groups.setdefault(reason, []).append(label)
    listing = "; ".join(f"{_listing(labels)}: {reason}" for reason, labels in groups.items())
    return StaleRuns(f"{len(stale)} finished run(s) under {runs} no longer match their inputs or files, so they are "
                     f"not reused: {listing}; pass --retrain-stale to train them again (their earlier results are "
                     "replaced), or restore the inputs they were trained on (vcpred --debug experiment ... lists "
                     "every run)")


class _Planner:
    """Run states for many specs, sharing the fingerprints of their inputs (one manifest read and one
    hash per file, not per run)."""

    def __init__(self) -> None:
        self._ids: dict[str, list[str]] = {}

    def patient_ids(self, spec: RunSpec) -> list[str]:
        from vcpred.cohort import load_manifest

        key = str(spec.config.manifest)
        if key not in self._ids:
            self._ids[key] = load_manifest(spec.config.manifest, check_files=False).ids()
        return self._ids[key]

    def state(self, spec: RunSpec, runs: Path):
        from vcpred.training.run import input_fingerprint, resolved, run_state

        run_dir = spec.run_dir(runs)
        if not (run_dir / "config.yaml").is_file():
            return run_state(run_dir, spec.config, dict)  # missing: no fingerprint needed
        config = resolved(spec.config)
        return run_state(run_dir, config, lambda: input_fingerprint(config, self.patient_ids(spec)))


def run_experiment(specs: list[RunSpec], runs: str | Path, *, executor: str = "local", jobs: int = 1,
                   slurm_folder: str | Path | None = None, slurm_params: dict | None = None,
                   submitit_cluster: str | None = None, retrain_stale: bool = False) -> ExperimentSummary:
    if executor not in ("local", "slurm"):
        raise ConfigError(f"executor must be 'local' or 'slurm', got {executor!r}")
    if executor == "slurm" and submitit_cluster in (None, "slurm"):
        check_slurm()  # before anything is written; never a silent fall back to this machine
    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    planner = _Planner()
    states = {s.label: planner.state(s, runs) for s in specs}
    skipped = [label for label, state in states.items() if state.state == "finished"]
    stale = {label: state.reason for label, state in states.items() if state.state == "stale"}
    for label, reason in stale.items():
        console.log.debug(f"{label}: {reason}")
    if stale and not retrain_stale:
        _write_status(runs, specs, planner, {}, states)
        raise _stale_error(stale, runs)
    todo = [s for s in specs if states[s.label].state != "finished"]
    check_weights(todo)  # every configuration still to train, before the first run
    check_store(todo)  # every patient the image runs read is prepared
    if skipped:
        console.say(f"{len(skipped)} run(s) already finished: skipped")
    if stale:
        console.say(f"{len(stale)} stale run(s) will be trained again: {_reasons(stale)}")
    results: dict[str, tuple[str, str]] = {}
    try:
        if executor == "local":
            _run_local(todo, runs, jobs, retrain_stale, results)
        else:
            results.update(_run_submitit(todo, runs, slurm_folder or runs / "slurm", slurm_params or {},
                                         submitit_cluster, retrain_stale))
    finally:
        _write_status(runs, specs, planner, results, states)
    summary = ExperimentSummary([k for k, (s, _) in results.items() if s == "done"],
                                skipped + [k for k, (s, _) in results.items() if s == "skipped"],
                                {k: m for k, (s, m) in results.items() if s in ("failed", "stale")},
                                [k for k, (s, _) in results.items() if s == "held"])
    summary.retrained = {k: stale[k] for k in summary.done if k in stale}
    return summary


def _run_local(todo: list[RunSpec], runs: Path, jobs: int, retrain_stale: bool,
               results: dict[str, tuple[str, str]]) -> None:
    """Fills results as runs end, so an interrupted experiment still reports the ones that did."""
    if jobs <= 1:
        for spec in console.progress(todo, total=len(todo), desc="runs"):
            results[spec.label] = run_one(spec, str(runs), 0, retrain_stale)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with worker_pool(jobs) as pool:
        futures = {pool.submit(run_one, spec, str(runs), threads, retrain_stale): spec for spec in todo}
        for future in console.progress(as_completed(futures), total=len(futures), desc="runs"):
            results[futures[future].label] = future.result()


def _run_submitit(todo, runs, folder, params, cluster, retrain_stale) -> dict[str, tuple[str, str]]:
    """One job array through submitit. cluster None means SLURM, named explicitly (cluster='slurm'):
    submitit's auto-detection would fall back to running the jobs on this machine. Tests may pass
    'local' or 'debug' to run the same path without SLURM."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("the slurm executor needs submitit: pip install 'vcpred[slurm]'") from None
    if not todo:
        return {}
    cluster = cluster or "slurm"
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        executor.update_parameters(**params)
    except (ValueError, TypeError, RuntimeError) as exc:  # unknown --slurm-params, no srun
        raise ConfigError(f"--executor slurm: {exc}") from None
    try:
        jobs = executor.map_array(run_one, todo, [str(runs)] * len(todo), [0] * len(todo),
                                  [retrain_stale] * len(todo))
    except Exception as exc:  # sbatch refused the array (partition, limits, controller down)
        raise VcpredError(f"--executor slurm: submitting {len(todo)} run(s) failed, nothing was trained: "
                          f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}; the "
                          f"submission files are in {folder}") from None
    if cluster == "slurm":
        _without_sacct(jobs)
    ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
    where = f"SLURM job {', '.join(ids)}" if cluster == "slurm" else f"submitit's {cluster} executor"
    console.say(f"submitted {len(jobs)} run(s) as a job array ({where}); logs in {folder}")
    return _wait({spec.label: job for spec, job in zip(todo, jobs)}, folder, slurm=cluster == "slurm")


ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "REVOKED", "TIMEOUT"}
POLL_S, GRACE_S = 3.0, 60.0  # a result file may appear a little after SLURM says the job ended (shared file systems)


def _squeue_states(job_ids: list[str]) -> dict[str, str] | None:
    """{task id '123_4': state} of the jobs SLURM still knows (None when squeue does not answer).
    `-r` lists each array task on its own line: without it an array's pending tasks share one line
    ('123_[2-5]') and would read as no longer known."""
    import subprocess

    arrays = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(arrays)], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return dict(line.split("|", 1) for line in out.stdout.split() if "|" in line)


def _outcome(job, folder) -> tuple[str, str]:
    try:
        return job.result()
    except Exception as exc:  # the job died outside run_one (timeout, node failure, out of memory)
        message = str(exc).strip().splitlines()
        return "failed", f"SLURM job {job.job_id} failed: {message[-1] if message else type(exc).__name__}; log in {folder}"


def _wait(jobs: dict, folder, *, slurm: bool) -> dict[str, tuple[str, str]]:
    """Every job's (status, message) as jobs end. A job is done when its result file exists (or sacct
    says so); on SLURM, a job that squeue reports ended, or no longer knows, without a result file
    after a grace period is failed, so a cluster without accounting (no sacct) never waits forever."""
    pending, results, ended_since = dict(jobs), {}, {}
    try:
        _poll(pending, results, ended_since, folder, slurm)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the jobs still queued or running are cancelled, not left behind
        for job in pending.values():
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 (best effort while stopping)
                pass
        raise
    return results


def _poll(pending: dict, results: dict, ended_since: dict, folder, slurm: bool) -> None:
    while pending:
        for label, job in list(pending.items()):
            if job.done():
                results[label] = _outcome(job, folder)
                del pending[label]
        if not pending:
            break
        states = _squeue_states([str(j.job_id) for j in pending.values()]) if slurm else None
        now = time.monotonic()
        for label, job in list(pending.items()):
            state = None if states is None else states.get(str(job.job_id), "GONE")
            if state is None or (state.split()[0] not in ENDED and state != "GONE"):
                ended_since.pop(label, None)
                continue
            if now - ended_since.setdefault(label, now) > GRACE_S:
                why = "is no longer known to SLURM" if state == "GONE" else f"ended {state}"
                results[label] = ("failed", f"SLURM job {job.job_id} {why} without a result; its log is in {folder}")
                del pending[label]
        time.sleep(POLL_S)


def _without_sacct(jobs: list) -> None:
    """submitit reads job states with `sacct`, which fails where SLURM accounting is not enabled (it then
    prints an error and warns on every poll). When a probe fails, its state reader is switched off:
    results are read from the jobs' result files, failures from squeue (_wait)."""
    import subprocess

    try:
        probe = subprocess.run(["sacct", "-n", "-j", str(jobs[0].job_id).split("_")[0]], capture_output=True,
                               timeout=60)
        if probe.returncode == 0:
            return
    except (OSError, subprocess.TimeoutExpired):
        pass
    console.warn("sacct does not answer here (SLURM accounting not enabled?): vcpred reads the jobs' result files "
                 "and squeue instead")
    watcher = getattr(jobs[0], "watcher", None)
    if watcher is not None and hasattr(watcher, "_make_command"):
        watcher._make_command = lambda: None  # submitit's shared watcher: no sacct calls


# --- the status file ------------------------------------------------------------------------------


def _write_status(runs: Path, specs: list[RunSpec], planner: _Planner, results: dict[str, tuple[str, str]],
                  states: dict) -> None:
    """RUNS/experiment_status.json from the runs on disk: done (finished, current inputs), failed
    (with the error, also one another experiment recorded, while the run is not finished), running
    (another process holds its lock), stale, pending (not trained yet)."""
    from vcpred.locking import recorded_holder, waiting
    from vcpred.training.run import run_lock_path

    try:
        with waiting(runs / STATUS_LOCK):
            earlier = _read_status(runs / STATUS_FILE)
            status: dict = {"done": [], "failed": {}, "running": [], "stale": {}, "pending": []}
            for spec in specs:
                label = spec.label
                outcome, message = results.get(label, ("", ""))
                if outcome in ("done", "skipped") or (not outcome and states[label].state == "finished"):
                    status["done"].append(label)
                    continue
                if outcome in ("failed", "stale"):
                    status["failed"][label] = message
                    continue
                state = _state_now(spec, runs, planner)
                if state.state == "finished":
                    status["done"].append(label)
                elif recorded_holder(run_lock_path(spec.run_dir(runs))):
                    status["running"].append(label)
                elif state.state == "stale":
                    status["stale"][label] = state.reason
                elif label in earlier.get("failed", {}):
                    status["failed"][label] = earlier["failed"][label]
                else:
                    status["pending"].append(label)
            status["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
            atomic_write(runs / STATUS_FILE, lambda tmp: tmp.write_text(json.dumps(status, indent=1) + "\n"))
    except OSError as exc:
        console.warn(f"could not write {runs / STATUS_FILE}: {exc.strerror or exc}")


def _state_now(spec: RunSpec, runs: Path, planner: _Planner):
    from vcpred.training.run import RunState

    try:
        return planner.state(spec, runs)
    except VcpredError as exc:
        return RunState("stale", str(exc))


def _read_status(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("failed", {}), dict) else {}


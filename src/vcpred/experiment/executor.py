"""Running an experiment's runs: skip finished ones, keep going past failures, local or SLURM.

`local` runs in this process (jobs=1) or in N worker processes; `slurm` submits one job array
through submitit (the `slurm` extra). Every run writes its own dir; finished dirs are skipped, so
an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path


from vcpred import console
from vcpred.errors import ConfigError, VcpredError
from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.runs import unfinished_reason
from vcpred.experiment.grid import RunSpec

STATUS_FILE = "experiment_status.json"


def is_finished(run_dir: Path) -> bool:
    """Finished by the rule evaluate uses; a broken config.yaml means the run is redone."""
    try:
        return unfinished_reason(run_dir) is None
    except EvaluationError:
        return False


def run_one(spec: RunSpec, runs: str, threads: int = 0) -> tuple[str, str]:
    """Train one run; returns (status, message). Never raises: a failed run must not stop the rest."""
    from vcpred.training.run import train_run  # imported in the worker process
    import torch

    if threads:
        torch.set_num_threads(threads)
    run_dir = spec.run_dir(Path(runs))
    try:
        train_run(spec.config, spec.split, run_dir, force=True)
        return "done", ""
    except VcpredError as exc:
        return "failed", str(exc)
    except Exception as exc:  # a bug, but the other runs still deserve to run
        return "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"


@dataclass
class ExperimentSummary:
    done: list[str]
    skipped: list[str]
    failed: dict[str, str]

    def lines(self) -> list[str]:
        out = [f"runs: {len(self.done)} trained, {len(self.skipped)} already finished (skipped), "
               f"{len(self.failed)} failed"]
        out += [f"  failed {name}: {message.splitlines()[0] if message else ''}" for name, message in self.failed.items()]
        return out


def _label(spec: RunSpec) -> str:
    return f"{spec.name}/split-{spec.split:02d}"


def run_experiment(specs: list[RunSpec], runs: str | Path, *, executor: str = "local", jobs: int = 1,
                   slurm_folder: str | Path | None = None, slurm_params: dict | None = None,
                   submitit_cluster: str | None = None) -> ExperimentSummary:
    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    todo = [s for s in specs if not is_finished(s.run_dir(runs))]
    skipped = [_label(s) for s in specs if s not in todo]
    if skipped:
        console.say(f"{len(skipped)} run(s) already finished: skipped")
    if executor == "local":
        results = _run_local(todo, runs, jobs)
    elif executor == "slurm":
        results = _run_submitit(todo, runs, slurm_folder or runs / "slurm", slurm_params or {}, submitit_cluster)
    else:
        raise ConfigError(f"executor must be 'local' or 'slurm', got {executor!r}")
    summary = ExperimentSummary([k for k, (s, _) in results.items() if s == "done"], skipped,
                                {k: m for k, (s, m) in results.items() if s != "done"})
    (runs / STATUS_FILE).write_text(json.dumps({"done": summary.done, "skipped": summary.skipped,
                                                "failed": summary.failed}, indent=1) + "\n")
    return summary


def _run_local(todo: list[RunSpec], runs: Path, jobs: int) -> dict[str, tuple[str, str]]:
    results = {}
    if jobs <= 1:
        for spec in console.progress(todo, total=len(todo), desc="runs"):
            results[_label(spec)] = run_one(spec, str(runs))
        return results
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, spec, str(runs), threads): spec for spec in todo}
        for future in console.progress(as_completed(futures), total=len(futures), desc="runs"):
            results[_label(futures[future])] = future.result()
    return results


def _run_submitit(todo, runs, folder, params, cluster) -> dict[str, tuple[str, str]]:
    try:
        import submitit
    except ImportError:
        raise ConfigError("the slurm executor needs submitit: pip install 'vcpred[slurm]'") from None
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(**params)
    jobs = executor.map_array(run_one, todo, [str(runs)] * len(todo))
    console.say(f"submitted {len(jobs)} run(s) as a job array; logs in {folder}")
    return {_label(spec): job.result() for spec, job in zip(todo, jobs)}

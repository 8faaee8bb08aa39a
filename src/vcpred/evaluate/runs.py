"""Reading a RUNS folder: one run dir per (configuration, split), each with config.yaml and
predictions.csv (the contract in docs/evaluation.md). Tables are validated row by row.

Nothing is trusted silently: a run's files must still have the sha256 its config.yaml recorded
when it finished (`outputs`), and the runs read together must have been trained on one splits
file, manifest and prepared store, still the ones found where the runs record them
(vcpred.training.run_inputs: refused when changed, a note when not found). Runs that record no
output hashes (another tool's, or an earlier vcpred's) are read unverified, and said so."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from vcpred import console
from vcpred.cohort.splits import recorded_held_out_sites
from vcpred.evaluate.errors import EvaluationError
from vcpred.runs import (
    RunRecord,
    read_finished,
    read_predictions,
    run_dirs,
    run_label,
    verify_outputs,
)
from vcpred.training.run_inputs import check_run_inputs

MAX_LISTED = 8  # runs listed in one message
READ_BY_EVALUATE = ("predictions.csv", "metrics.json")  # the run outputs evaluate and report read


@dataclass
class Run:
    """One finished run; predictions has the contract's columns with label as float (NaN = unlabelled)."""

    configuration: str
    split: int
    clinical_columns: list[str]
    path: Path
    predictions: pd.DataFrame
    n_train: int  # training patients of this split (the corrected resampled t-test needs n_val / n_train)
    held_out_site: str | None = None  # the development site it validated on (leave-one-site-out splits)

    @property
    def n_validation(self) -> int:
        return int(self.predictions.loc[self.predictions["set"] == "validation", "patient_id"].nunique())

    @property
    def clinical(self) -> bool:
        return bool(self.clinical_columns)


@dataclass
class RunsFolder:
    runs: list[Run]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run dir, reason)


def read_runs(root: str | Path) -> RunsFolder:
    """Every finished run under root/<configuration>/split-<KK>/; unfinished ones are listed as skipped."""
    root = Path(root)
    if not root.is_dir():
        raise EvaluationError(f"runs folder {root} does not exist or is not a folder; pass the "
                              "folder that holds <configuration>/split-<KK>/ run dirs")
    skipped, records, unverified = [], [], []
    sites: dict[Path, tuple[str | None, ...]] = {}  # splits file -> its held-out sites, read once
    for run_dir in run_dirs(root):
        record, reason = read_finished(run_dir)
        if reason:
            skipped.append((str(run_dir), reason))
            continue
        if not verify_outputs(run_dir, record.raw, READ_BY_EVALUATE):
            unverified.append(run_label(run_dir))
        records.append(record)
    warn_unverified(unverified)
    check_run_inputs(records)  # the manifest, store and splits file they trained on, before any is read
    runs = [replace(read_run(record), held_out_site=held_out_site(record, sites)) for record in records]
    if not runs:
        found = f"; {len(skipped)} unfinished run dir(s) skipped" if skipped else ""
        raise EvaluationError(f"no finished runs under {root} (expected <configuration>/split-<KK>/"
                              f" with config.yaml 'status: done' and predictions.csv){found}")
    _check_consistent(runs)
    return RunsFolder(sorted(runs, key=lambda r: (r.configuration, r.split)), skipped)


def warn_unverified(labels: list[str]) -> None:
    """Say (stdout) which runs record no output hashes: written by another tool (the contract needs
    only config.yaml's configuration, split, clinical_columns and patients) or an earlier vcpred."""
    if labels:
        more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
        console.say(f"note: {len(labels)} run(s) record no output hashes (written by another tool or an earlier "
                    f"vcpred), so their files are read unverified: {', '.join(labels[:MAX_LISTED])}{more}")


def read_run(record: RunRecord) -> Run:
    """A finished run with its validated predictions table."""
    if record.n_train is None:
        raise EvaluationError(f"{record.path / 'config.yaml'}: 'patients: {{train: N}}' (the number of training "
                              f"patients) is missing or not a positive integer, got {record.patients.get('train')!r}; "
                              "runs written by an earlier vcpred lack it and must be trained again")
    table = read_predictions(record.path / "predictions.csv", split=record.split)
    return Run(record.configuration, record.split, list(record.clinical_columns), record.path, table, record.n_train)


def held_out_site(record: RunRecord, read: dict[Path, tuple[str | None, ...]]) -> str | None:
    """The development site a run validated on, when its splits file (still on disk) holds
    leave-one-site-out splits; `read` caches each file's sites."""
    if record.trained is None:
        return None
    path = Path(record.trained.splits)
    if path not in read:
        read[path] = recorded_held_out_sites(path)
    sites = read[path]
    return sites[record.split] if 0 <= record.split < len(sites) else None


def _check_consistent(runs: list[Run]) -> None:
    """The same clinical columns in every split of a configuration."""
    by_config: dict[str, list[str]] = {}
    for run in runs:
        first = by_config.setdefault(run.configuration, run.clinical_columns)
        if sorted(first) != sorted(run.clinical_columns):
            raise EvaluationError(f"{run.path / 'config.yaml'}: clinical_columns {run.clinical_columns} "
                                  f"differ from other splits of {run.configuration!r} ({first})")

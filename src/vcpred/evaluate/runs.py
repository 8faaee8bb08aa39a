"""Reading a RUNS folder: one run dir per (configuration, split), each with config.yaml and
predictions.csv (the contract in docs/evaluation.md). Tables are validated row by row.

Nothing is trusted silently: a run's files must still have the sha256 its config.yaml recorded
when it finished (`outputs`), and the runs read together must have been trained on one splits
file and one manifest (`splits_sha256`, `manifest_sha256`), which must still be the files on disk
where those exist. Runs that record no output hashes (another tool's, or an earlier vcpred's) are
read unverified, and said so."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vcpred import console
from vcpred.evaluate.errors import EvaluationError
from vcpred.hashing import sha256_file

COLUMNS = ("patient_id", "set", "split", "frame_offset", "probability", "label")
SETS = ("validation", "external")
SPLIT_DIR = re.compile(r"^split-(\d+)$")
MAX_LISTED = 8  # problems listed in one error message
READ_BY_EVALUATE = ("predictions.csv", "metrics.json")  # the run outputs evaluate and report read
RETRAIN = "train the run again (`vcpred experiment CONFIG --out RUNS --retrain-stale`, or `vcpred train ... --force`)"


@dataclass
class Run:
    """One finished run; predictions has COLUMNS with label as float (NaN = unlabelled)."""

    configuration: str
    split: int
    clinical_columns: list[str]
    path: Path
    predictions: pd.DataFrame
    n_train: int  # training patients of this split (the corrected resampled t-test needs n_val / n_train)

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
    runs, skipped, configs, unverified = [], [], [], []
    for run_dir in sorted(p for p in root.glob("*/split-*") if p.is_dir() and SPLIT_DIR.match(p.name)):
        reason = unfinished_reason(run_dir)
        if reason:
            skipped.append((str(run_dir), reason))
            continue
        config = load_run_config(run_dir / "config.yaml")
        if not verify_outputs(run_dir, config, READ_BY_EVALUATE):
            unverified.append(run_label(run_dir))
        configs.append((run_dir, config))
        runs.append(read_run(run_dir))
    warn_unverified(unverified)
    check_inputs(configs)
    if not runs:
        found = f"; {len(skipped)} unfinished run dir(s) skipped" if skipped else ""
        raise EvaluationError(f"no finished runs under {root} (expected <configuration>/split-<KK>/"
                              f" with config.yaml 'status: done' and predictions.csv){found}")
    _check_consistent(runs)
    return RunsFolder(sorted(runs, key=lambda r: (r.configuration, r.split)), skipped)


def unfinished_reason(run_dir: Path) -> str | None:
    """Why a run dir is not a finished run (None when it is): the one rule for evaluate, experiment, export."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return "no config.yaml"
    status = load_run_config(config_path).get("status")
    if status != "done":
        return f"status is {status!r}, not 'done'"
    if not (run_dir / "predictions.csv").is_file():
        return "no predictions.csv"
    return None


def load_run_config(path: Path) -> dict:
    """A run's config.yaml as a mapping; EvaluationError naming the file when it is not one."""
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise EvaluationError(f"{path} is not valid YAML ({detail}); {RETRAIN}, or remove the run dir") from None
    except OSError as exc:
        raise EvaluationError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not isinstance(config, dict):
        raise EvaluationError(f"{path} must be a YAML mapping with configuration, split, clinical_columns")
    return config


def run_label(run_dir: Path) -> str:
    return f"{run_dir.parent.name}/{run_dir.name}"


def output_problems(run_dir: Path, config: dict, names: tuple[str, ...] | None = None) -> list[str] | None:
    """What differs from the output hashes config.yaml recorded when the run finished ('FILE is
    missing' / 'FILE changed'), for the files `names` (default: all recorded); None when the run
    records no hashes (finished by an earlier vcpred)."""
    outputs = config.get("outputs")
    if not isinstance(outputs, dict):
        return None
    problems = []
    for name, digest in sorted(outputs.items()):
        if names is not None and name not in names:
            continue
        path = run_dir / str(name)
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{path} changed since the run finished")
    return problems


def verify_outputs(run_dir: Path, config: dict, names: tuple[str, ...] | None = None) -> bool:
    """True when the files are the ones the run wrote; False when it recorded no hashes (earlier
    vcpred); EvaluationError naming the files otherwise."""
    problems = output_problems(run_dir, config, names)
    if problems:
        raise EvaluationError(f"{'; '.join(problems)} (sha256 differs from its config.yaml): the file is damaged "
                              f"or was edited; {RETRAIN}")
    return problems is not None


def warn_unverified(labels: list[str]) -> None:
    """Say (stdout) which runs record no output hashes: written by another tool (the contract needs
    only config.yaml's configuration, split, clinical_columns and patients) or an earlier vcpred."""
    if labels:
        more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
        console.say(f"note: {len(labels)} run(s) record no output hashes (written by another tool or an earlier "
                    f"vcpred), so their files are read unverified: {', '.join(labels[:MAX_LISTED])}{more}")


INPUT_FILES = (("splits_sha256", "splits", "splits file"), ("manifest_sha256", "manifest", "manifest"))


def _grouped(labels: list[str]) -> str:
    more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
    return ", ".join(labels[:MAX_LISTED]) + more


def check_inputs(items: list[tuple[Path, dict]]) -> None:
    """The runs read together were trained on one splits file and one manifest (by their recorded
    sha256), which are still the files on disk where those exist; EvaluationError listing the runs."""
    digests: dict[str, str] = {}
    for key, path_key, what in INPUT_FILES:
        by_digest: dict[str, list[str]] = {}
        for run_dir, config in items:
            if isinstance(config.get(key), str):
                by_digest.setdefault(config[key], []).append(run_label(run_dir))
        if len(by_digest) > 1:
            groups = "; ".join(f"{_grouped(labels)} (sha256 {digest[:12]}...)" for digest, labels in by_digest.items())
            raise EvaluationError(f"these runs were trained on different {what}s: {groups}; runs are compared on the "
                                  f"same patients, so read runs of one {what} together: train the others again "
                                  "(`vcpred experiment CONFIG --out RUNS --retrain-stale`) or move them to another "
                                  "RUNS folder")
        changed: dict[str, list[str]] = {}
        for run_dir, config in items:
            recorded = config.get(key)
            path = (config.get("config") or {}).get(path_key) if isinstance(config.get("config"), dict) else None
            if not isinstance(recorded, str) or not isinstance(path, str) or not Path(path).is_file():
                continue
            if path not in digests:
                digests[path] = sha256_file(path)
            if digests[path] != recorded:
                changed.setdefault(path, []).append(run_label(run_dir))
        for path, labels in changed.items():
            raise EvaluationError(f"the {what} {path} changed since these runs were trained on it (its sha256 "
                                  f"differs from their config.yaml): {_grouped(labels)}; train them again "
                                  "(`vcpred experiment CONFIG --out RUNS --retrain-stale`) or restore the file")


def read_run(run_dir: Path) -> Run:
    """A finished run dir, validated against its folder name; EvaluationError naming the file otherwise."""
    config_path = run_dir / "config.yaml"
    config = load_run_config(config_path)
    name, split, clinical = config.get("configuration"), config.get("split"), config.get("clinical_columns")
    if not isinstance(name, str) or not name:
        raise EvaluationError(f"{config_path}: 'configuration' must be a non-empty string, got {name!r}")
    if isinstance(split, bool) or not isinstance(split, int):
        raise EvaluationError(f"{config_path}: 'split' must be an integer, got {split!r}")
    if not isinstance(clinical, list) or not all(isinstance(c, str) for c in clinical):
        raise EvaluationError(f"{config_path}: 'clinical_columns' must be a list of column names "
                              f"([] for an image-only model), got {clinical!r}")
    if name != run_dir.parent.name or split != int(SPLIT_DIR.match(run_dir.name).group(1)):
        raise EvaluationError(f"{config_path} says configuration {name!r}, split {split} but the run dir "
                              f"is {run_dir.parent.name}/{run_dir.name}; move the run dir or fix config.yaml")
    table = read_predictions(run_dir / "predictions.csv", split=split)
    return Run(name, split, list(clinical), run_dir, table, _training_patients(config, config_path))


def _training_patients(config: dict, config_path: Path) -> int:
    """patients.train from config.yaml (vcpred train writes it)."""
    patients = config.get("patients")
    count = patients.get("train") if isinstance(patients, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise EvaluationError(f"{config_path}: 'patients: {{train: N}}' (the number of training patients) is "
                              f"missing or not a positive integer, got {count!r}; runs written by an earlier "
                              "vcpred lack it and must be trained again")
    return count


def read_predictions(path: Path, *, split: int) -> pd.DataFrame:
    """predictions.csv validated: columns, sets, numbers, labels, one label per patient."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"{path} is not a readable CSV table ({exc})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise EvaluationError(f"{path}: missing column(s) {missing}; a predictions table needs {list(COLUMNS)}")
    if raw.empty:
        raise EvaluationError(f"{path} has no rows")
    problems: list[str] = []
    table = _parse_rows(raw, split, problems)
    if not problems:
        _check_patients(table, problems)
    if problems:
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise EvaluationError(f"{path}: {len(problems)} problem(s)\n  " +
                              "\n  ".join(problems[:MAX_LISTED]) + more)
    return table


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _parse_rows(raw: pd.DataFrame, split: int, problems: list[str]) -> pd.DataFrame:
    """Typed columns; each bad cell adds 'row N: ...' (N = CSV line, header = 1), in row order."""
    rows = raw.index.to_numpy() + 2
    pid = raw["patient_id"].str.strip()
    sets = raw["set"].str.strip().str.lower()
    split_col = raw["split"].map(_number)
    offset = raw["frame_offset"].map(_number)
    prob = raw["probability"].map(_number)
    label_text = raw["label"].str.strip()
    label = label_text.map(lambda t: math.nan if t == "" else _number(t))
    checks = [  # (bad mask, message for one row i)
        (pid == "", lambda i: "empty patient_id"),
        (~sets.isin(SETS), lambda i: f"set {raw['set'].iat[i]!r} must be 'validation' or 'external'"),
        (split_col != split, lambda i: f"split {raw['split'].iat[i]!r} differs from the run's split {split}"),
        (~(np.isfinite(offset) & (offset == offset.round())),
         lambda i: f"frame_offset {raw['frame_offset'].iat[i]!r} must be an integer"),
        (~prob.between(0.0, 1.0), lambda i: f"probability {raw['probability'].iat[i]!r} must be a number in [0, 1]"),
        ((label_text == "") & (sets == "validation"), lambda i: f"validation patient {pid.iat[i]!r} has no label"),
        ((label_text != "") & ~label.isin((0.0, 1.0)),
         lambda i: f"label {label_text.iat[i]!r} must be 0, 1 or empty (unlabelled external)"),
    ]
    found = [(i, message(i)) for mask, message in checks for i in np.flatnonzero(mask.to_numpy())]
    problems.extend(f"row {rows[i]}: {text}" for i, text in sorted(found, key=lambda f: f[0]))
    if problems:
        return raw
    return pd.DataFrame({"patient_id": pid, "set": sets, "split": split, "frame_offset": offset.astype(int),
                         "probability": prob.astype(float), "label": label.astype(float), "row": rows})


def _check_patients(table: pd.DataFrame, problems: list[str]) -> None:
    """One label and one set per patient, one row per frame, and the main frame present."""
    grouped = table.assign(label_key=table["label"].fillna(-1), main=table["frame_offset"] == 0
                           ).groupby("patient_id", sort=False)
    per_patient = grouped.agg(sets=("set", "nunique"), labels=("label_key", "nunique"), main=("main", "any"),
                              first_row=("row", "min"))
    rows_of = grouped["row"].agg(lambda r: r.tolist()[:4])
    for pid in per_patient.index[per_patient["sets"] > 1]:
        problems.append(f"rows {rows_of[pid]}: patient {pid!r} is in both validation and external; "
                        "a patient belongs to one set")
    for pid in per_patient.index[per_patient["labels"] > 1]:
        problems.append(f"rows {rows_of[pid]}: patient {pid!r} has different labels across rows")
    for pid in per_patient.index[~per_patient["main"]]:
        problems.append(f"rows {rows_of[pid]}: patient {pid!r} has no frame_offset 0 (the main frame)")
    duplicated = table[table.duplicated(["patient_id", "frame_offset"])]
    for _, row in duplicated.iterrows():
        problems.append(f"row {row['row']}: patient {row['patient_id']!r} has frame_offset "
                        f"{row['frame_offset']} twice")


def _check_consistent(runs: list[Run]) -> None:
    """The same clinical columns in every split of a configuration."""
    by_config: dict[str, list[str]] = {}
    for run in runs:
        first = by_config.setdefault(run.configuration, run.clinical_columns)
        if sorted(first) != sorted(run.clinical_columns):
            raise EvaluationError(f"{run.path / 'config.yaml'}: clinical_columns {run.clinical_columns} "
                                  f"differ from other splits of {run.configuration!r} ({first})")

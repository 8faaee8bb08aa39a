"""A run's config.yaml, parsed once into a typed RunRecord, and the rules about a run's state.

The contract needs only `configuration`, `split`, `clinical_columns` (and `patients: {train: N}`
for the corrected t-test) so that another tool's runs can be evaluated; vcpred's own runs add the
training config they were made from (`config`, parsed back into a TrainConfig), the environment,
the weights, the input fingerprint and the sha256 of every output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from vcpred.errors import ConfigError, RunError
from vcpred.hashing import sha256_file
from vcpred.runs.layout import run_dirs, split_of

if TYPE_CHECKING:
    from vcpred.models.spec import ModelSpec
    from vcpred.training.config import TrainConfig, TrainingParams

INPUT_KEYS = ("manifest", "store", "splits")  # the inputs a run records where they lie (`input_paths`)
RETRAIN = "train the run again (`vcpred experiment CONFIG --out RUNS --retrain-stale`, or `vcpred train ... --force`)"


def load_run_config(path: Path) -> dict:
    """A run's config.yaml as a mapping; RunError naming the file when it is not one."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise RunError(f"{path} is not valid YAML ({detail}); {RETRAIN}, or remove the run dir") from None
    except OSError as exc:
        raise RunError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not isinstance(config, dict):
        raise RunError(f"{path} must be a YAML mapping with configuration, split, clinical_columns")
    return config


def unfinished_reason(run_dir: Path) -> str | None:
    """Why a run dir is not a finished run (None when it is): the one rule for every stage."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return "no config.yaml"
    return _unfinished(run_dir, load_run_config(config_path))


def _unfinished(run_dir: Path, config: dict) -> str | None:
    status = config.get("status")
    if status != "done":
        return f"status is {status!r}, not 'done'"
    if not (run_dir / "predictions.csv").is_file():
        return "no predictions.csv"
    return None


def is_finished(run_dir: Path) -> bool:
    """Finished by `unfinished_reason`; a run dir whose config.yaml is broken is not."""
    try:
        return Path(run_dir).is_dir() and unfinished_reason(Path(run_dir)) is None
    except RunError:
        return False


def output_problems(run_dir: Path, config: dict, names: tuple[str, ...] | None = None, *,
                    since: str = "the run finished") -> list[str] | None:
    """What differs from the output hashes config.yaml recorded when the run finished ('FILE is
    missing' / 'FILE changed since ...'), for the files `names` (default: all recorded); None when the
    run records no hashes (finished by an earlier vcpred). Evaluate's sha256.json is checked the same
    way (`since`: when its hashes were taken)."""
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
            problems.append(f"{path} changed since {since}")
    return problems


def verify_outputs(run_dir: Path, config: dict, names: tuple[str, ...] | None = None) -> bool:
    """True when the files are the ones the run wrote; False when it recorded no hashes (earlier
    vcpred); RunError naming the files otherwise."""
    problems = output_problems(run_dir, config, names)
    if problems:
        raise RunError(f"{'; '.join(problems)} (sha256 differs from its config.yaml): the file is damaged "
                       f"or was edited; {RETRAIN}")
    return problems is not None


@dataclass(frozen=True)
class RunRecord:
    """What a finished run's config.yaml says, typed. `raw` is the whole mapping (provenance, hashes)."""

    path: Path  # the run dir
    configuration: str
    split: int
    clinical_columns: list[str]
    patients: dict[str, int]  # train / validation / external counts; {} when not recorded
    trained: TrainConfig | None  # the training config the run was made from (None: another tool's run),
    # its manifest, store and splits found where `input_paths` says (input_paths_of)
    raw: dict = field(repr=False)

    @property
    def input_paths(self) -> dict[str, str] | None:
        """Where the run recorded its manifest, store and splits file, relative to the run dir (None:
        an earlier vcpred, whose `config` paths are relative to the directory it was trained from)."""
        value = self.raw.get("input_paths")
        return value if isinstance(value, dict) and all(isinstance(value.get(k), str) for k in INPUT_KEYS) else None

    @property
    def n_train(self) -> int | None:
        count = self.patients.get("train")
        return count if isinstance(count, int) and not isinstance(count, bool) and count >= 1 else None

    @property
    def model(self) -> ModelSpec:
        return self._trained().model

    @property
    def training(self) -> TrainingParams:
        return self._trained().training

    @property
    def image(self) -> bool:
        """Whether the model reads images (a run without a training config: unknown, taken as yes)."""
        return self.trained.model.image if self.trained else True

    @property
    def manifest(self) -> Path:
        return self._trained().manifest

    @property
    def store(self) -> Path:
        return self._trained().store

    @property
    def splits(self) -> Path:
        return self._trained().splits

    @property
    def precision(self) -> str | None:
        """The precision it trained in (recorded by the run, else the one its config asked for)."""
        return self.raw.get("precision") or (self.trained.training.precision if self.trained else None)

    @property
    def weights(self) -> dict:
        return self._mapping("weights")

    @property
    def environment(self) -> dict:
        return self._mapping("environment")

    @property
    def parameters(self) -> dict:
        return self._mapping("parameters")

    @property
    def done(self) -> bool:
        """Whether config.yaml says `status: done` (finished also needs predictions.csv: read_finished)."""
        return self.raw.get("status") == "done"

    @property
    def inputs(self) -> dict | None:
        """The input fingerprint the run recorded (sha256 of its configuration, splits file, manifest
        and store); None when it recorded none (an earlier vcpred, another tool)."""
        value = self.raw.get("inputs")
        return value if isinstance(value, dict) else None

    @property
    def manifest_sha256(self) -> str | None:
        """The sha256 of the manifest the run trained on, as it recorded it (None: not recorded)."""
        value = self.raw.get("manifest_sha256")
        return value if isinstance(value, str) and value else None

    @property
    def training_data(self) -> dict | None:
        value = self.raw.get("training_data")
        return value if isinstance(value, dict) else None

    def _mapping(self, key: str) -> dict:
        value = self.raw.get(key)
        return value if isinstance(value, dict) else {}

    def _trained(self) -> TrainConfig:
        if self.trained is None:
            raise RunError(f"{self.path / 'config.yaml'} records no training config ('config'): written by "
                           "another tool, it can be evaluated but not exported, explained or reported on")
        return self.trained


def read_finished(run_dir: Path) -> tuple[RunRecord | None, str | None]:
    """(its record, None) for a finished run, (None, why it is not one) otherwise; config.yaml is
    read once for both."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return None, "no config.yaml"
    config = load_run_config(config_path)
    reason = _unfinished(run_dir, config)
    return (None, reason) if reason else (_record(run_dir, config), None)


def finished_records(runs: Path) -> list[RunRecord]:
    """The record of every finished run under RUNS (unfinished ones left out)."""
    return [record for record, _ in map(read_finished, run_dirs(runs)) if record is not None]


def written_by_training(run_dir: Path) -> bool:
    """Whether run_dir holds a finished run that vcpred training wrote (its config.yaml is a mapping
    with status done, configuration and environment): the output guard may then replace it."""
    try:
        config = load_run_config(run_dir / "config.yaml")
    except RunError:
        return False
    return config.get("status") == "done" and {"configuration", "environment"} <= set(config)


def recorded_loss(run_dir: Path) -> str | None:
    """The loss a run's metrics.json records (None when absent or unreadable)."""
    try:
        loss = json.loads((Path(run_dir) / "metrics.json").read_text()).get("loss")
    except (OSError, ValueError, AttributeError):
        return None
    return loss if isinstance(loss, str) and loss else None


def read_done(run_dir: Path) -> RunRecord | None:
    """The RunRecord of a run dir whose config.yaml says `status: done`, None when it says otherwise;
    whether its files are all there is for its recorded output hashes to say (output_problems), not
    for the predictions.csv rule of read_finished. RunError naming the file when it cannot be read."""
    config = load_run_config(run_dir / "config.yaml")
    return _record(run_dir, config) if config.get("status") == "done" else None


def read_record(run_dir: Path) -> RunRecord:
    """The RunRecord of a run dir, checked against its folder name; RunError naming the file otherwise."""
    return _record(run_dir, load_run_config(run_dir / "config.yaml"))


def _record(run_dir: Path, config: dict) -> RunRecord:
    config_path = run_dir / "config.yaml"
    name, split, clinical = config.get("configuration"), config.get("split"), config.get("clinical_columns")
    if not isinstance(name, str) or not name:
        raise RunError(f"{config_path}: 'configuration' must be a non-empty string, got {name!r}")
    if isinstance(split, bool) or not isinstance(split, int):
        raise RunError(f"{config_path}: 'split' must be an integer, got {split!r}")
    if not isinstance(clinical, list) or not all(isinstance(c, str) for c in clinical):
        raise RunError(f"{config_path}: 'clinical_columns' must be a list of column names "
                       f"([] for an image-only model), got {clinical!r}")
    if name != run_dir.parent.name or split != split_of(run_dir):
        raise RunError(f"{config_path} says configuration {name!r}, split {split} but the run dir "
                       f"is {run_dir.parent.name}/{run_dir.name}; move the run dir or fix config.yaml")
    patients = config.get("patients")
    return RunRecord(run_dir, name, split, list(clinical), dict(patients) if isinstance(patients, dict) else {},
                     _training_config(run_dir, config, config_path), config)


def input_paths_of(run_dir: Path, config: dict) -> dict[str, str]:
    """Where a run's manifest, store and splits file lie: as `input_paths` records them relative to the
    run dir (so runs, store and cohort may move together), else at the absolute path it was trained
    with when only that exists; {} for an earlier vcpred's run (its `config` paths, relative to the
    directory it was trained from, are used as before)."""
    recorded, section = config.get("input_paths"), config.get("config")
    if not isinstance(recorded, dict) or not isinstance(section, dict):
        return {}
    found = {}
    for key in INPUT_KEYS:
        if not isinstance(recorded.get(key), str):
            continue
        beside = (Path(run_dir) / recorded[key]).resolve()
        trained_with = Path(str(section.get(key, "")))
        found[key] = str(trained_with if not beside.exists() and trained_with.is_absolute() and trained_with.exists()
                         else beside)
    return found


def _training_config(run_dir: Path, config: dict, config_path: Path) -> TrainConfig | None:
    """The `config` section parsed back into the TrainConfig it was written from, its paths where the
    run's inputs lie (input_paths_of)."""
    from vcpred.training.config import TrainConfig

    section = config.get("config")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise RunError(f"{config_path}: 'config' must be the training configuration mapping, got {section!r}")
    try:
        return TrainConfig.from_dict({**section, **input_paths_of(run_dir, config)}, Path("."))
    except ConfigError as exc:
        raise RunError(f"{config_path}: its training config cannot be read ({exc}); {RETRAIN}") from None

"""Experiment configs: a base setup plus configurations (with optional grids) -> one run per split.

YAML shape (paths relative to the file):
  manifest: cohort/manifest.csv
  store: store
  splits: {file: splits.json, n_splits: 10, val_fraction: 0.2, seed: 0}   # made when missing
  # or splits: {file: splits.json, strategy: leave-one-site-out}: one split per development site
  model: {...}          # defaults for every configuration (ModelSpec fields)
  training: {...}       # defaults (TrainingParams fields)
  configurations:
    - name: cnn-{method}
      model: {backbone: efficientnet_lite0, weights: imagenet}
      grid: {model.method: [linear, lora, full]}
    - name: clinical-only
      model: {image: false, clinical_columns: [age, sex]}
A grid is a cartesian product over dotted keys; `{key}` in the name is replaced by the value of the
grid key whose last part is `key` (lists are joined with '+', empty lists read 'none').
Unknown keys are errors everywhere (a misspelled `trainig:` would otherwise train with the
defaults); top-level keys starting with `x-` are ignored, as a place for YAML anchors. When the
splits file exists, the seed, n_splits and val_fraction the experiment names must be the ones it was
made with (n_splits is counted in the file; a file that records no seed or fraction must be the
splits those settings make), and so must its strategy (random, the default, or leave-one-site-out,
which takes none of the three). Every validation set needs at least 2 cases and 2 controls, checked
before any training; splits that repeat an earlier one are warned about.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from vcpred import console
from vcpred.cohort import load_manifest, make_splits, save_splits
from vcpred.cohort.splits import (
    LEAVE_ONE_SITE_OUT,
    RANDOM,
    STRATEGIES,
    check_validation_classes,
    check_validation_size,
    make_site_splits,
    read_splits,
    repeat_warning,
)
from vcpred.errors import ConfigError
from vcpred.runs import run_label, run_path
from vcpred.training.config import TrainConfig, read_yaml_mapping

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")
TOP_LEVEL = ("manifest", "store", "splits", "model", "training", "configurations")
ENTRY_KEYS = ("name", "model", "training", "grid")
RANDOM_KEYS = ("n_splits", "val_fraction", "seed")  # the settings of random splits
SPLITS_KEYS = ("file", "strategy", *RANDOM_KEYS)


def _check_keys(data: dict, known: tuple[str, ...], where: str, *, extension: bool = False) -> None:
    unknown = sorted(str(k) for k in data if k not in known and not (extension and str(k).startswith("x-")))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}"
                          + (" (keys starting with x- are ignored, e.g. for YAML anchors)" if extension else ""))


@dataclass(frozen=True)
class RunSpec:
    config: TrainConfig
    split: int

    @property
    def name(self) -> str:
        return self.config.configuration

    def run_dir(self, runs: Path) -> Path:
        return run_path(runs, self.name, self.split)

    @property
    def label(self) -> str:
        """'<configuration>/split-<KK>', how messages and the status file name the run."""
        return run_label(self.run_dir(Path(".")))


def _set_dotted(target: dict, key: str, value) -> None:
    section, _, field = key.partition(".")
    if section not in ("model", "training") or not field:
        raise ConfigError(f"grid key {key!r} must be model.<setting> or training.<setting>")
    target.setdefault(section, {})[field] = value


def _label(value) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value)) or "none"
    return str(value)


def expand_entry(entry: dict) -> list[dict]:
    """One configurations entry -> one dict per grid point, with its final name."""
    if not isinstance(entry, dict) or not entry.get("name"):
        raise ConfigError(f"every configuration needs a name: {entry!r}")
    _check_keys(entry, ENTRY_KEYS, f"configuration {entry['name']!r}")
    grid = entry.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"configuration {entry['name']!r}: grid must map model.<setting> or training.<setting> "
                          "to a list of values")
    keys = list(grid)
    points = itertools.product(*(grid[k] if isinstance(grid[k], list) else [grid[k]] for k in keys))
    expanded = []
    for values in points:
        item = {"model": copy.deepcopy(entry.get("model") or {}), "training": copy.deepcopy(entry.get("training") or {})}
        name = entry["name"]
        for key, value in zip(keys, values):
            _set_dotted(item, key, value)
            placeholder = "{" + key.rsplit(".", 1)[-1] + "}"
            name = name.replace(placeholder, _label(value)) if placeholder in name else f"{name}-{_label(value)}"
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"configuration name {name!r} must be letters, digits and _ . + = - only")
        item["name"] = name
        expanded.append(item)
    return expanded


def _splits_spec(data: dict) -> tuple[dict, str | None]:
    """The experiment's `splits:` mapping and the strategy it asks for (None: it names only a file,
    which is then used whatever its strategy); random when it names random settings."""
    spec = data.get("splits") or {}
    spec = {"file": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, dict):
        raise ConfigError("splits must be a file name or a mapping of file, strategy, n_splits, val_fraction, seed")
    _check_keys(spec, SPLITS_KEYS, "splits")
    strategy = spec.get("strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise ConfigError(f"splits: unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    given = [k for k in RANDOM_KEYS if k in spec]
    if strategy == LEAVE_ONE_SITE_OUT and given:
        raise ConfigError(f"splits: {' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to "
                          f"strategy {LEAVE_ONE_SITE_OUT} (one split per development site, nothing drawn at random); "
                          "remove it")
    return spec, strategy or (RANDOM if given else None)


def _splits_file(data: dict, base: Path, manifest: Path, *, write: bool = True) -> tuple[Path, int]:
    """The splits file, made with the given parameters when it does not exist yet (only counted, not
    written, when not `write`: `experiment --list` writes nothing). Refused before any training:
    validation sets with fewer than 2 cases or controls, and a file made with another strategy or
    other parameters than the experiment names; splits that repeat are warned about."""
    spec, strategy = _splits_spec(data)
    path = base / spec.get("file", "splits.json")
    cohort = load_manifest(manifest)
    params = {k: spec[k] for k in RANDOM_KEYS if k in spec}
    fraction = params.get("val_fraction", 0.2)
    if path.exists():
        recorded = read_splits(path, cohort)
        splits = recorded.splits
        _check_strategy(path, strategy, recorded.strategy)
        if recorded.strategy == RANDOM:
            _check_splits_params(path, params, splits, cohort)
        check_validation_classes(splits, cohort, source=str(path))
    elif strategy == LEAVE_ONE_SITE_OUT:
        splits = make_site_splits(cohort)  # refuses sites too small to validate on
        if write:
            save_splits(path, splits, cohort=cohort, strategy=LEAVE_ONE_SITE_OUT)
    else:
        check_validation_size(cohort, fraction, option="splits: val_fraction")
        splits = make_splits(cohort, **params)
        if write:
            save_splits(path, splits, cohort=cohort, seed=params.get("seed", 0), val_fraction=fraction)
    warning = repeat_warning(splits, cohort, _recorded(path).get("val_fraction", fraction), source=str(path))
    if warning:
        console.warn(warning)
    return path, len(splits)


def _check_strategy(path: Path, asked: str | None, made: str) -> None:
    """An existing splits file was made with the strategy the experiment asks for (when it asks one)."""
    if asked is not None and asked != made:
        raise ConfigError(f"{path} holds {made} splits but the experiment asks for {asked} splits; to make new "
                          f"splits, move {path.name} away (runs trained on the old splits then count as stale), or "
                          f"set the experiment's splits to the file's (splits: {{file: {path.name}}} uses it as it is)")


def _recorded(path: Path) -> dict:
    """The parameters a splits file records ({} when it records none or does not exist)."""
    try:
        made = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return made if isinstance(made, dict) else {}


def _check_splits_params(path: Path, params: dict, splits: list, cohort) -> None:
    """The splits file was made with the parameters the experiment names (they are not silently
    ignored): its number of splits always; seed and val_fraction as the file records them, and when
    it records none (made by another tool), by making the splits again and comparing."""
    made = _recorded(path)
    actual = {**{k: made[k] for k in ("seed", "val_fraction") if k in made}, "n_splits": len(splits)}
    differ = [k for k, v in params.items() if k in actual and actual[k] != v]
    if not differ and any(k not in actual for k in params):
        remade = make_splits(cohort, **{"n_splits": len(splits), **params})
        if [(sorted(a.train_ids), sorted(a.val_ids)) for a in remade] != \
                [(sorted(b.train_ids), sorted(b.val_ids)) for b in splits]:
            unrecorded = ", ".join(k for k in params if k not in actual)
            raise ConfigError(f"{path} does not record its {unrecorded}, and the experiment's splits settings "
                              f"({', '.join(f'{k} {v!r}' for k, v in params.items())}) make other splits; to use the "
                              f"file as it is, name only its file in the experiment (splits: {{file: {path.name}}}), "
                              f"or move {path.name} away to make new splits")
    if differ:
        found = ", ".join(f"{k} {actual[k]!r}" for k in differ)
        asked = ", ".join(f"{k} {params[k]!r}" for k in differ)
        raise ConfigError(f"{path} was made with {found} but the experiment asks for {asked}; to make "
                          f"new splits, move {path.name} away (runs trained on the old splits then count as stale), "
                          "or set the experiment's splits back to the file's")


def load_experiment(path: str | Path, *, write_splits: bool = True) -> list[RunSpec]:
    """Every (configuration, split) run of an experiment config, in a stable order. The splits file is
    made when missing, unless not write_splits (then the runs are only listed: nothing is written)."""
    path = Path(path)
    data = read_yaml_mapping(path, "experiment config")
    _check_keys(data, TOP_LEVEL, str(path), extension=True)
    if not data.get("configurations") or not isinstance(data["configurations"], list):
        raise ConfigError(f"{path} must list `configurations`")
    base = path.parent
    manifest = base / str(data.get("manifest", ""))
    splits, n_splits = _splits_file(data, base, manifest, write=write_splits)
    runs, names = [], set()
    for entry in data["configurations"]:
        for item in expand_entry(entry):
            if item["name"] in names:
                raise ConfigError(f"two configurations are named {item['name']!r}")
            names.add(item["name"])
            merged = {"configuration": item["name"], "manifest": str(manifest), "store": str(base / str(data.get("store", ""))),
                      "splits": str(splits), "model": {**(data.get("model") or {}), **item["model"]},
                      "training": {**(data.get("training") or {}), **item["training"]}}
            config = TrainConfig.from_dict(merged, Path("."))
            runs += [RunSpec(config, k) for k in range(n_splits)]
    return runs

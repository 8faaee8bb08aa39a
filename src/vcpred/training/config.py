"""TrainConfig: one YAML file names the cohort, the store, the splits, the model and training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from vcpred.errors import ConfigError
from vcpred.models import ModelSpec
from vcpred.models.spec import without_defaults
from vcpred.training.acquisition import AcquisitionAugment

FRAMES = ("all", "main")
BATCHNORM = ("update", "frozen")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
OPTIONAL = {"acquisition": None}  # settings added later: left out of to_dict at their default (hashes kept)


@dataclass
class TrainingParams:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    patience: int = 5
    frames: str = "all"  # train on every frame as its own sample, or the main frame only
    augment: bool = True
    precision: str = "auto"  # auto: bf16 autocast on CPUs with native bf16, AMP on CUDA, else fp32
    device: str = "auto"
    feature_cache: bool = True  # linear probe: backbone features computed once, reused across splits
    # "frozen": BatchNorm layers keep their pre-trained running statistics while fine-tuning (their
    # scale/shift still train); "update": PyTorch's default, statistics follow the training batches.
    batchnorm: str = "update"
    seed: int = 0
    # MRI acquisition augmentation (vcpred.training.acquisition): None = off; a mapping ({} = defaults)
    acquisition: dict | None = None

    def __post_init__(self) -> None:
        checks = [(self.frames in FRAMES, f"frames must be one of {FRAMES}"),
                  (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
                  (self.device in DEVICES, f"device must be one of {DEVICES}"),
                  (self.batchnorm in BATCHNORM, f"batchnorm must be one of {BATCHNORM}"),
                  (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be at least 1"),
                  (self.lr > 0 and self.patience >= 1, "lr must be positive and patience at least 1")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.acquisition is not None:  # validated now; stored complete, so the run records every range
            self.acquisition = AcquisitionAugment.from_dict(self.acquisition).to_dict()

    @property
    def acquisition_augment(self) -> AcquisitionAugment | None:
        return None if self.acquisition is None else AcquisitionAugment.from_dict(self.acquisition)


@dataclass
class TrainConfig:
    configuration: str
    manifest: Path
    store: Path
    splits: Path
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingParams = field(default_factory=TrainingParams)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        data["training"] = without_defaults(data["training"], OPTIONAL)
        for key in ("manifest", "store", "splits"):
            data[key] = str(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict, base: Path = Path(".")) -> "TrainConfig":
        """Paths relative to `base` (the YAML file's folder)."""
        required = ("configuration", "manifest", "store", "splits")
        missing = [k for k in required if not data.get(k)]
        unknown = set(data) - {f.name for f in fields(cls)}
        if missing or unknown:
            raise ConfigError(f"training config: missing {missing}, unknown {sorted(unknown)}")
        training = data.get("training") or {}
        known = {f.name for f in fields(TrainingParams)}
        if set(training) - known:
            raise ConfigError(f"unknown training settings {sorted(set(training) - known)}; known: {sorted(known)}")
        data = {**data, "splits": _splits_file(data["splits"])}
        try:
            return cls(str(data["configuration"]), *(base / str(data[k]) for k in required[1:]),
                       ModelSpec.from_dict(data.get("model") or {}), TrainingParams(**training))
        except TypeError as exc:
            raise ConfigError(f"training config: {exc}") from None


def _splits_file(splits: object) -> str:
    """The splits file a training config names: a path, or the experiment's mapping when it names only its
    file. Settings that say how to make splits (seed, n_splits, ...) are `vcpred experiment`'s to apply and
    check against the file; train would silently ignore them, so it refuses them."""
    if not isinstance(splits, dict):
        return str(splits)
    file = str(splits.get("file", "splits.json"))
    settings = sorted(set(splits) - {"file"})
    if settings:
        raise ConfigError(f"training config: splits names {', '.join(settings)}, settings for making splits; "
                          f"`vcpred train` uses an existing splits file as it is: write `splits: {file}` (made by "
                          "`vcpred cohort split` or `vcpred experiment`), or train with `vcpred experiment`, which "
                          "makes the file from these settings or checks it against them")
    return file


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file that must hold a mapping, with clear errors for a missing or broken file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    return data


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    return TrainConfig.from_dict(read_yaml_mapping(path, "training config"), path.parent)

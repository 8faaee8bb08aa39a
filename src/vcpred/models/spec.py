"""ModelSpec: everything needed to rebuild a model, as plain data (YAML in, JSON out)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from vcpred.errors import ConfigError

METHODS = ("full", "linear", "lora", "partial")
STANDARDIZE_METHODS = ("none", "histogram")  # vcpred.models.standardize; here so a spec loads no torch
OPTIONAL = {"standardize": "none"}  # settings added later: left out of to_dict at their default
LORA_TARGETS = ("qkv", "qkv_proj", "all")


@dataclass
class ModelSpec:
    """One model of the study's space: backbone × weights × fine-tuning method × clinical.

    `image=False` with clinical columns is the clinical-only logistic-regression baseline.
    `input_scale`: how the prepared frames were normalised — "unit" ([0, 1]: the weights' mean/std
    are applied in the model) or "zscore" (already standardised: passed through unchanged).
    `standardize`: "histogram" adds Nyúl–Udupa histogram standardisation to the model's input, its
    landmarks fitted on the run's training patients (vcpred.models.standardize); "none" (default).
    """

    backbone: str = "efficientnet_lite0"
    weights: str = "imagenet"
    method: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: str = "qkv"
    partial_blocks: int = 1
    clinical_columns: list[str] = field(default_factory=list)
    clinical_hidden: int = 32
    image: bool = True
    dropout: float = 0.2
    input_scale: str = "unit"
    seed: int = 0
    standardize: str = "none"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown fine-tuning method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.lora_targets not in LORA_TARGETS:
            raise ConfigError(f"lora_targets must be one of {', '.join(LORA_TARGETS)}, got {self.lora_targets!r}")
        if self.input_scale not in ("unit", "zscore"):
            raise ConfigError(f"input_scale must be 'unit' or 'zscore', got {self.input_scale!r}")
        if self.standardize not in STANDARDIZE_METHODS:
            raise ConfigError(f"standardize must be one of {', '.join(STANDARDIZE_METHODS)}, got {self.standardize!r}")
        if not self.image and not self.clinical_columns:
            raise ConfigError("a model without images needs clinical_columns")
        if self.lora_r < 1 or self.partial_blocks < 1:
            raise ConfigError("lora_r and partial_blocks must be at least 1")

    @property
    def uses_clinical(self) -> bool:
        return bool(self.clinical_columns)

    def to_dict(self) -> dict:
        """As a mapping; `standardize` only when used, so specs written before it existed (run configs,
        bundles, their hashes) stay the same."""
        return without_defaults(asdict(self), OPTIONAL)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def without_defaults(data: dict, optional: dict) -> dict:
    """data without the optional keys that hold their default value."""
    return {k: v for k, v in data.items() if not (k in optional and v == optional[k])}

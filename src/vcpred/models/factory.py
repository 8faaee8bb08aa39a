"""create_model(spec): the one factory; save/load of what was trained; LoRA merging."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vcpred.errors import WeightsError
from vcpred.models.finetune import apply_finetuning, parameter_counts
from vcpred.models.network import VcpredModel
from vcpred.models.registry import get_backbone
from vcpred.models.spec import ModelSpec
from vcpred.models.weights import WeightsRecord, load_pretrained

MODEL_FILE, SPEC_FILE = "model.safetensors", "model.json"


@dataclass
class BuiltModel:
    net: nn.Module  # VcpredModel, or a peft model wrapping one
    spec: ModelSpec
    weights: WeightsRecord
    clinical_features: int

    @property
    def core(self) -> VcpredModel:
        """The VcpredModel inside (peft keeps it as base_model.model)."""
        return self.net.get_base_model() if hasattr(self.net, "get_base_model") else self.net

    def counts(self) -> dict[str, int]:
        return parameter_counts(self.net)


def create_model(spec: ModelSpec, *, clinical_features: int = 0) -> BuiltModel:
    """Build backbone + weights + head + fine-tuning method. Seeded, so 'random' reproduces."""
    if not spec.image:
        raise WeightsError("clinical-only models are logistic regressions: use vcpred.models.ClinicalLogistic")
    if spec.uses_clinical and clinical_features < 1:
        raise ValueError("spec names clinical columns: pass clinical_features (encoded width)")
    info = get_backbone(spec.backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        backbone = info.create()
        record = load_pretrained(backbone, info, spec.weights)
        mean, std = (record.mean, record.std) if spec.input_scale == "unit" else ((0.0,) * 3, (1.0,) * 3)
        model = VcpredModel(backbone, mean, std, clinical_features=clinical_features if spec.uses_clinical else 0,
                            clinical_hidden=spec.clinical_hidden, dropout=spec.dropout,
                            standardize=spec.standardize == "histogram")
        net = apply_finetuning(model, spec, info)
    return BuiltModel(net, spec, record, clinical_features)


def trained_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """What training changed: trainable parameters and all buffers (BatchNorm statistics).

    Always a copy, contiguous, on the CPU: `.cpu().contiguous()` alone returns the live tensor for
    a contiguous CPU parameter, and a best-epoch snapshot that shares memory with the weights
    follows training to its last epoch."""
    state = {name: p for name, p in net.named_parameters() if p.requires_grad}
    state.update(dict(net.named_buffers()))
    return {k: v.detach().to("cpu", copy=True, memory_format=torch.contiguous_format) for k, v in state.items()}


def save_model(built: BuiltModel, folder: str | Path) -> Path:
    """model.safetensors (trained tensors only; adapters + head for LoRA) and model.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trained_state(built.net), str(folder / MODEL_FILE))
    meta = {"spec": built.spec.to_dict(), "weights": built.weights.to_dict(),
            "clinical_features": built.clinical_features, "parameters": built.counts()}
    (folder / SPEC_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def load_model(folder: str | Path) -> BuiltModel:
    """Rebuild from model.json (re-verifying the pre-trained weights) and load the trained tensors."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / SPEC_FILE).read_text())
        state = load_file(str(folder / MODEL_FILE))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{folder} is not a saved vcpred model: {exc}") from None
    except SafetensorError as exc:
        raise WeightsError(f"{folder / MODEL_FILE} is damaged (truncated or overwritten: {exc}); train the run "
                           "again (or restore the file from a backup)") from None
    try:
        spec, width = ModelSpec.from_dict(meta["spec"]), int(meta["clinical_features"])
        weights_name, weights_sha = meta["weights"]["name"], meta["weights"]["sha256"]
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{folder / SPEC_FILE} is not a saved vcpred model description ({type(exc).__name__}: "
                           f"{exc}); train the run again") from None
    built = create_model(spec, clinical_features=width)
    if built.weights.sha256 != weights_sha:
        raise WeightsError(f"{folder} was trained on {weights_name} weights with sha256 "
                           f"{str(weights_sha)[:12]}…, but the installed ones differ")
    expected = set(trained_state(built.net))
    if set(state) != expected:
        raise WeightsError(f"{folder}/{MODEL_FILE} does not match its model.json: missing "
                           f"{sorted(expected - set(state))[:5]}, unexpected {sorted(set(state) - expected)[:5]}")
    built.net.load_state_dict(state, strict=False)
    return built


def merged(built: BuiltModel) -> VcpredModel:
    """A plain VcpredModel with LoRA folded into the weights (for export); others unchanged."""
    if hasattr(built.net, "merge_and_unload"):
        return built.net.merge_and_unload()
    return built.net

"""Fine-tuning methods: which parameters train. LoRA goes through HF peft, never by hand."""

from __future__ import annotations

import fnmatch

import torch.nn as nn

from vcpred.models.network import VcpredModel
from vcpred.models.registry import BackboneInfo
from vcpred.models.spec import ModelSpec

HEAD_MODULES = ["head", "clinical"]


def backbone_blocks(backbone: nn.Module, info: BackboneInfo) -> list[nn.Module]:
    """The backbone's stages/blocks in forward order, per the registry's `blocks` pattern."""
    path, _, pattern = info.blocks.rpartition(".")
    parent = backbone.get_submodule(path) if path else backbone
    if "*" not in pattern:
        return list(parent.get_submodule(pattern).children())
    return [m for name, m in parent.named_children() if fnmatch.fnmatch(name, pattern)]


def freeze(module: nn.Module, trainable: bool = False) -> None:
    for parameter in module.parameters():
        parameter.requires_grad = trainable


def _lora_config(spec: ModelSpec, info: BackboneInfo):
    from peft import LoraConfig  # peft pulls in transformers (seconds): only when LoRA is used

    # A CNN's BatchNorm statistics must travel with the adapters or results do not reproduce.
    return LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                      target_modules=r"backbone\.(.*\.)?" + info.lora_pattern(spec.lora_targets),
                      modules_to_save=HEAD_MODULES + list(info.norm_modules), bias="none")


def apply_finetuning(model: VcpredModel, spec: ModelSpec, info: BackboneInfo) -> nn.Module:
    """Set requires_grad per method; for LoRA return the peft-wrapped model."""
    if spec.method == "full":
        freeze(model, trainable=True)
        return model
    if spec.method == "lora":
        from peft import get_peft_model

        return get_peft_model(model, _lora_config(spec, info))
    freeze(model.backbone)
    if spec.method == "partial":
        blocks = backbone_blocks(model.backbone, info)
        for block in blocks[-spec.partial_blocks:]:
            freeze(block, trainable=True)
        for name in info.after_blocks:
            freeze(model.backbone.get_submodule(name), trainable=True)
    for name in HEAD_MODULES:
        if getattr(model, name, None) is not None:
            freeze(getattr(model, name), trainable=True)
    return model


def parameter_counts(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


def keep_frozen_norms_in_eval(model: nn.Module, *, all_statistics: bool = False) -> None:
    """After model.train(): frozen BatchNorm layers must not update their running statistics;
    with all_statistics, no BatchNorm layer does (trainable scale/shift still learn)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if all_statistics or (params and not any(p.requires_grad for p in params)):
                module.eval()

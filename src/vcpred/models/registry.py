"""Backbone registry: every backbone vcpred can build, described once (timm-style decorator)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import timm
import torch.nn as nn

from vcpred.errors import ConfigError


@dataclass(frozen=True)
class BackboneInfo:
    """How to build one backbone with timm and where its parts are.

    `blocks` names the module lists whose last N entries `partial` fine-tuning unfreezes (in
    forward order); `after_blocks` are the modules between the last block and the features (final
    norm, head convolution) that `partial` unfreezes with them. `lora_targets` is the peft
    `target_modules` regex over the backbone's module names; `lora_target_choices` are the named
    alternatives a ModelSpec's `lora_targets` selects (a backbone without them always uses
    `lora_targets`); `norm_modules` are the BatchNorm module names peft must save with LoRA on a CNN.
    """

    name: str
    timm_name: str
    family: str  # "cnn" | "vit"
    input_size: int
    blocks: str  # attribute path of the stage/block container, e.g. "blocks" or "layer*"
    lora_targets: str
    norm_modules: tuple[str, ...] = ()
    after_blocks: tuple[str, ...] = ()
    lora_target_choices: Mapping[str, str] = field(default_factory=dict)
    timm_kwargs: dict = field(default_factory=dict)
    test_variant: bool = False

    def create(self) -> nn.Module:
        """The timm feature extractor (no classifier: num_classes=0), randomly initialised."""
        return timm.create_model(self.timm_name, pretrained=False, num_classes=0, **self.timm_kwargs)

    def lora_pattern(self, choice: str) -> str:
        """The peft target regex for a ModelSpec's `lora_targets` choice."""
        return self.lora_target_choices.get(choice, self.lora_targets)


BACKBONES: dict[str, BackboneInfo] = {}

VIT_QKV = r"blocks\.\d+\.attn\.qkv"
VIT_QKV_PROJ = r"blocks\.\d+\.attn\.(qkv|proj)"
VIT_ALL = r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"
VIT_LORA_CHOICES = {"qkv": VIT_QKV, "qkv_proj": VIT_QKV_PROJ, "all": VIT_ALL}
# timm's ViT: `norm` (LayerNorm on the tokens) and `fc_norm` (on the pooled token; an Identity
# with the default class-token pooling) follow the blocks.
VIT_AFTER_BLOCKS = ("norm", "fc_norm")


def register_backbone(info: BackboneInfo) -> BackboneInfo:
    if info.name in BACKBONES:
        raise ValueError(f"backbone {info.name!r} registered twice")
    BACKBONES[info.name] = info
    return info


def get_backbone(name: str) -> BackboneInfo:
    try:
        return BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {known}") from None


def _vit(name: str, timm_name: str, size: int = 224, test: bool = False, **kwargs) -> BackboneInfo:
    return register_backbone(BackboneInfo(name, timm_name, "vit", size, "blocks", VIT_QKV,
                                          after_blocks=VIT_AFTER_BLOCKS,
                                          lora_target_choices=VIT_LORA_CHOICES,
                                          timm_kwargs=kwargs, test_variant=test))


_vit("vit_base_patch16_224", "vit_base_patch16_224")
_vit("vit_small_patch16_224", "vit_small_patch16_224")
# A 6-block ViT-Tiny at 96 px (6x6 patches): the demo's from-scratch ViT, small enough for a CPU to
# train over 10 splits in minutes and to give attention-rollout maps.
_vit("vit_tiny_d6_patch16_96", "vit_tiny_patch16_224", size=96, img_size=96, depth=6)
_vit("vit_tiny_test", "vit_tiny_patch16_224", size=64, test=True, depth=2, img_size=64)

# ResNet: nothing with parameters between layer4 and the pooled features.
_RESNET_CONV = r"layer\d\.\d+\.conv[123]"
register_backbone(BackboneInfo("resnet50", "resnet50", "cnn", 224, "layer*", _RESNET_CONV,
                               ("bn1", "bn2", "bn3", "downsample.1")))
register_backbone(BackboneInfo("resnet_test", "test_resnet", "cnn", 64, "layer*", _RESNET_CONV,
                               ("bn1", "bn2", "bn3", "downsample.1"), test_variant=True))

_DENSE_CONV = r"denselayer\d+\.conv[12]"
_DENSE_NORMS = ("norm0", "norm1", "norm2", "norm5", "norm")
_DENSE_AFTER = ("features.norm5",)
register_backbone(BackboneInfo("densenet121", "densenet121", "cnn", 224, "features.denseblock*",
                               _DENSE_CONV, _DENSE_NORMS, _DENSE_AFTER))
register_backbone(BackboneInfo("densenet_test", "densenet121", "cnn", 64, "features.denseblock*",
                               _DENSE_CONV, _DENSE_NORMS, _DENSE_AFTER, test_variant=True,
                               timm_kwargs=dict(growth_rate=8, block_config=(2, 2, 2, 2), bn_size=2)))

# Pointwise convolutions only: peft's LoRA does not adapt grouped (depthwise) convolutions.
_EFFNET_CONV = r"blocks\.\d+\.\d+\.(conv_pw|conv_pwl)"
_EFFNET_NORMS = ("bn1", "bn2", "bn3")
_EFFNET_AFTER = ("conv_head", "bn2")  # the 1x1 head convolution and its BatchNorm
register_backbone(BackboneInfo("efficientnet_lite0", "tf_efficientnet_lite0", "cnn", 224, "blocks",
                               _EFFNET_CONV, _EFFNET_NORMS, _EFFNET_AFTER))
register_backbone(BackboneInfo("efficientnet_test", "test_efficientnet", "cnn", 64, "blocks",
                               _EFFNET_CONV, _EFFNET_NORMS, _EFFNET_AFTER, test_variant=True))

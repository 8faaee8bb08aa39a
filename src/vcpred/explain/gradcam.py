"""Grad-CAM (Selvaraju et al. 2017) for CNN backbones, on the last convolutional stage.

The map is ReLU(sum_k w_k F_k) with F = the backbone's final feature map (timm's
`forward_features` output, [B, K, h, w]) and w_k the spatial mean of d logit / d F_k. The logit is
the model's collapse logit, so the map shows what raises the predicted risk. Written in-house (a
dozen lines) rather than taking the grad-cam package as a dependency: timm gives the feature map
directly, and no module hooks are left behind.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from vcpred.models.network import VcpredModel


def find_core(model: nn.Module) -> VcpredModel:
    """The VcpredModel inside model (itself, or wrapped by peft)."""
    for module in model.modules():
        if isinstance(module, VcpredModel):
            return module
    raise TypeError(f"{type(model).__name__} holds no VcpredModel; Grad-CAM needs the collapse logit")


def _normalise(cams: torch.Tensor) -> np.ndarray:
    """Each map scaled to max 1; an all-zero map (nothing raises the logit) stays zero."""
    peak = cams.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cams / peak.clamp_min(1e-12), torch.zeros_like(cams)).numpy().astype(np.float32)


def grad_cam(model: nn.Module, images: torch.Tensor, clinical: torch.Tensor | None = None) -> np.ndarray:
    """Grad-CAM maps [B, h, w] in [0, 1] for images [B, 3, H, W] (h, w: the final feature grid).

    model: a VcpredModel with a timm CNN backbone, or one wrapped by peft; clinical [B, D] when
    the model uses clinical features. Runs in eval mode; the model's mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        return grad_cams([find_core(model)], images, [clinical])[0]
    finally:
        model.train(was_training)


def grad_cams(cores: list[VcpredModel], images: torch.Tensor, clinicals: list[torch.Tensor | None]) -> list[np.ndarray]:
    """Grad-CAM of several models (in eval mode) that share one backbone module (a linear probe's
    split models): the feature map is computed once, and each head's gradient is taken from it."""
    backbone = cores[0].backbone
    if any(core.backbone is not backbone for core in cores):
        raise ValueError("grad_cams takes models that share one backbone module")
    with torch.enable_grad():
        x = ((images - cores[0].input_mean) / cores[0].input_std).detach().requires_grad_(True)  # a graph even when frozen
        features = backbone.forward_features(x)
        if features.dim() != 4:
            raise TypeError(f"{type(backbone).__name__} features have shape {tuple(features.shape)}, "
                            "not [B, K, h, w]; Grad-CAM needs a CNN (use attention rollout for ViTs)")
        pooled = backbone.forward_head(features)
        maps = []
        for index, (core, clinical) in enumerate(zip(cores, clinicals)):
            logits = core.classify(pooled, clinical)
            (gradients,) = torch.autograd.grad(logits.sum(), features, retain_graph=index < len(cores) - 1)
            weights = gradients.float().mean(dim=(2, 3), keepdim=True)
            maps.append(_normalise(torch.relu((weights * features.detach().float()).sum(dim=1))))
    return maps

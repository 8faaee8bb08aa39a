"""Attention rollout (Abnar & Zuidema 2020) for timm Vision Transformers.

Per layer l the softmaxed attention [B, heads, N, N] is fused over heads (mean | max | min) into
A_l; optionally the smallest `discard_ratio` of A_l's entries are zeroed (never the class-token
column); the residual path is added (A_l <- 0.5 A_l + 0.5 I) and each row re-normalised to sum 1.
The layers are multiplied in order, last layer on the left: R = A_L ... A_2 A_1. The class-token
row of R over the patch tokens (after `num_prefix_tokens` prefix tokens), reshaped to the patch
grid and scaled to max 1, is the map.

Attention is captured from timm's `Attention.attn_drop` input (the softmaxed matrix). timm uses
fused scaled-dot-product attention by default, which never materialises it, so `fused_attn` is
switched off inside `record_attention` and restored on exit (also on exceptions).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

HEAD_FUSIONS = ("mean", "max", "min")


def find_vit(model: nn.Module) -> VisionTransformer:
    """The timm VisionTransformer inside model (itself, in a VcpredModel, or under peft)."""
    for module in model.modules():
        if isinstance(module, VisionTransformer):
            return module
    raise TypeError(f"{type(model).__name__} holds no timm VisionTransformer; attention rollout "
                    "needs a ViT backbone (use Grad-CAM for CNNs)")


def _attention_modules(vit: VisionTransformer) -> list[nn.Module]:
    modules = [block.attn for block in vit.blocks]
    for attn in modules:
        if not (hasattr(attn, "fused_attn") and isinstance(getattr(attn, "attn_drop", None), nn.Module)):
            raise TypeError(f"{type(attn).__name__} is not a timm Attention with fused_attn and attn_drop; "
                            "this ViT variant is not supported by attention rollout")
    return modules


@contextmanager
def record_attention(vit: VisionTransformer) -> Iterator[list[torch.Tensor]]:
    """Inside the block every forward of vit appends each block's attention [B, heads, N, N].

    The yielded list fills in forward order (block 0 first); it is cleared by the caller as needed.
    """
    modules = _attention_modules(vit)
    captured: list[torch.Tensor] = []
    saved = [attn.fused_attn for attn in modules]
    handles = []
    try:
        for attn in modules:
            attn.fused_attn = False  # the explicit path computes attn.softmax() -> attn_drop(attn)
            handles.append(attn.attn_drop.register_forward_hook(
                lambda _module, inputs, _output: captured.append(inputs[0].detach().float())))
        yield captured
    finally:
        for handle in handles:
            handle.remove()
        for attn, value in zip(modules, saved):
            attn.fused_attn = value


def _fuse_heads(attention: torch.Tensor, head_fusion: str) -> torch.Tensor:
    """[B, heads, N, N] -> [B, N, N]."""
    if head_fusion == "mean":
        return attention.mean(dim=1)
    if head_fusion == "max":
        return attention.amax(dim=1)
    return attention.amin(dim=1)


def _discard(fused: torch.Tensor, ratio: float, class_index: int | None) -> torch.Tensor:
    """Zero the `ratio` smallest entries of each image's [N, N] matrix, sparing the class-token column."""
    batch, n, _ = fused.shape
    out = fused.clone()
    ranked = fused.clone()
    eligible = n * n
    if class_index is not None:
        ranked[:, :, class_index] = torch.inf  # never chosen
        eligible -= n
    count = int(eligible * ratio)
    if count > 0:
        flat_index = ranked.reshape(batch, -1).topk(count, dim=-1, largest=False).indices
        out.reshape(batch, -1).scatter_(1, flat_index, 0.0)
    return out


def rollout_from_attentions(attentions: Sequence[torch.Tensor | np.ndarray], *, num_prefix_tokens: int,
                            grid_size: tuple[int, int], head_fusion: str = "mean", discard_ratio: float = 0.0,
                            class_token: bool = True) -> np.ndarray:
    """Rollout maps [B, grid_h, grid_w] (each scaled to max 1) from per-layer attentions.

    attentions: one [B, heads, N, N] (or [B, N, N], already fused) array per layer, first layer
    first; N = num_prefix_tokens + grid_h * grid_w. class_token False (e.g. registers only): the map
    is the mean over all token rows instead of the class-token row.
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    if not attentions:
        raise ValueError("no attention matrices: the model ran no attention block")
    rollout = None
    for attention in attentions:
        a = torch.as_tensor(np.asarray(attention) if isinstance(attention, np.ndarray) else attention,
                            dtype=torch.float64)
        a = _fuse_heads(a, head_fusion) if a.dim() == 4 else a
        if discard_ratio > 0:
            a = _discard(a, discard_ratio, 0 if class_token else None)
        eye = torch.eye(a.shape[-1], dtype=a.dtype)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(dim=-1, keepdim=True)  # each row sums to 1 (keepdim: divide rows, not columns)
        rollout = a if rollout is None else a @ rollout  # later layers on the left
    grid_h, grid_w = grid_size
    if rollout.shape[-1] != num_prefix_tokens + grid_h * grid_w:
        raise ValueError(f"{rollout.shape[-1]} tokens do not match {num_prefix_tokens} prefix tokens + "
                         f"a {grid_h}x{grid_w} grid")
    rows = rollout[:, 0] if class_token else rollout.mean(dim=1)
    maps = rows[:, num_prefix_tokens:].reshape(-1, grid_h, grid_w)
    peak = maps.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return (maps / peak).numpy().astype(np.float32)


def vit_layout(vit: VisionTransformer) -> dict:
    """Keyword arguments of rollout_from_attentions that describe this ViT's tokens."""
    return {"num_prefix_tokens": int(vit.num_prefix_tokens), "grid_size": tuple(vit.patch_embed.grid_size),
            "class_token": getattr(vit, "cls_token", None) is not None}


def _embedding_forward(model: nn.Module, vit: VisionTransformer):
    """What to call on the images: a VcpredModel's embed (input normalisation), else the ViT."""
    for module in model.modules():
        if hasattr(module, "embed") and getattr(module, "backbone", None) is not None:
            return module.embed
    return vit


def attention_rollout(model: nn.Module, images: torch.Tensor, *, head_fusion: str = "mean",
                      discard_ratio: float = 0.0) -> np.ndarray:
    """Attention-rollout maps [B, grid_h, grid_w] in [0, 1] for images [B, 3, H, W].

    model: a timm VisionTransformer, a VcpredModel with a ViT backbone, or either wrapped by peft.
    Runs in eval mode without gradients (the model's mode is restored afterwards).
    """
    vit = find_vit(model)
    forward = _embedding_forward(model, vit)
    was_training = model.training
    model.eval()
    try:
        with record_attention(vit) as captured, torch.no_grad():
            forward(images)
    finally:
        model.train(was_training)
    return rollout_from_attentions(captured, head_fusion=head_fusion, discard_ratio=discard_ratio,
                                   **vit_layout(vit))

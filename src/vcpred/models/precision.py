"""Inference precision of exported models: fp32, bf16, or auto (bf16 only where the CPU computes it
natively and the bundle's own validation check showed that it changes no probability by 1e-3 or more).

bf16 here means: the weights of every Linear and Conv layer are converted to bf16 once, when the
model is loaded, and the forward runs under CPU autocast. Autocast alone would cast the frozen fp32
weights again on every call (its weight cache only keeps tensors that require grad); with the weights
already bf16 the cast is a no-op. Norms, the residual stream and the head keep autocast's fp32.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vcpred.errors import ConfigError
from vcpred.models.inputs import autocast

PRECISIONS = ("fp32", "bf16", "auto")
BF16_TOLERANCE = 1e-3  # largest change of a probability that bf16 may make on the bundle's validation patients


def native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (oneDNN: AVX512-BF16 or AMX). Without it
    bf16 is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def choose(requested: str, check: dict | None, *, native: bool | None = None) -> tuple[str, str]:
    """(precision, why) for a bundle: requested is fp32 | bf16 | auto; check is the bundle's
    recorded bf16 check (None when the export made none)."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested, "asked for"
    if not (native_bf16() if native is None else native):
        return "fp32", "auto: this CPU has no native bf16"
    if not check:
        return "fp32", "auto: the model directory records no bf16 check (export it again with this vcpred)"
    change, tolerance = check.get("max_probability_change"), check.get("tolerance", BF16_TOLERANCE)
    if not isinstance(change, (int, float)) or not change < tolerance:
        shown = f"{change:.1e}" if isinstance(change, (int, float)) else repr(change)
        return "fp32", f"auto: bf16 changed a validation probability by {shown} at export, not below {tolerance:g}"
    return "bf16", (f"auto: native bf16; at export bf16 changed the validation probabilities of "
                    f"{check.get('patients')} patients by at most {change:.1e} (< {tolerance:g})")


def to_bf16_weights(net: nn.Module) -> nn.Module:
    """Convert the weights of every Linear and Conv layer to bf16, once (in place); returns net."""
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            module.to(torch.bfloat16)
    return net


def inference_context(precision: str):
    """The context a forward in `precision` runs in on the CPU (models.inputs.autocast: none for fp32)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"an inference precision is fp32 or bf16, got {precision!r}")
    return autocast(torch.device("cpu"), precision)

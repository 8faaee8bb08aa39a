"""bf16 inference computed with fp32 kernels: the values vcpred's bf16 path (models.precision: Linear
and Conv weights in bf16, the forward under CPU autocast) would produce, at the cost of an fp32
forward on every CPU.

Without native bf16 (no AVX512-BF16 or AMX) torch emulates bf16 kernels far slower than fp32; the
export's bf16 check (bundle.precision_check) took 16 minutes of a demo that way. Here every tensor
that would be bf16 in the real run is kept in fp32 but rounded to a bf16 value (round to nearest
even, as torch's conversion does), op by op:
- the ops autocast runs in bf16 (convolutions, the matmul family, fused attention) get their
  floating inputs rounded, compute in fp32 and have their output rounded: what a bf16 kernel with
  fp32 accumulation returns, up to the order of the sums;
- any other op returns bf16 where torch's type promotion would (all its floating tensor inputs of
  the highest rank are bf16), or where a norm's input is bf16 (mixed-type batch/layer/group norm);
  its output is rounded then. In-place ops round the tensor they write when it is bf16.
tests/test_bf16_emulation.py compares it with torch's own bf16 kernels on vcpred's networks.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

METHOD = ("fp32 emulation: weights and every tensor bf16 autocast holds in bf16 rounded to bf16, "
          "convolutions and matmuls computed in fp32 (vcpred.models.bf16_emulation)")

aten = torch.ops.aten
# Computed in bf16 under CPU autocast (its lower-precision list, as the ops reach the dispatcher).
_AUTOCAST_BF16 = {aten.convolution, aten._convolution, aten.mm, aten.bmm, aten.addmm, aten.baddbmm, aten.addbmm,
                  aten.mv, aten.addmv, aten.dot, aten._addmm_activation, aten.matmul, aten.linear,
                  aten._scaled_dot_product_flash_attention_for_cpu, aten.prelu, aten._prelu_kernel}
# Mixed types allowed on the CPU: the output has the input's dtype whatever the affine parameters'.
_NORMS = {aten.native_batch_norm, aten._native_batch_norm_legit, aten._native_batch_norm_legit_no_training,
          aten.native_layer_norm, aten.native_group_norm}


def _round(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.bfloat16).to(tensor.dtype) if tensor.dtype == torch.float32 else tensor


def _round_in_place(tensor: torch.Tensor) -> None:
    if tensor.dtype == torch.float32:
        tensor.copy_(tensor.to(torch.bfloat16))


class _TensorSet:
    """Tensors by identity, held weakly (a WeakSet compares tensors with ==, elementwise)."""

    def __init__(self, tensors: list[torch.Tensor]):
        self._refs: dict[int, weakref.ref] = {}
        for tensor in tensors:
            self.add(tensor)

    def add(self, tensor: torch.Tensor) -> None:
        key = id(tensor)
        self._refs[key] = weakref.ref(tensor, lambda _, key=key: self._refs.pop(key, None))

    def __contains__(self, tensor: torch.Tensor) -> bool:
        ref = self._refs.get(id(tensor))
        return ref is not None and ref() is tensor


class _Bf16Values(TorchDispatchMode):
    """Tracks which fp32 tensors stand for bf16 ones and keeps their values bf16."""

    def __init__(self, weights: list[torch.Tensor]):
        super().__init__()
        self.bf16 = _TensorSet(weights)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet is aten._scaled_dot_product_flash_attention_for_cpu and _plain_attention(args, kwargs):
            out = _flash_attention(*args[:3], scale=kwargs.get("scale"))
            self.bf16.add(out[0])
            return out
        if packet in _AUTOCAST_BF16:
            args, kwargs = self._rounded(args), {k: self._rounded(v) for k, v in kwargs.items()}
            out = func(*args, **kwargs)
            first = out[0] if isinstance(out, tuple) else out  # attention's logsumexp stays fp32
            _round_in_place(first)
            self.bf16.add(first)
            return out
        out = func(*args, **kwargs)
        returns = func._schema.returns
        if any(r.alias_info is not None and r.alias_info.is_write for r in returns):  # in place or out=
            for written in _floating(out):
                if written in self.bf16:
                    _round_in_place(written)
            return out
        if self._is_bf16(packet, args, kwargs):
            views = any(r.alias_info is not None for r in returns)  # a view of bf16 values is already rounded
            for result in _floating(out[:1] if packet in _NORMS else out):
                if not views:
                    _round_in_place(result)
                self.bf16.add(result)
        return out

    def _rounded(self, item: Any) -> Any:
        """item with its fp32 tensors rounded to bf16 values; those already held as bf16 values (the
        rounded weights, earlier outputs) are passed as they are, not copied."""
        if isinstance(item, torch.Tensor):
            return item if item in self.bf16 else _round(item)
        if isinstance(item, (tuple, list)):
            return type(item)(self._rounded(element) for element in item)
        return item

    def _is_bf16(self, packet, args, kwargs: dict[str, Any]) -> bool:
        if "dtype" in kwargs and kwargs["dtype"] is not None:  # an explicit dtype (to, zeros_like, ...)
            return kwargs["dtype"] == torch.bfloat16
        if packet in _NORMS:
            return args[0] in self.bf16
        inputs = _floating((args, kwargs))
        ranked = [t for t in inputs if t.dim() > 0] or inputs  # 0-dim tensors promote only among themselves
        return bool(ranked) and all(t in self.bf16 for t in ranked)


def _plain_attention(args, kwargs: dict[str, Any]) -> bool:
    """No dropout, mask or causality and at most 512 keys: one block of torch's CPU flash kernel."""
    dropout = args[3] if len(args) > 3 else kwargs.get("dropout_p", 0.0)
    causal = args[4] if len(args) > 4 else kwargs.get("is_causal", False)
    return not dropout and not causal and kwargs.get("attn_mask") is None and args[1].shape[-2] <= 512


def _flash_attention(query, key, value, *, scale):
    """torch's CPU flash attention on bf16 inputs, in fp32: scores and softmax sums in fp32, the
    exponentials rounded to bf16 for the product with the values (as the kernel stores them)."""
    query, key, value = _round(query), _round(key), _round(value)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    peak = scores.amax(dim=-1, keepdim=True)
    exponentials = torch.exp(scores - peak)
    total = exponentials.sum(dim=-1, keepdim=True)
    out = _round(torch.matmul(_round(exponentials), value) / total)
    return out, (peak + total.log()).squeeze(-1)


def _floating(tree: Any) -> list[torch.Tensor]:
    """The floating tensors in an op's arguments or results (tensors, in tuples, lists and dicts)."""
    found: list[torch.Tensor] = []
    _collect(tree, found)
    return found


def _collect(item: Any, found: list[torch.Tensor]) -> None:
    # by hand, not torch's pytree: called several times per op, its generality cost a third of the
    # emulated ViT forward's time in Python
    if isinstance(item, torch.Tensor):
        if item.is_floating_point():
            found.append(item)
    elif isinstance(item, (tuple, list)):
        for element in item:
            _collect(element, found)
    elif isinstance(item, dict):
        for element in item.values():
            _collect(element, found)


def bf16_layer_weights(net: nn.Module) -> list[torch.Tensor]:
    """Round the weights models.precision.to_bf16_weights would convert (every Linear and Conv
    layer's) to bf16 values, in place, keeping fp32; returns them."""
    weights = []
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                for tensor in module.parameters(recurse=False):
                    _round_in_place(tensor)
                    weights.append(tensor)
    return weights


@contextmanager
def emulated_bf16(net: nn.Module) -> Iterator[nn.Module]:
    """Run `net` (fp32, changed in place: its Linear and Conv weights are rounded to bf16 values) as
    the bf16 path would, with fp32 kernels. Use under torch.no_grad(). An output stands for a bf16
    tensor while the context lasts (`.float()` does not dispatch, so inside it casts nothing): take
    what is computed from it in fp32, such as a sigmoid, after the context."""
    with _Bf16Values(bf16_layer_weights(net)):
        yield net

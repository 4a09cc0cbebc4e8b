"""The attention contract every variant follows, and the helpers they share.

Notation: B batch, Tq query length, Tk key length, Dq/Dk/Dv widths, H heads.

A variant is an ``nn.Module`` built as ``Cls(d_query, d_key, d_value, **yaml_params)`` and called as

    context, weights = attn(query, key, value, mask=None, need_weights=False)

- query ``(B, Tq, Dq)``, key ``(B, Tk, Dk)``, value ``(B, Tk, Dv)``;
- mask: bool, broadcastable to ``(B, Tq, Tk)``, True = may attend, or None (attend everywhere);
- context ``(B, Tq, attn.out_dim)``;
- weights ``(B, Tq, Tk)`` (averaged over heads) only when ``need_weights``; otherwise None, and the
  fast path must not materialise them (fused SDPA where the maths allows).
- Masked keys get exactly zero weight; a row with no key to attend to gives a zero context and
  zero weights, never NaN.

Class attributes:
- ``name``: the registry name (set by ``@ATTENTION.register``).
- ``baseline``: True only for ``none``; each backbone then uses its own no-attention baseline.
- ``projects``: True when the variant learns its own input/output projections (``multihead``);
  backbones that work on projected queries/keys/values (the Transformer) add them around
  variants that do not.
- ``reference``: the paper equation the variant implements.

Precision (``torch.autocast``, or 16-bit tensors as ``bench.dtype=bf16`` passes them): products
run in the dtype autocast gives them (the fused SDPA kernels take bfloat16/float16 and keep their
logits and softmax in float32 themselves); what normalises runs in float32, as CUDA autocast
treats softmax, norms and sums. So the weights path's logits (``dot_scores``: float32 products of
the operands SDPA would get), the softmax, additive's tanh scores, cosine's norms and linear's and
lowrank's length-wise kernel sums are float32. Contexts come back in the dtype a matmul would give
here (``mix_dtype``: the autocast dtype under autocast); weights come back in float32, so a row
sums to 1 within float32 rounding (bfloat16 weights missed 1 by up to 7e-3). In float32 and
float64 every step of this is a no-op: the same aten ops run as without it.

Helpers any variant (built-in or plugin) may use, so the same check or step reads the same
everywhere: ``check_widths``, ``require_equal_widths`` and ``check_dropout`` for the constructor;
``expand_mask``, ``masked_softmax``, ``softmax_mix``, ``dot_scores`` and ``sdpa_mask`` for the
forward pass; ``upcast``, ``mix_dtype`` and ``full_precision`` for precision.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

# Wiring arguments the backbone passes; everything else comes from conf/attention/<name>.yaml.
CONTEXT_ARGS: tuple[str, ...] = ("d_query", "d_key", "d_value")


@runtime_checkable
class Attention(Protocol):
    name: ClassVar[str]
    baseline: ClassVar[bool]
    projects: ClassVar[bool]
    reference: ClassVar[str]
    out_dim: int

    def __call__(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]: ...


def check_widths(d_query: int, d_key: int, d_value: int) -> None:
    """Refuse a query, key or value width below 1, naming the argument."""
    for arg, dim in (("d_query", d_query), ("d_key", d_key), ("d_value", d_value)):
        if dim < 1:
            raise ValueError(f"{arg} must be a positive width (>= 1), got {dim}")


def require_equal_widths(
    name: str, d_query: int, d_key: int, why: str, alternatives: tuple[str, ...]
) -> None:
    """Refuse d_query != d_key for a variant whose score compares q and k directly.

    ``why`` says what the score does with q and k (``"scores qᵀk"``); ``alternatives`` names the
    variants that take different widths. The message reads "<name> attention <why>, so d_query
    must equal d_key; got d_query=.., d_key=.. (use 'a' or 'b' for different widths)".
    """
    if d_query != d_key:
        use = " or ".join(f"'{alt}'" for alt in alternatives)
        raise ValueError(
            f"{name} attention {why}, so d_query must equal d_key; got "
            f"d_query={d_query}, d_key={d_key} (use {use} for different widths)"
        )


def check_dropout(dropout: float) -> None:
    """Refuse a dropout probability outside [0, 1)."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def expand_mask(mask: Tensor | None, b: int, tq: int, tk: int) -> Tensor | None:
    """Broadcast a bool mask to (B, Tq, Tk); None stays None."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"attention mask must be bool (True = may attend), got {mask.dtype}")
    return mask.expand(b, tq, tk)


def upcast(x: Tensor) -> Tensor:
    """x in float32 if it is a 16-bit float (bfloat16, float16); any other tensor as it is."""
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype autocast casts x's matmuls to here, or None outside autocast (and for float64,
    which autocast leaves alone)."""
    device = x.device.type
    if x.dtype == torch.float64 or not _has_autocast(device):
        return None
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


@functools.cache
def _has_autocast(device: str) -> bool:
    """Whether autocast exists for this device type (``is_autocast_enabled`` raises if not)."""
    return torch.amp.is_autocast_available(device)


def mix_dtype(x: Tensor) -> torch.dtype:
    """The dtype a matmul with x returns here: the autocast dtype under autocast, else x's own."""
    return _autocast_dtype(x) or x.dtype


def full_precision(x: Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on x's device (ops then run in their inputs' dtypes); a no-op outside it."""
    if _autocast_dtype(x) is None:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, enabled=False)


def attend_in_float32(
    attend: Callable[[Tensor, Tensor, Tensor, Tensor | None, bool], tuple[Tensor, Tensor | None]],
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None]:
    """``attend(q, k, v, mask, need_weights)`` with autocast off and 16-bit operands in float32
    (sums over the sequence and their normalisers lose too much in bfloat16); the context comes
    back in the dtype a matmul would give (``mix_dtype``), the weights as ``attend`` made them."""
    out = mix_dtype(value)  # the context's dtype: autocast's under autocast
    with full_precision(query):
        context, weights = attend(upcast(query), upcast(key), upcast(value), mask, need_weights)
    return context.to(out), weights


def dot_scores(query: Tensor, key: Tensor, scale: float) -> Tensor:
    """Logits scale · q kᵀ over the last two axes: (..., Tq, D), (..., Tk, D) -> (..., Tq, Tk).

    The operands are the ones fused SDPA would multiply (under autocast: rounded to the autocast
    dtype) and the products are summed and kept in float32, as SDPA keeps them, so the weights
    path sees the fast path's logits: a bfloat16 logit near 64 is off by up to 0.25 (weights
    off by 28%). Without autocast, in float32 or float64, this is ``query @ keyᵀ · scale``.
    """
    dtype = _autocast_dtype(query)
    if dtype is None:
        return upcast(query) @ upcast(key).transpose(-2, -1) * scale
    with torch.autocast(query.device.type, enabled=False):
        return query.to(dtype).float() @ key.to(dtype).float().transpose(-2, -1) * scale


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last axis with masked positions at exactly 0; empty rows give all zeros.

    16-bit scores are softmaxed in float32 and the weights returned in float32 (what CUDA
    autocast's softmax does), so they stay a distribution to float32 precision.
    """
    scores = upcast(scores)
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))
    has_any = mask.any(dim=-1, keepdim=True)
    # A fully masked row would be softmax(-inf...) = NaN: give it a finite row, then zero it.
    scores = torch.where(has_any, scores, torch.zeros_like(scores))
    return torch.softmax(scores, dim=-1) * has_any


def softmax_mix(
    scores: Tensor, mask: Tensor | None, value: Tensor, p: float
) -> tuple[Tensor, Tensor]:
    """Weights ``masked_softmax(scores, mask)`` and the values they mix: (context, weights).

    scores (..., Tq, Tk), mask broadcastable to it or None, value (..., Tk, Dv) ->
    context (..., Tq, Dv), weights (..., Tq, Tk). Dropout with probability ``p`` (0 = none)
    regularises the mixing only; the returned weights stay a distribution (float32 for 16-bit
    scores); the mixing runs in the values' dtype (or autocast's), like SDPA's.
    """
    weights = masked_softmax(scores, mask)  # (..., Tq, Tk)
    context = F.dropout(weights, p, training=p > 0).to(value.dtype) @ value  # (..., Tq, Dv)
    return context, weights


def sdpa_mask(mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """Prepare a bool mask for fused SDPA: returns (safe_mask, empty_rows).

    Fully masked rows are opened up (SDPA would return NaN for them) and reported in
    ``empty_rows`` (shape ``(..., Tq, 1)``) so the caller can zero their context afterwards.
    """
    if mask is None:
        return None, None
    empty = ~mask.any(dim=-1, keepdim=True)
    if not bool(empty.any()):
        return mask, None
    return mask | empty, empty

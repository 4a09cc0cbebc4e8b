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

Helpers any variant (built-in or plugin) may use, so the same check or step reads the same
everywhere: ``check_widths``, ``require_equal_widths`` and ``check_dropout`` for the constructor;
``expand_mask``, ``masked_softmax``, ``softmax_mix`` and ``sdpa_mask`` for the forward pass.
"""

from __future__ import annotations

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


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last axis with masked positions at exactly 0; empty rows give all zeros."""
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
    regularises the mixing only; the returned weights stay a distribution.
    """
    weights = masked_softmax(scores, mask)  # (..., Tq, Tk)
    context = F.dropout(weights, p, training=p > 0) @ value  # (..., Tq, Dv)
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

"""The attention contract every variant follows, and the masking helpers they share.

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
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch
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

"""Dot-product attention (Luong et al. 2015, "dot" score): score(q, k) = qᵀk.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width.

Fast path (``need_weights=False``): ``F.scaled_dot_product_attention`` with ``scale=1``; no
(B, Tq, Tk) weights are materialised by this code (PyTorch picks a fused kernel when one fits:
on CPU that needs Dv == Dk, otherwise its math fallback runs). Weights path: explicit scores and
``masked_softmax``, both in float32 under autocast as inside the fused kernel (see base.py).
``ScaledDotProductAttention`` (scaled.py) reuses this class with 1/√D.

Positions inside attention (causal.py): RoPE rotates q and k before the score (qᵀk then depends on
their distance only); ALiBi's bias is added to the logits (the fast path hands SDPA a float mask:
the bias where a key may be attended, -inf elsewhere).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.attention import ATTENTION
from attnbench.attention.base import (
    Attention,
    Call,
    Reference,
    check_dropout,
    dot_scores,
    expand_mask,
    require_equal_widths,
    sdpa_mask,
    softmax_mix,
)
from attnbench.attention.causal import Positions, fold_bias, hide_future


def dot_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """softmax(q kᵀ · scale) v with the (B, Tq, Tk) weights materialised: the bench's ``naive``
    (``causal``: no key after its query)."""
    scores = hide_future(q @ k.transpose(1, 2) * attn.scale, causal)  # (B, Tq, Tk)
    return torch.softmax(scores, dim=-1) @ v  # (B, Tq, Dv)


def _dot_bare(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """The fast path's SDPA call alone (no mask but ``is_causal``, no dropout): the bench's
    ``bare``."""
    # (B, 1, T, D): PyTorch's fused CPU kernel takes 4-D inputs only
    return F.scaled_dot_product_attention(
        q[:, None], k[:, None], v[:, None], is_causal=causal, scale=attn.scale
    )[:, 0]


def sdpa_flops(b: int, tq: int, tk: int, dk: int, dv: int) -> float:
    """FLOPs of one SDPA forward+backward as torch's FLOP counter counts them: forward q kᵀ and
    p v, backward the recomputed scores and four products (2 FLOPs per multiply-add)."""
    return 2.0 * b * tq * tk * (4 * dk + 3 * dv)


@ATTENTION.register("dot")
class DotProductAttention(Attention):
    fused: ClassVar[bool] = True
    materialises: ClassVar[bool] = False
    equal_widths: ClassVar[bool] = True
    accepts_rotary: ClassVar[bool] = True
    accepts_bias: ClassVar[bool] = True
    references = MappingProxyType(
        {"naive": Reference(dot_naive, causal=True), "bare": Reference(_dot_bare, causal=True)}
    )
    reference: ClassVar[str] = (
        "Luong, Pham & Manning 2015, 'Effective Approaches to Attention-based NMT', "
        "eq. 8 'dot': score(h_t, h_s) = h_tᵀ h_s"
    )

    def __init__(self, d_query: int, d_key: int, d_value: int, *, dropout: float = 0.0) -> None:
        super().__init__(d_query, d_key, d_value)
        require_equal_widths(self.name, d_query, d_key, "scores qᵀk")
        check_dropout(dropout)
        self.dropout = dropout

    @property
    def scale(self) -> float:
        """Multiplier applied to qᵀk before the softmax (1 for the plain dot score)."""
        return 1.0

    def flops(self, call: Call) -> float:
        return sdpa_flops(call.batch, call.tq, call.tk, self.d_key, self.d_value)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        b, tq, _ = query.shape
        m = expand_mask(mask, b, tq, key.shape[1])  # (B, Tq, Tk) or None
        p = self.dropout if self.training else 0.0
        bias = None
        if positions is not None:
            query, key = positions.rotated(query, key)  # RoPE, or as they are
            bias = positions.score_bias(1)  # ALiBi: (B | 1, 1, Tq, Tk), or None

        if not need_weights:
            safe, empty = sdpa_mask(m)
            # A head axis of 1: PyTorch's fused CPU kernel takes (B, H, T, D) only (and Dv == Dk).
            context = F.scaled_dot_product_attention(
                query[:, None],  # (B, 1, Tq, D)
                key[:, None],  # (B, 1, Tk, D)
                value[:, None],  # (B, 1, Tk, Dv)
                attn_mask=fold_bias(None if safe is None else safe[:, None], bias, query.dtype),
                dropout_p=p,
                scale=self.scale,
            )[:, 0]  # (B, Tq, Dv)
            if empty is not None:  # rows with no allowed key: zero value and zero gradient
                context = context.masked_fill(empty, 0.0)
            return context, None

        scores = dot_scores(query, key, self.scale)  # (B, Tq, Tk), float32 under autocast
        if bias is not None:
            scores = scores + bias[:, 0]
        return softmax_mix(scores, m, value, p)  # (B, Tq, Dv), (B, Tq, Tk)

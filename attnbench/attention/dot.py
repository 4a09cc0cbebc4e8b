"""Dot-product attention (Luong et al. 2015, "dot" score): score(q, k) = qᵀk.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width.

Fast path (``need_weights=False``): ``F.scaled_dot_product_attention`` with ``scale=1``; no
(B, Tq, Tk) weights are materialised by this code (PyTorch picks a fused kernel when one fits:
on CPU that needs Dv == Dk, otherwise its math fallback runs). Weights path: explicit scores and
``masked_softmax``, both in float32 under autocast as inside the fused kernel (see base.py).
``ScaledDotProductAttention`` (scaled.py) reuses this class with 1/√D.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention.base import (
    check_dropout,
    check_widths,
    dot_scores,
    expand_mask,
    require_equal_widths,
    sdpa_mask,
    softmax_mix,
)


@ATTENTION.register("dot")
class DotProductAttention(nn.Module):
    baseline: ClassVar[bool] = False
    projects: ClassVar[bool] = False
    reference: ClassVar[str] = (
        "Luong, Pham & Manning 2015, 'Effective Approaches to Attention-based NMT', "
        "eq. 8 'dot': score(h_t, h_s) = h_tᵀ h_s"
    )

    def __init__(self, d_query: int, d_key: int, d_value: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        check_widths(d_query, d_key, d_value)
        require_equal_widths(self.name, d_query, d_key, "scores qᵀk", ("additive", "multihead"))
        check_dropout(dropout)
        self.dropout = dropout
        self.d_key = d_key
        self.out_dim = d_value

    @property
    def scale(self) -> float:
        """Multiplier applied to qᵀk before the softmax (1 for the plain dot score)."""
        return 1.0

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        b, tq, _ = query.shape
        m = expand_mask(mask, b, tq, key.shape[1])  # (B, Tq, Tk) or None
        p = self.dropout if self.training else 0.0

        if not need_weights:
            safe, empty = sdpa_mask(m)
            # A head axis of 1: PyTorch's fused CPU kernel takes (B, H, T, D) only (and Dv == Dk).
            context = F.scaled_dot_product_attention(
                query[:, None],  # (B, 1, Tq, D)
                key[:, None],  # (B, 1, Tk, D)
                value[:, None],  # (B, 1, Tk, Dv)
                attn_mask=None if safe is None else safe[:, None],  # (B, 1, Tq, Tk)
                dropout_p=p,
                scale=self.scale,
            )[:, 0]  # (B, Tq, Dv)
            if empty is not None:  # rows with no allowed key: zero value and zero gradient
                context = context.masked_fill(empty, 0.0)
            return context, None

        scores = dot_scores(query, key, self.scale)  # (B, Tq, Tk), float32 under autocast
        return softmax_mix(scores, m, value, p)  # (B, Tq, Dv), (B, Tq, Tk)

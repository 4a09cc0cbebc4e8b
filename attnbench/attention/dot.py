"""Dot-product attention (Luong et al. 2015, "dot" score): score(q, k) = qᵀk.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width.

Fast path (``need_weights=False``): ``F.scaled_dot_product_attention`` with ``scale=1``; no
(B, Tq, Tk) weights are materialised by this code (PyTorch picks a fused kernel when one fits:
on CPU that needs Dv == Dk, otherwise its math fallback runs). Weights path: explicit scores and
``masked_softmax``. ``ScaledDotProductAttention`` (scaled.py) reuses this class with 1/√D.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention.base import expand_mask, masked_softmax, sdpa_mask


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
        for arg, dim in (("d_query", d_query), ("d_key", d_key), ("d_value", d_value)):
            if dim < 1:
                raise ValueError(f"{arg} must be a positive width (>= 1), got {dim}")
        if d_query != d_key:
            raise ValueError(
                f"{self.name} attention scores qᵀk, so d_query must equal d_key; got "
                f"d_query={d_query}, d_key={d_key} (use 'additive' or 'multihead' for "
                "different widths)"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
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

        scores = query @ key.transpose(1, 2) * self.scale  # (B, Tq, Tk)
        weights = masked_softmax(scores, m)  # (B, Tq, Tk)
        # Dropout regularises the mixing only; the returned weights stay a distribution.
        context = F.dropout(weights, p, training=p > 0) @ value  # (B, Tq, Dv)
        return context, weights

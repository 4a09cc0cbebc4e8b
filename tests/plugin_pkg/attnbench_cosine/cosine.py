"""Cosine attention (Graves, Wayne & Danihelka 2014, 'Neural Turing Machines', §3.3.1 eq. 5-6):
score(q, k) = β · qᵀk / (‖q‖ ‖k‖), weights = softmax over keys.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width.

Scores are bounded in [-β, β] whatever the widths or norms, so the softmax cannot saturate
from large activations; β (`sharpness`) sets how peaked the weights can get. Fast path: fused
SDPA on unit-normalised queries and keys with ``scale=β`` (no (B, Tq, Tk) weights materialised);
weights path: explicit scores and attnbench's ``masked_softmax``.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention.base import expand_mask, masked_softmax, sdpa_mask

EPS = 1e-8


class CosineAttention(nn.Module):
    name: ClassVar[str] = "cosine"  # set again by attnbench's registry from the entry point
    baseline: ClassVar[bool] = False
    projects: ClassVar[bool] = False
    reference: ClassVar[str] = (
        "Graves, Wayne & Danihelka 2014, 'Neural Turing Machines', §3.3.1 eq. 5-6: "
        "w_i = softmax_i(β K[k, M_i]), K[u, v] = u·v / (‖u‖ ‖v‖)"
    )

    def __init__(
        self, d_query: int, d_key: int, d_value: int, *, sharpness: float = 10.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for arg, dim in (("d_query", d_query), ("d_key", d_key), ("d_value", d_value)):
            if dim < 1:
                raise ValueError(f"{arg} must be a positive width (>= 1), got {dim}")
        if d_query != d_key:
            raise ValueError(
                f"cosine attention compares q and k, so d_query must equal d_key; got "
                f"d_query={d_query}, d_key={d_key}"
            )
        if sharpness <= 0:
            raise ValueError(f"sharpness must be > 0, got {sharpness}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.sharpness = float(sharpness)
        self.dropout = dropout
        self.out_dim = d_value

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
        q = F.normalize(query, dim=-1, eps=EPS)  # (B, Tq, D), unit rows
        k = F.normalize(key, dim=-1, eps=EPS)  # (B, Tk, D), unit rows

        if not need_weights:
            safe, empty = sdpa_mask(m)
            context = F.scaled_dot_product_attention(
                q[:, None],  # (B, 1, Tq, D)
                k[:, None],  # (B, 1, Tk, D)
                value[:, None],  # (B, 1, Tk, Dv)
                attn_mask=None if safe is None else safe[:, None],  # (B, 1, Tq, Tk)
                dropout_p=p,
                scale=self.sharpness,
            )[:, 0]  # (B, Tq, Dv)
            if empty is not None:  # rows with no allowed key: zero context
                context = context.masked_fill(empty, 0.0)
            return context, None

        scores = self.sharpness * (q @ k.transpose(1, 2))  # (B, Tq, Tk), in [-β, β]
        weights = masked_softmax(scores, m)  # (B, Tq, Tk)
        context = F.dropout(weights, p, training=p > 0) @ value  # (B, Tq, Dv)
        return context, weights

"""Multi-head attention (Vaswani et al. 2017 §3.2.2): H heads of scaled dot-product attention.

Notation: B batch, Tq query length, Tk key length, Dq/Dk/Dv input widths, D = Dq model width,
H heads, Dh = D / H per-head width.

MultiHead(Q, K, V) = Concat(head_1..head_H) W^O, head_i = softmax(Q W_i^Q (K W_i^K)ᵀ / √Dh) V W_i^V.
Projections map queries, keys and values to D = Dq (like ``nn.MultiheadAttention`` with
``kdim``/``vdim``); ``load_from_torch_mha`` copies the weights of such a module. Fast path: fused
SDPA on (B, H, T, Dh); weights path: explicit per-head softmax, weights averaged over heads (as
``nn.MultiheadAttention(average_attn_weights=True)``). Query rows with no allowed key return a
zero context (after the output projection, so not its bias), unlike ``nn.MultiheadAttention``,
which returns NaN there.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention.base import (
    check_dropout,
    check_widths,
    dot_scores,
    expand_mask,
    sdpa_mask,
    softmax_mix,
)


@ATTENTION.register("multihead")
class MultiHeadAttention(nn.Module):
    baseline: ClassVar[bool] = False
    projects: ClassVar[bool] = True
    reference: ClassVar[str] = (
        "Vaswani et al. 2017, 'Attention Is All You Need', §3.2.2: "
        "MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, "
        "head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)"
    )

    def __init__(
        self, d_query: int, d_key: int, d_value: int, *, heads: int = 4, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_widths(d_query, d_key, d_value)
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        if d_query % heads:
            raise ValueError(
                f"multihead: the model width d_query={d_query} must be divisible by "
                f"heads={heads}; pick heads among the divisors of {d_query}: "
                f"{', '.join(str(h) for h in range(1, d_query + 1) if d_query % h == 0)}"
            )
        check_dropout(dropout)
        self.heads = heads
        self.dropout = dropout
        self.d_model = d_query
        self.out_dim = d_query
        self.q_proj = nn.Linear(d_query, d_query)
        self.k_proj = nn.Linear(d_key, d_query)
        self.v_proj = nn.Linear(d_value, d_query)
        self.out_proj = nn.Linear(d_query, d_query)

    @torch.no_grad()
    def load_from_torch_mha(self, mha: nn.MultiheadAttention) -> None:
        """Copy the weights of an equally sized ``nn.MultiheadAttention`` into this module."""
        if mha.embed_dim != self.d_model or mha.num_heads != self.heads:
            raise ValueError(
                f"nn.MultiheadAttention has embed_dim={mha.embed_dim}, num_heads={mha.num_heads};"
                f" this module has d_model={self.d_model}, heads={self.heads}"
            )
        if (mha.kdim, mha.vdim) != (self.k_proj.in_features, self.v_proj.in_features):
            raise ValueError(
                f"nn.MultiheadAttention has kdim={mha.kdim}, vdim={mha.vdim}; this module has "
                f"d_key={self.k_proj.in_features}, d_value={self.v_proj.in_features}"
            )
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("add_bias_kv / add_zero_attn are not part of this variant")
        d = self.d_model
        if mha.in_proj_weight is not None:  # packed (3D, D) when kdim == vdim == embed_dim
            w_q, w_k, w_v = mha.in_proj_weight.split(d)
        else:
            w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        self.q_proj.weight.copy_(w_q)
        self.k_proj.weight.copy_(w_k)
        self.v_proj.weight.copy_(w_v)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        # nn.MultiheadAttention(bias=False) has no biases: ours are then zero.
        in_bias = mha.in_proj_bias
        if in_bias is None:
            in_bias = torch.zeros(3 * d, dtype=w_q.dtype, device=w_q.device)
        out_bias = mha.out_proj.bias
        for proj, bias in zip(
            (self.q_proj, self.k_proj, self.v_proj, self.out_proj),
            (*in_bias.split(d), out_bias if out_bias is not None else torch.zeros_like(w_q[0])),
            strict=True,
        ):
            proj.bias.copy_(bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        b, tq, _ = query.shape
        tk = key.shape[1]
        h, dh = self.heads, self.d_model // self.heads
        m = expand_mask(mask, b, tq, tk)  # (B, Tq, Tk) or None
        m4 = None if m is None else m[:, None]  # (B, 1, Tq, Tk), shared by the heads
        safe, empty = sdpa_mask(m4)  # empty: (B, 1, Tq, 1) or None
        p = self.dropout if self.training else 0.0

        q = self.q_proj(query).view(b, tq, h, dh).transpose(1, 2)  # (B, H, Tq, Dh)
        k = self.k_proj(key).view(b, tk, h, dh).transpose(1, 2)  # (B, H, Tk, Dh)
        v = self.v_proj(value).view(b, tk, h, dh).transpose(1, 2)  # (B, H, Tk, Dh)

        if need_weights:
            scores = dot_scores(q, k, dh**-0.5)  # (B, H, Tq, Tk)
            ctx, head_weights = softmax_mix(scores, m4, v, p)  # (B, H, Tq, Dh), (B, H, Tq, Tk)
            weights = head_weights.mean(dim=1)  # (B, Tq, Tk)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=safe, dropout_p=p)
            weights = None  # ctx: (B, H, Tq, Dh)

        ctx = ctx.transpose(1, 2).reshape(b, tq, self.d_model)  # (B, Tq, D)
        out = self.out_proj(ctx)  # (B, Tq, D)
        if empty is not None:  # rows with no allowed key: zero value and zero gradient
            out = out.masked_fill(empty[:, 0], 0.0)
        return out, weights

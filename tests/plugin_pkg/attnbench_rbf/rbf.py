"""RBF-kernel attention (Kim, Papamakarios & Mnih 2021, 'The Lipschitz Constant of
Self-Attention', L2 self-attention): score(q, k) = −‖q − k‖² / τ, weights = softmax over keys.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width.

A key is attended to by how close it is, not by how aligned: the weights are a Gaussian kernel
exp(−‖q − k‖² / τ) normalised over the keys. τ (``temperature``) defaults to √D.

Fast path: −‖q − k‖² = 2qᵀk − ‖k‖² − ‖q‖², and a softmax over keys ignores the query-only
‖q‖², so the scores are dot products of q̃ = [2q, 1] and k̃ = [k, −‖k‖²] (one extra column):
fused SDPA on those with ``scale=1/τ``, no (B, Tq, Tk) weights materialised. Weights path: the
full squared distance and attnbench's ``softmax_mix`` (a float32 softmax under autocast).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.attention.base import Attention, expand_mask, sdpa_mask, softmax_mix


class RBFAttention(Attention):
    """Facts beyond ``Attention``'s defaults: a fused fast path that materialises nothing."""

    fused: ClassVar[bool] = True
    materialises: ClassVar[bool] = False
    equal_widths: ClassVar[bool] = True  # ‖q − k‖ needs q and k of one width
    reference: ClassVar[str] = (
        "Kim, Papamakarios & Mnih 2021, 'The Lipschitz Constant of Self-Attention', §3 L2 "
        "self-attention: P_ij ∝ exp(−‖x_iᵀW^Q − x_jᵀW^K‖² / √(D/H))"
    )

    def __init__(
        self,
        d_query: int,
        d_key: int,
        d_value: int,
        *,
        temperature: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(d_query, d_key, d_value)  # checks the widths
        if d_query != d_key:
            raise ValueError(
                f"rbf attention measures ‖q − k‖, so d_query must equal d_key; got "
                f"d_query={d_query}, d_key={d_key}"
            )
        if temperature < 0:
            raise ValueError(f"temperature must be > 0, or 0 for √d_key; got {temperature}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.temperature = float(temperature) or math.sqrt(d_key)
        self.dropout = dropout

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
        k2 = key.square().sum(dim=-1, keepdim=True)  # ‖k‖²: (B, Tk, 1)

        if not need_weights:
            q_aug = torch.cat([2 * query, torch.ones_like(query[..., :1])], dim=-1)  # (B, Tq, D+1)
            k_aug = torch.cat([key, -k2], dim=-1)  # (B, Tk, D+1)
            safe, empty = sdpa_mask(m)
            context = F.scaled_dot_product_attention(
                q_aug[:, None],  # (B, 1, Tq, D+1)
                k_aug[:, None],  # (B, 1, Tk, D+1)
                value[:, None],  # (B, 1, Tk, Dv)
                attn_mask=None if safe is None else safe[:, None],  # (B, 1, Tq, Tk)
                dropout_p=p,
                scale=1.0 / self.temperature,
            )[:, 0]  # (B, Tq, Dv)
            if empty is not None:  # rows with no allowed key: zero context
                context = context.masked_fill(empty, 0.0)
            return context, None

        q2 = query.square().sum(dim=-1, keepdim=True)  # ‖q‖²: (B, Tq, 1)
        sq_dist = q2 - 2 * query @ key.transpose(1, 2) + k2.transpose(1, 2)  # (B, Tq, Tk)
        return softmax_mix(-sq_dist / self.temperature, m, value, p)  # (B, Tq, Dv), (B, Tq, Tk)

"""Luong "general" attention (Luong et al. 2015, eq. 8): score(q, k) = qᵀ W k, W learned.

Notation: B batch, Tq query length, Tk key length, Dq/Dk query/key widths, Dv value width.

The bilinear form lets queries and keys of different widths be compared (W is Dq × Dk), and
learns which directions of the two spaces should match. W k is computed once per key (Tk rows),
then the score is the plain dot product qᵀ(W k) and the rest is ``dot`` attention: fused SDPA
with scale 1 on the fast path (no (B, Tq, Tk) weights materialised), explicit scores and
``masked_softmax`` on the weights path (see dot.py).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention.base import check_widths
from attnbench.attention.dot import DotProductAttention


@ATTENTION.register("general")
class GeneralAttention(nn.Module):
    baseline: ClassVar[bool] = False
    # W scores, it does not map inputs to a new space: the Transformer still adds q/k/v/o.
    projects: ClassVar[bool] = False
    reference: ClassVar[str] = (
        "Luong, Pham & Manning 2015, 'Effective Approaches to Attention-based NMT', "
        "eq. 8 'general': score(h_t, h_s) = h_tᵀ W_a h_s"
    )

    def __init__(self, d_query: int, d_key: int, d_value: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        check_widths(d_query, d_key, d_value)
        self.W = nn.Linear(d_key, d_query, bias=False)  # W_a: (Dq, Dk); a bias cancels per row
        self.dot = DotProductAttention(d_query, d_query, d_value, dropout=dropout)
        self.out_dim = d_value

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        wk = self.W(key)  # W_a h_s: (B, Tk, Dq)
        return self.dot(query, wk, value, mask, need_weights)  # (B, Tq, Dv), (B, Tq, Tk) | None

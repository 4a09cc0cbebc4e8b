"""Luong "general" attention (Luong et al. 2015, eq. 8): score(q, k) = qᵀ W k, W learned.

Notation: B batch, Tq query length, Tk key length, Dq/Dk query/key widths, Dv value width.

The bilinear form lets queries and keys of different widths be compared (W is Dq × Dk), and
learns which directions of the two spaces should match. W k is computed once per key (Tk rows),
then the score is the plain dot product qᵀ(W k) and the rest is ``dot`` attention: fused SDPA
with scale 1 on the fast path (no (B, Tq, Tk) weights materialised), explicit scores and
``masked_softmax`` on the weights path (see dot.py).

Positions inside attention: RoPE rotates q and W k (so qᵀ R W k depends on the distance only;
rotating k before W would not), ALiBi's bias goes on the logits; decoding caches W k.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar

from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention.base import Attention, Call, Reference
from attnbench.attention.causal import Positions
from attnbench.attention.dot import DotProductAttention, dot_naive, sdpa_flops


def _general_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    return dot_naive(attn.dot, q, attn.W(k), v, causal)  # qᵀ(W k), scale 1, weights materialised


@ATTENTION.register("general")
class GeneralAttention(Attention):
    # W scores, it does not map inputs to a new space: the Transformer still adds q/k/v/o.
    projects: ClassVar[bool] = False
    fused: ClassVar[bool] = True
    materialises: ClassVar[bool] = False
    accepts_rotary: ClassVar[bool] = True  # on q and W k, in dot
    accepts_bias: ClassVar[bool] = True
    references = MappingProxyType({"naive": Reference(_general_naive, causal=True)})
    reference: ClassVar[str] = (
        "Luong, Pham & Manning 2015, 'Effective Approaches to Attention-based NMT', "
        "eq. 8 'general': score(h_t, h_s) = h_tᵀ W_a h_s"
    )

    def __init__(self, d_query: int, d_key: int, d_value: int, *, dropout: float = 0.0) -> None:
        super().__init__(d_query, d_key, d_value)
        self.W = nn.Linear(d_key, d_query, bias=False)  # W_a: (Dq, Dk); a bias cancels per row
        self.dot = DotProductAttention(d_query, d_query, d_value, dropout=dropout)

    def flops(self, call: Call) -> float:
        # W k: (B·Tk, Dk) @ (Dk, Dq) forward, and its input and weight gradients
        project = 3 * 2.0 * call.batch * call.tk * self.d_key * self.d_query
        return project + sdpa_flops(call.batch, call.tq, call.tk, self.d_query, self.d_value)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        wk = self.W(key)  # W_a h_s: (B, Tk, Dq)
        # (B, Tq, Dv), (B, Tq, Tk) | None
        return self.dot(query, wk, value, mask, need_weights, positions)

    def decode(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        keep: Tensor,
        state: Any = None,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Any]:
        """``dot``'s cache of W k: each key is projected once."""
        return self.dot.decode(query, self.W(key), value, keep, state, positions)

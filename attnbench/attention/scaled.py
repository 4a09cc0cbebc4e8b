"""Scaled dot-product attention (Vaswani et al. 2017 §3.2.1): score(q, k) = qᵀk / √Dk.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width.

Identical to ``dot`` apart from the 1/√Dk factor, which keeps the logits' variance near 1 for
unit-variance inputs so the softmax does not saturate as the width grows. Same fast path (fused
SDPA) and weights path (explicit scores + ``masked_softmax``); see dot.py.
"""

from __future__ import annotations

import math
from typing import ClassVar

from attnbench.attention import ATTENTION
from attnbench.attention.dot import DotProductAttention


@ATTENTION.register("scaled")
class ScaledDotProductAttention(DotProductAttention):
    reference: ClassVar[str] = (
        "Vaswani et al. 2017, 'Attention Is All You Need', §3.2.1 eq. 1: "
        "Attention(Q, K, V) = softmax(QKᵀ / √d_k) V"
    )

    def __init__(self, d_query: int, d_key: int, d_value: int, *, dropout: float = 0.0) -> None:
        super().__init__(d_query, d_key, d_value, dropout=dropout)

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.d_key)

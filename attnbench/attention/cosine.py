"""Cosine attention (Graves et al. 2014, NTM content addressing): score(q, k) = cos(q, k) / τ.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width.

    w_j = softmax_j(β K[q, k_j]),  K[u, v] = uᵀv / (‖u‖ ‖v‖),  β = 1/τ        (NTM eq. 5-6)

Scores lie in [-1/τ, 1/τ] whatever the widths or norms, so large activations cannot saturate the
softmax; τ sets how peaked the weights can get. In the NTM the controller emits β at every step;
here τ is one learned scalar (``learn_temperature: true``, stored as log τ so it stays positive)
or a fixed constant. A zero vector is compared as zero (F.normalize's eps), not as NaN.

q/‖q‖·β and k/‖k‖ then go through ``dot`` attention: fused SDPA with scale 1 on the fast path (no
(B, Tq, Tk) weights materialised), explicit scores and ``masked_softmax`` on the weights path.
Positions inside attention: RoPE rotates the unit q and k (a rotation keeps norms, so the score
is still a cosine, of the rotated vectors), ALiBi's bias goes on the logits; decoding caches the
unit keys.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention.base import Attention, Call, Reference, require_equal_widths, upcast
from attnbench.attention.causal import Positions
from attnbench.attention.dot import DotProductAttention, dot_naive, sdpa_flops

EPS = 1e-8  # norms below this count as EPS: a zero vector has cosine 0 with everything


def _cosine_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    beta = torch.exp(-attn.log_temperature)  # 1/τ
    qn = F.normalize(q, dim=-1, eps=EPS) * beta  # (B, Tq, D)
    return dot_naive(attn.dot, qn, F.normalize(k, dim=-1, eps=EPS), v, causal)


@ATTENTION.register("cosine")
class CosineAttention(Attention):
    fused: ClassVar[bool] = True
    materialises: ClassVar[bool] = False
    equal_widths: ClassVar[bool] = True
    bounded_in_bf16: ClassVar[bool] = True  # |score| <= 1/τ whatever the inputs' scale
    accepts_rotary: ClassVar[bool] = True  # in dot, on the unit vectors
    accepts_bias: ClassVar[bool] = True
    references = MappingProxyType({"naive": Reference(_cosine_naive, causal=True)})
    reference: ClassVar[str] = (
        "Graves, Wayne & Danihelka 2014, 'Neural Turing Machines', §3.3.1 eq. 5-6: "
        "w_i = softmax_i(β K[k, M_i]), K[u, v] = u·v / (‖u‖ ‖v‖); here β = 1/τ"
    )

    def __init__(
        self,
        d_query: int,
        d_key: int,
        d_value: int,
        *,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(d_query, d_key, d_value)
        require_equal_widths("cosine", d_query, d_key, "compares q with k")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (score = cos / τ), got {temperature}")
        log_tau = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_temperature", log_tau)
        self.learn_temperature = learn_temperature
        self.dot = DotProductAttention(d_query, d_key, d_value, dropout=dropout)

    def flops(self, call: Call) -> float:
        return sdpa_flops(call.batch, call.tq, call.tk, self.d_key, self.d_value)

    @property
    def temperature(self) -> float:
        """τ as it stands (the learned value, or the fixed one)."""
        return float(self.log_temperature.detach().exp())

    def _unit(self, query: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
        """q/‖q‖·β (B, Tq, D) and k/‖k‖ (B, Tk, D) in the inputs' dtypes."""
        beta = torch.exp(-upcast(self.log_temperature))  # 1/τ, a 0-d tensor (learned or not)
        # Norms in float32 (a 16-bit sum of squares loses bits, and overflows in float16), then
        # back to the inputs' dtype, the one SDPA gets anyway.
        q = (F.normalize(upcast(query), dim=-1, eps=EPS) * beta).to(query.dtype)  # (B, Tq, D)
        k = F.normalize(upcast(key), dim=-1, eps=EPS).to(key.dtype)  # (B, Tk, D), unit rows
        return q, k

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        q, k = self._unit(query, key)
        # (B, Tq, Dv), (B, Tq, Tk) | None
        return self.dot(q, k, value, mask, need_weights, positions)

    def decode(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        keep: Tensor,
        state: Any = None,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Any]:
        """``dot``'s cache of the unit keys."""
        q, k = self._unit(query, key)
        return self.dot.decode(q, k, value, keep, state, positions)

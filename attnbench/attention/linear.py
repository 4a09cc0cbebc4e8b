"""Kernelised linear attention (Katharopoulos et al. 2020): sim(q, k) = φ(q)ᵀφ(k), φ = elu + 1.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width,
T = Tq = Tk under a causal mask, C chunk length.

    context_i = Σ_j M_ij φ(q_i)ᵀφ(k_j) v_j / Σ_j M_ij φ(q_i)ᵀφ(k_j)
              = φ(q_i)ᵀ (Σ_j M_ij φ(k_j) v_jᵀ) / φ(q_i)ᵀ (Σ_j M_ij φ(k_j))

with M the mask. φ(x) = elu(x) + 1 > 0, so every weight is positive and the denominator is zero
only when the row has no key to attend to (then the context is zero, not NaN). There is no
softmax and no 1/√D: the similarity is the kernel itself.

Fast path (``need_weights=False``), chosen from the mask's structure (see ``_layout.py``):
- no mask or key padding (encoders, pooling, cross-attention): the (D, Dv) sum over keys is
  formed once and every query reads it: O((Tq + Tk)·D·Dv) time, no (Tq, Tk) tensor;
- causal key padding (a decoder's self-attention): prefix sums S_i = Σ_{j≤i} φ(k_j) v_jᵀ,
  Z_i = Σ_{j≤i} φ(k_j), computed per chunk of C rows (the running sum of earlier chunks plus the
  chunk's own masked C×C block), O(T·(C + D·Dv / C)) time and memory;
- any other per-query mask: the explicit masked similarity matrix (it has no O(n) form).
Weights path (diagnostics only): the explicit normalised matrix φ(Q)φ(K)ᵀ ⊙ M, row-normalised.

Decoding (``decode``, §3.4: a causal linear transformer is an RNN): the state is the running
(S, z) = Σ_j φ(k_j) [v_j, 1]ᵀ over the real keys so far, one (B, D, Dv + 1) tensor whatever the
length; the S new positions read it and their own causal block (the prompt), then add to it.
Positions inside attention are not taken: ALiBi's bias would have to enter the kernel's feature
map, and RoPE's rotation breaks the positivity the normaliser needs (``accepts_bias`` and
``accepts_rotary`` False: a backbone refuses either scheme with ``linear``).

Precision: numerator and denominator are sums over up to Tk keys of positive terms that grow
with the length (they overflow float16 at a few hundred keys of moderate size), so both paths
run in float32 with autocast off, on the operands as they come (16-bit after autocast's
projections); the context is returned in the dtype a matmul would give (``mix_dtype``), the
weights in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.attention import ATTENTION
from attnbench.attention._layout import (
    check_chunk,
    mask_layout,
    masked_kernel_sum,
    safe_denominator,
)
from attnbench.attention.base import (
    Attention,
    Call,
    Reference,
    attend_in_float32,
    expand_mask,
    full_precision,
    mix_dtype,
    require_equal_widths,
    upcast,
)
from attnbench.attention.causal import Positions, hide_future


def feature_map(x: Tensor) -> Tensor:
    """φ(x) = elu(x) + 1 (Katharopoulos et al. 2020, eq. 7): positive, so sums never cancel."""
    return F.elu(x) + 1.0


def _linear_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """The row-normalised (B, Tq, Tk) matrix φ(Q)φ(K)ᵀ, materialised: the bench's ``naive``
    (``causal``: zero after the query)."""
    sim = hide_future(feature_map(q) @ feature_map(k).transpose(1, 2), causal, 0.0)  # (B, Tq, Tk)
    return sim / sim.sum(dim=-1, keepdim=True) @ v  # (B, Tq, Dv)


@dataclass(frozen=True)
class RunningSums:
    """linear's decoding state: (S, z) of Katharopoulos et al. 2020 eq. 10-11 side by side,
    Σ_j φ(k_j) [v_j, 1]ᵀ over the real keys so far: (B, D, Dv + 1), float32."""

    sums: Tensor


@ATTENTION.register("linear")
class LinearAttention(Attention):
    materialises: ClassVar[bool] = False
    equal_widths: ClassVar[bool] = True
    bounded_in_bf16: ClassVar[bool] = True  # its sums and normaliser run in float32
    references = MappingProxyType({"naive": Reference(_linear_naive, causal=True)})
    reference: ClassVar[str] = (
        "Katharopoulos et al. 2020, 'Transformers are RNNs: Fast Autoregressive Transformers "
        "with Linear Attention', §3.2 eq. 5 and 7: V'_i = φ(Q_i)ᵀ Σ_j φ(K_j) V_jᵀ / "
        "φ(Q_i)ᵀ Σ_j φ(K_j), φ(x) = elu(x) + 1; §3.3 eq. 10-11: causal form with prefix sums "
        "S_i = Σ_{j≤i} φ(K_j) V_jᵀ, Z_i = Σ_{j≤i} φ(K_j)"
    )

    def __init__(self, d_query: int, d_key: int, d_value: int, *, chunk: int = 64) -> None:
        super().__init__(d_query, d_key, d_value)
        require_equal_widths("linear", d_query, d_key, "takes φ(q)ᵀφ(k)")
        check_chunk(chunk)
        self.chunk = chunk

    def flops(self, call: Call) -> float:
        """Unmasked or key-padded (shared sums): φ(K)ᵀ[V, 1] over Tk rows, then φ(Q) times that
        (D, Dv + 1) state over Tq rows, each with its two gradients."""
        return 6.0 * call.batch * (call.tq + call.tk) * self.d_key * (self.d_value + 1)

    def memory_bytes(self, call: Call, path: Literal["fast", "naive"] = "fast") -> int:
        """φ(Q), φ(K), [V, 1], numerator, denominator and their gradients: O(T), no (Tq, Tk)."""
        if path == "naive":
            return super().memory_bytes(call, path)
        t = max(call.tq, call.tk)
        return 8 * call.batch * t * (self.d_key + 1) * call.element_bytes

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        return attend_in_float32(self._attend, query, key, value, mask, need_weights)

    def _attend(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """``forward`` in the inputs' dtype, float32 or wider."""
        b, tq, _ = query.shape
        tk = key.shape[1]
        fq, fk = feature_map(query), feature_map(key)  # (B, Tq, D), (B, Tk, D)

        if need_weights:
            sim = fq @ fk.transpose(1, 2)  # (B, Tq, Tk), positive
            m = expand_mask(mask, b, tq, tk)
            if m is not None:
                sim = sim.masked_fill(~m, 0.0)  # masked keys: exactly zero weight
            weights = sim / safe_denominator(sim.sum(dim=-1, keepdim=True))  # (B, Tq, Tk)
            return weights @ value, weights  # (B, Tq, Dv)

        layout = mask_layout(mask, b, tq, tk)
        ones = value.new_ones(b, tk, 1)
        summed = masked_kernel_sum(fq, fk, torch.cat([value, ones], dim=-1), layout, self.chunk)
        num, den = summed[..., :-1], summed[..., -1:]  # (B, Tq, Dv), (B, Tq, 1)
        return num / safe_denominator(den), None

    def decode(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        keep: Tensor,
        state: RunningSums | None = None,
        positions: Positions | None = None,
    ) -> tuple[Tensor, RunningSums]:
        """The running (S, z): the new positions read the sums of the earlier ones plus their own
        causal block, then join the sums (O(S·D·Dv) per call, nothing kept per position)."""
        out = mix_dtype(value)
        with full_precision(query):
            q, k, v = upcast(query), upcast(key), upcast(value)
            b, s, _ = q.shape
            fq, fk = feature_map(q), feature_map(k)  # (B, S, D)
            kv = torch.cat([v, v.new_ones(b, s, 1)], dim=-1) * keep[..., None]  # (B, S, Dv + 1)
            block = torch.ones(s, s, dtype=torch.bool, device=q.device).tril()[None] & keep[:, None]
            summed = masked_kernel_sum(fq, fk, kv, mask_layout(block, b, s, s), self.chunk)
            new = fk.transpose(1, 2) @ kv  # (B, D, Dv + 1): the S positions' part of the sums
            if state is not None:
                summed = summed + fq @ state.sums  # (B, S, Dv + 1)
                new = new + state.sums
        num, den = summed[..., :-1], summed[..., -1:]  # (B, S, Dv), (B, S, 1)
        return (num / safe_denominator(den)).to(out), RunningSums(new)

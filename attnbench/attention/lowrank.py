"""Low-rank attention (Linformer, Wang et al. 2020): keys and values projected along the length.

Notation: B batch, Tq query length, Tk key length, D = Dq = Dk query/key width, Dv value width,
R projected rows (``rank``), L the longest key sequence (``max_len``), C rows per chunk
(``chunk``).

    context = softmax(Q (E K)ᵀ / √D) (F V)        E, F: (R, Tk), so E K is (R, D), F V is (R, Dv)

Each query attends over R projected keys instead of Tk keys: O((Tq + Tk)·R·D), not O(Tq·Tk·D).

How E and F are built here, and why (the choices the paper leaves open):
- **Positions.** E and F have one learned column per key position, up to ``max_len`` (L); a
  sequence of Tk ≤ L keys uses the first Tk columns. Longer keys are refused with an error naming
  ``attention.max_len`` (raise it, or shorten the task). Columns are tied to positions, not to
  the padded batch length, so appending PAD to a batch changes nothing (a projection resampled
  to the batch length would). Queries are never projected: any query length works, including a
  decoder's one query per step.
- **Masking = normalised rows.** Row r of E is softmax over the allowed keys of learned logits
  ℓ_r (and F likewise with its own logits): E_rj = M_j exp(ℓ_rj) / Σ_j' M_j' exp(ℓ_rj'). Masked
  keys are zeroed before the projection (the paper's E, F have no notion of padding), every
  projected key/value is a weighted mean of real ones, so its scale does not grow with the number
  of real keys, and the effective weights on keys, W = softmax(·) F (B, Tq, Tk), are a
  distribution with exactly zero on masked keys: what the diagnostics plot and the contract ask
  for. The price is a positivity constraint the paper's unconstrained E, F do not have.
- **Per-query masks.** With a causal mask (a decoder's self-attention) query i projects only the
  keys it may see, E_i = rows normalised over {j ≤ i allowed}, so no future key leaks into the
  projection; the sums are prefix sums, chunked like ``linear``: O(T·(C + R·D / C)) memory.
  Other per-query masks take the explicit O(Tq·Tk) route. A query with no key gets zero context.

Not causal (``causal`` False): Linformer's E and F project along the whole length n, so a
causal language model (``backbone=lm``) refuses it. The per-query form above keeps a decoder's
cross-step masking honest inside the encoder-decoder, but it is no longer the paper's
projection, and the LM does not offer it.

Fast path (``need_weights=False``): the projections as masked kernel sums (``_layout.py``) and a
softmax over the R projected rows, (B, Tq, R), small enough that fused SDPA would gain nothing;
no (B, Tq, Tk) tensor under key padding or causal masks.
Weights path: the same maths with the explicit (B, Tq, Tk) mask, plus W = (softmax / Σ F) F.

Precision: E K and F V are normalised sums over the keys (Σ_j M_ij e_jr k_j / Σ_j M_ij e_jr), and
the softmax is a normaliser too, so both paths run in float32 with autocast off, on the operands
as they come (16-bit after autocast's projections). In bfloat16 the numerator and denominator
were rounded apart (contexts 4.7e-2 of their scale off float32 at Tk = 64, inputs ×8) and the
weights missed 1 by up to 7e-3. The context is returned in the dtype a matmul would give
(``mix_dtype``), the weights in float32.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention._layout import (
    MaskLayout,
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
    check_dropout,
    expand_mask,
    require_equal_widths,
    upcast,
)


def _lowrank_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """E and F materialised as row-softmaxes over the positions: the bench's ``naive``."""
    t = k.shape[1]
    e = torch.softmax(attn.key_logits[:, :t], dim=-1)  # E: (R, T), rows over positions
    f = torch.softmax(attn.value_logits[:, :t], dim=-1)  # F: (R, T)
    ek, fv = e @ k, f @ v  # (B, R, D) each: the projected keys and values
    weights = torch.softmax(q @ ek.transpose(1, 2) * attn.scale, dim=-1)  # (B, T, R)
    return weights @ fv  # (B, T, D)


@ATTENTION.register("lowrank")
class LowRankAttention(Attention):
    materialises: ClassVar[bool] = False
    equal_widths: ClassVar[bool] = True
    bounded_in_bf16: ClassVar[bool] = True  # its normalised sums and softmax run in float32
    causal: ClassVar[bool] = False  # E and F project along the whole length
    references = MappingProxyType({"naive": Reference(_lowrank_naive)})
    reference: ClassVar[str] = (
        "Wang et al. 2020, 'Linformer: Self-Attention with Linear Complexity', §4 eq. 7: "
        "head = softmax(Q W^Q (E K W^K)ᵀ / √d_k) · F V W^V, E, F ∈ R^{k×n} projecting along the "
        "length (here E, F: row-softmax of learned logits over the allowed positions)"
    )

    def __init__(
        self,
        d_query: int,
        d_key: int,
        d_value: int,
        *,
        rank: int = 32,
        max_len: int = 512,
        chunk: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(d_query, d_key, d_value)
        require_equal_widths("lowrank", d_query, d_key, "scores qᵀ(E K)")
        if rank < 1:
            raise ValueError(f"rank must be >= 1 (projected rows), got {rank}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1 (longest key sequence), got {max_len}")
        check_chunk(chunk)
        check_dropout(dropout)
        self.rank = rank
        self.max_len = max_len
        self.chunk = chunk
        self.dropout = dropout
        self.scale = 1.0 / math.sqrt(d_key)
        # Logits of E (keys) and F (values), one column per position. N(0, 1): rows start as
        # different soft mixtures of positions (equal logits would make every row the mean and
        # the rows could never become different).
        self.key_logits = nn.Parameter(torch.randn(rank, max_len))  # (R, L)
        self.value_logits = nn.Parameter(torch.randn(rank, max_len))  # (R, L)

    def length_limit(self) -> tuple[str, int]:
        return "max_len", self.max_len  # E and F have one column per key position

    def memory_bytes(self, call: Call, path: Literal["fast", "naive"] = "fast") -> int:
        """(B, Tq, R) normalisers, scores, mixes and their gradients, and the (R, L) logits of E
        and F with theirs; the naive form materialises O(T·R) too, never (Tq, Tk)."""
        e, r = call.element_bytes, self.rank
        return 16 * call.batch * call.tq * r * e + 8 * r * self.max_len * e

    def _position_weights(self, tk: int) -> tuple[Tensor, Tensor]:
        """Unnormalised exp(ℓ) of E and F for the first Tk positions, each (Tk, R), max 1."""
        if tk > self.max_len:
            raise ValueError(
                f"lowrank attention: {tk} keys but attention.max_len={self.max_len} "
                f"(E and F have one column per key position); set attention.max_len>={tk}"
            )
        e = upcast(self.key_logits[:, :tk])  # (R, Tk)
        f = upcast(self.value_logits[:, :tk])  # (R, Tk)
        e = (e - e.max(dim=-1, keepdim=True).values.detach()).exp()  # shift: no overflow
        f = (f - f.max(dim=-1, keepdim=True).values.detach()).exp()
        return e.t(), f.t()  # (Tk, R), (Tk, R)

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
        r = self.rank
        e, f = self._position_weights(tk)  # (Tk, R), (Tk, R)
        if need_weights:  # the explicit (B, Tq, Tk) mask, so the weights can be formed
            m = expand_mask(mask, b, tq, tk)
            if m is None:
                m = torch.ones(b, tq, tk, dtype=torch.bool, device=key.device)
            layout = MaskLayout("dense", dense=m)
        else:
            layout = mask_layout(mask, b, tq, tk)
        ones_q, ones_k = query.new_ones(b, tq, 1), key.new_ones(b, tk, 1)
        ef = torch.cat([e, f], dim=-1).expand(b, tk, 2 * r)  # (B, Tk, 2R)

        # Normalisers of E_i and F_i over the keys query i may see, and q_i·(Σ_j M_ij e_rj k_j).
        den = masked_kernel_sum(ones_q, ones_k, ef, layout, self.chunk)  # (B, Tq, 2R)
        den_e, den_f = safe_denominator(den[..., :r]), safe_denominator(den[..., r:])  # (B, Tq, R)
        qek = masked_kernel_sum(query, key, ef[..., :r], layout, self.chunk)  # (B, Tq, R)
        scores = qek / den_e * self.scale  # q_i · (E_i K)_r / √D: (B, Tq, R)
        probs = torch.softmax(scores, dim=-1)  # over the R projected keys: (B, Tq, R)
        p = self.dropout if self.training else 0.0
        mix = F.dropout(probs, p, training=p > 0) / den_f  # (B, Tq, R)
        # context_i = Σ_r mix_ir Σ_j M_ij f_jr v_j = Σ_j M_ij (mix_i · f_j) v_j; zero if no key.
        context = masked_kernel_sum(mix, ef[..., r:], value, layout, self.chunk)  # (B, Tq, Dv)
        if not need_weights:
            return context, None
        # W_ij = M_ij Σ_r probs_ir F_i,rj: a distribution over the allowed keys (B, Tq, Tk).
        weights = ((probs / den_f) @ f.t()).masked_fill(~layout.dense, 0.0)
        return context, weights

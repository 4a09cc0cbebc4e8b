"""Additive attention (Bahdanau, Cho & Bengio 2015): score(q, k) = vᵀ tanh(W q + U k).

Notation: B batch, Tq query length, Tk key length, Dq/Dk/Dv widths, Hd hidden (scoring) width,
C query rows per chunk.

Memory: the score needs tanh over every (query, key) pair, a (B, Tq, Tk, Hd) tensor — 4 GiB at
B=8, Tq=Tk=1024, Hd=128 in float32, and autograd would keep it (and its tanh) for backward. When
that tensor exceeds ``chunk_bytes``, scores are computed over chunks of C query rows, each
(B, C, Tk, Hd) chunk under the budget, one buffer reused by every chunk, and backward recomputes
each chunk instead of storing it (checkpointing, done by hand to run in place). Only the
(B, Tq, Tk) scores and weights persist, which the softmax needs anyway.

Positions inside attention: ALiBi's bias is added to the scores before the softmax. RoPE is not
taken: it makes a dot product depend on the distance by rotating q and k, and vᵀ tanh(W q + U k)
is not a dot product of q and k (``accepts_rotary`` False: a backbone refuses the pair).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from attnbench.attention import ATTENTION
from attnbench.attention.base import (
    Attention,
    Call,
    Reference,
    check_dropout,
    expand_mask,
    full_precision,
    softmax_mix,
    upcast,
)
from attnbench.attention.causal import Positions, hide_future

DEFAULT_CHUNK_BYTES = 64 * 2**20  # few, large chunks: robust when CPU threads are contended


def additive_scores_naive(wq: Tensor, uk: Tensor, v: Tensor) -> Tensor:
    """Reference scores vᵀ tanh(Wq + Uk), broadcasting the full (B, Tq, Tk, Hd) tensor.

    wq: (B, Tq, Hd) projected queries; uk: (B, Tk, Hd) projected keys (bias included);
    v: (Hd,) scoring vector. Returns (B, Tq, Tk).
    """
    hidden = torch.tanh(wq[:, :, None, :] + uk[:, None, :, :])  # (B, Tq, Tk, Hd)
    return hidden @ v  # (B, Tq, Tk)


def _additive_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """softmax(vᵀ tanh(W q + U k)) v with the (B, Tq, Tk, Hd) broadcast: the bench's ``naive``."""
    scores = additive_scores_naive(attn.W(q), attn.U(k), attn.v.weight[0])  # (B, Tq, Tk)
    return torch.softmax(hide_future(scores, causal), dim=-1) @ v


def chunk_rows(b: int, tk: int, hd: int, chunk_bytes: int) -> int:
    """C: query rows per chunk of the float32 (B, C, Tk, Hd) hidden tensor (at least one)."""
    return max(1, chunk_bytes // (b * tk * hd * 4))


def _sigmoid_into(flat: Tensor, wq2_c: Tensor, uk2: Tensor) -> Tensor:
    """σ(wq2_c + uk2) for one chunk, written into the front of the flat buffer: (B, C, Tk, Hd).

    The view is always contiguous (also for a shorter last chunk), so it flattens for free.
    """
    b, c, hd = wq2_c.shape
    out = flat[: b * c * uk2.shape[1] * hd].view(b, c, uk2.shape[1], hd)
    torch.add(wq2_c[:, :, None, :], uk2[:, None, :, :], out=out)  # (B, C, Tk, Hd)
    return out.sigmoid_()


class _ChunkedAdditiveScores(torch.autograd.Function):
    """vᵀ tanh(wq + uk) over chunks of C query rows, reusing one (B, C, Tk, Hd) buffer.

    tanh(a) = 2σ(2a) − 1, and σ costs ~1/6 of tanh on CPU (0.4 vs 2.5 ns per float32 measured
    here), so each chunk holds s = σ(2wq + 2uk) and the score is 2vᵀs − Σv. Backward recomputes
    each chunk's s instead of storing it (what ``torch.utils.checkpoint`` would do), with the
    gradient written out by hand so every step runs in place in the buffer, using
    tanh'(a) = 1 − t² = 4s(1 − s) and pulling v out of the sums:
    ∂wq = 4v ⊙ Σ_k g·s(1−s), ∂uk = 4v ⊙ Σ_q g·s(1−s), ∂v = 2 Σ g·s − Σ g.
    That is 3 passes over a chunk forward and 7 backward, one transcendental each.
    """

    @staticmethod
    def forward(ctx: Any, wq: Tensor, uk: Tensor, v: Tensor, rows: int) -> Tensor:
        ctx.save_for_backward(wq, uk, v)
        ctx.rows = rows
        b, tq, hd = wq.shape
        tk = uk.shape[1]
        wq2, uk2, v2 = 2 * wq, 2 * uk, 2 * v  # (B, Tq, Hd), (B, Tk, Hd), (Hd,)
        flat = wq.new_empty(b * rows * tk * hd)  # one (B, C, Tk, Hd) chunk, reused
        scores = wq.new_empty(b, tq, tk)  # (B, Tq, Tk)
        for s in range(0, tq, rows):
            sig = _sigmoid_into(flat, wq2[:, s : s + rows], uk2)  # (B, C, Tk, Hd)
            scores[:, s : s + rows] = sig @ v2  # (B, C, Tk)
        return scores.sub_(v.sum())

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        wq, uk, v = ctx.saved_tensors
        rows = ctx.rows
        b, tq, hd = wq.shape
        tk = uk.shape[1]
        wq2, uk2 = 2 * wq, 2 * uk
        flat = wq.new_empty(b * rows * tk * hd)  # (B, C, Tk, Hd)
        grad_wq = torch.empty_like(wq)  # (B, Tq, Hd)
        grad_uk = torch.zeros_like(uk)  # (B, Tk, Hd)
        gs = torch.zeros_like(v)  # Σ g·s: (Hd,)
        for s in range(0, tq, rows):
            g = grad[:, s : s + rows]  # (B, C, Tk)
            sig = _sigmoid_into(flat, wq2[:, s : s + rows], uk2)  # (B, C, Tk, Hd)
            gs.addmv_(sig.view(-1, hd).t(), g.reshape(-1))  # (Hd,)
            sig.addcmul_(sig, sig, value=-1.0).mul_(g[..., None])  # g·s(1 − s), in place
            grad_wq[:, s : s + rows] = sig.sum(dim=2)  # (B, C, Hd)
            grad_uk += sig.sum(dim=1)  # (B, Tk, Hd)
        v4 = 4 * v
        return grad_wq.mul_(v4), grad_uk.mul_(v4), gs.mul_(2).sub_(grad.sum()), None


def additive_scores(wq: Tensor, uk: Tensor, v: Tensor, chunk_bytes: int) -> Tensor:
    """Same values as ``additive_scores_naive``, with no (B, C, Tk, Hd) block over ``chunk_bytes``.

    A chunk holds at least one query row, so a single row over the budget is still computed.
    When everything fits in one chunk the plain broadcast runs (ordinary autograd, also twice
    differentiable); otherwise ``_ChunkedAdditiveScores``, whose backward is bounded by the same
    budget (first-order gradients only, which is all training needs).

    16-bit inputs (autocast's projections) are scored in float32 with autocast off: tanh, the
    sum over Hd and the scores (float32, as the softmax takes them) then lose no bits of their
    own; the budget counts float32 bytes.
    """
    with full_precision(wq):
        wq, uk, v = upcast(wq), upcast(uk), upcast(v)
        b, tq, hd = wq.shape
        tk = uk.shape[1]
        rows = chunk_rows(b, tk, hd, chunk_bytes)  # C
        if rows >= tq:
            return additive_scores_naive(wq, uk, v)
        return _ChunkedAdditiveScores.apply(wq, uk, v, rows)


@ATTENTION.register("additive")
class AdditiveAttention(Attention):
    bounded_in_bf16: ClassVar[bool] = True  # |score| <= Σ|v|: tanh is bounded, in float32
    accepts_bias: ClassVar[bool] = True  # on the scores; no rotation (no qᵀk to rotate)
    references = MappingProxyType({"naive": Reference(_additive_naive, causal=True)})
    reference: ClassVar[str] = (
        "Bahdanau, Cho & Bengio 2015, 'Neural Machine Translation by Jointly Learning to Align "
        "and Translate', eq. 6 / appendix A.1.2: e_ij = v_aᵀ tanh(W_a s_{i-1} + U_a h_j)"
    )

    def __init__(
        self,
        d_query: int,
        d_key: int,
        d_value: int,
        *,
        hidden: int = 0,
        dropout: float = 0.0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        super().__init__(d_query, d_key, d_value)
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0 (0 means d_query={d_query}), got {hidden}")
        check_dropout(dropout)
        if chunk_bytes < 1:
            raise ValueError(
                f"chunk_bytes must be a positive byte budget (e.g. {DEFAULT_CHUNK_BYTES}), "
                f"got {chunk_bytes}"
            )
        self.hidden = hidden or d_query
        self.dropout = dropout
        self.chunk_bytes = chunk_bytes
        self.W = nn.Linear(d_query, self.hidden, bias=False)
        # The paper's score has no bias; we keep one offset b inside the tanh (tanh(Wq + Uk + b))
        # so the units need not be centred at 0. It sits on U because keys are projected once per
        # key (Tk rows), not once per (query, key) pair, and one bias suffices: two would be
        # redundant.
        self.U = nn.Linear(d_key, self.hidden, bias=True)
        self.v = nn.Linear(self.hidden, 1, bias=False)  # a bias here would cancel in the softmax

    def memory_bytes(self, call: Call, path: Literal["fast", "naive"] = "fast") -> int:
        """The (B, Tq, Tk) scores, weights and their gradients, plus the hidden units: the
        (B, Tq, Tk, Hd) tanh kept for backward, its gradient and tanh's (naive, and the fast path
        when it fits one chunk: in float32), else one (B, C, Tk, Hd) float32 chunk buffer."""
        hd, e = self.hidden, call.element_bytes
        if path == "naive":
            return 3 * call.pairs * hd * e + 4 * call.pairs * e
        rows = chunk_rows(call.batch, call.tk, hd, self.chunk_bytes)
        if rows >= call.tq:  # one chunk: the plain broadcast runs
            return 3 * call.pairs * hd * 4 + 4 * call.pairs * 4
        return 4 * call.pairs * 4 + rows * call.batch * call.tk * hd * 4

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        b, tq, _ = query.shape
        m = expand_mask(mask, b, tq, key.shape[1])  # (B, Tq, Tk) or None
        wq = self.W(query)  # (B, Tq, Hd)
        uk = self.U(key)  # (B, Tk, Hd)
        scores = additive_scores(wq, uk, self.v.weight[0], self.chunk_bytes)  # (B, Tq, Tk)
        bias = None if positions is None else positions.score_bias(1)  # (B | 1, 1, Tq, Tk)
        if bias is not None:
            scores = scores + bias[:, 0]
        p = self.dropout if self.training else 0.0
        context, weights = softmax_mix(scores, m, value, p)  # (B, Tq, Dv), (B, Tq, Tk)
        return context, (weights if need_weights else None)

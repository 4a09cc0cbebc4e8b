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

Positions inside attention (causal.py): RoPE rotates each head's projected queries and keys
(over Dh), ALiBi adds head h's slope times the distance to head h's logits. Decoding caches the
projected (and rotated) keys and values of every head: each position is projected once.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.attention.base import (
    Attention,
    Call,
    Reference,
    check_dropout,
    dot_scores,
    expand_mask,
    sdpa_mask,
    softmax_mix,
)
from attnbench.attention.causal import KVCache, Positions, causal_rows, fold_bias, hide_future
from attnbench.attention.dot import sdpa_flops


# -- the bench's references: the same maths built from a module's own weights -----------------
def split_heads(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v (B, T, D) through the module's projections, split into (B, H, T, Dh) heads."""
    b, _, d = q.shape
    h = attn.heads
    split = [
        F.linear(x, p.weight, p.bias).view(b, -1, h, d // h).transpose(1, 2)  # (B, H, T, Dh)
        for x, p in ((q, attn.q_proj), (k, attn.k_proj), (v, attn.v_proj))
    ]
    return split[0], split[1], split[2]


def merge_heads(attn: Any, ctx: Tensor) -> Tensor:
    """(B, H, T, Dh) per-head contexts -> the module's output projection: (B, T, D)."""
    b, _, t, _ = ctx.shape
    ctx = ctx.transpose(1, 2).reshape(b, t, attn.d_model)  # (B, T, D)
    return F.linear(ctx, attn.out_proj.weight, attn.out_proj.bias)


def _projected_heads(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, ...]:
    """The (B, H, T, Dh) tensors multihead hands its SDPA call, as fresh leaves (same strides)."""
    with torch.no_grad():
        return tuple(x.requires_grad_() for x in split_heads(attn, q, k, v))


def _sdpa(attn: Any, qh: Tensor, kh: Tensor, vh: Tensor, causal: bool = False) -> Tensor:
    return F.scaled_dot_product_attention(qh, kh, vh, is_causal=causal)  # (B, H, T, Dh)


def _multihead_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    qh, kh, vh = split_heads(attn, q, k, v)
    scores = hide_future(qh @ kh.transpose(-2, -1) / qh.shape[-1] ** 0.5, causal)  # (B,H,T,T)
    return merge_heads(attn, torch.softmax(scores, dim=-1) @ vh)


def _multihead_plain(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    qh, kh, vh = split_heads(attn, q, k, v)
    return merge_heads(attn, F.scaled_dot_product_attention(qh, kh, vh, is_causal=causal))


def _torch_mha(attn: Any) -> nn.Module:
    """``nn.MultiheadAttention`` with multihead's width, heads and weights (batch_first; the
    packed (3D, D) in-projection, as PyTorch builds it when query, key and value widths match)."""
    d = attn.d_model
    mha = nn.MultiheadAttention(d, attn.heads, dropout=attn.dropout, batch_first=True)
    with torch.no_grad():
        projs = (attn.q_proj, attn.k_proj, attn.v_proj)
        mha.in_proj_weight.copy_(torch.cat([p.weight for p in projs]))  # (3D, D)
        mha.in_proj_bias.copy_(torch.cat([p.bias for p in projs]))  # (3D,)
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
    return mha.eval()


def _torch_mha_call(mha: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    if not causal:
        return mha(q, k, v, need_weights=False)[0]  # (B, T, D)
    # nn.MultiheadAttention's bool mask: True = may NOT attend; is_causal is a hint beside it
    later = torch.ones(q.shape[1], k.shape[1], dtype=torch.bool, device=q.device).triu(1)
    return mha(q, k, v, need_weights=False, attn_mask=later, is_causal=True)[0]


@ATTENTION.register("multihead")
class MultiHeadAttention(Attention):
    projects: ClassVar[bool] = True
    fused: ClassVar[bool] = True
    materialises: ClassVar[bool] = False
    accepts_rotary: ClassVar[bool] = True  # per head, after the projections
    accepts_bias: ClassVar[bool] = True  # one slope per head
    # bare: one SDPA call on its projected heads (the floor); plain: the whole variant as plain
    # torch calls; torch: PyTorch's own module, same weights; naive: every intermediate.
    references = MappingProxyType({
        "naive": Reference(_multihead_naive, causal=True),
        "plain": Reference(_multihead_plain, causal=True),
        "bare": Reference(_sdpa, _projected_heads, causal=True),
        "torch": Reference(_torch_mha_call, peer=_torch_mha, causal=True),
    })
    reference: ClassVar[str] = (
        "Vaswani et al. 2017, 'Attention Is All You Need', §3.2.2: "
        "MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, "
        "head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)"
    )

    def __init__(
        self, d_query: int, d_key: int, d_value: int, *, heads: int = 4, dropout: float = 0.0
    ) -> None:
        super().__init__(d_query, d_key, d_value)
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

    def _projection_flops(self, call: Call) -> float:
        """q and out projections over Tq rows, k and v over Tk, each (D_in, D) forward and its
        input and weight gradients: 3 × 2 FLOPs per multiply-add."""
        d = self.d_model
        rows = (call.tq * (self.d_query + d) + call.tk * (self.d_key + self.d_value)) * d
        return 6.0 * call.batch * rows

    def flops(self, call: Call) -> float:
        return self._projection_flops(call) + sdpa_flops(
            call.batch, call.tq, call.tk, self.d_model, self.d_model
        )

    def memory_bytes(self, call: Call, path: Literal["fast", "naive"] = "fast") -> int:
        """The scores (``Attention.memory_bytes``), plus the projected (B, T, D) queries, keys,
        values and context and their gradients."""
        projected = 4 * call.batch * (call.tq + call.tk) * self.d_model * call.element_bytes
        return super().memory_bytes(call, path) + projected

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
        positions: Positions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        b, tq, _ = query.shape
        m = expand_mask(mask, b, tq, key.shape[1])  # (B, Tq, Tk) or None
        q, k, v = self._heads(query, key, value)  # (B, H, T, Dh) each
        bias = None
        if positions is not None:
            q, k = positions.rotated(q, k)  # RoPE per head, or as they are
            bias = positions.score_bias(self.heads)  # ALiBi: (B | 1, H, Tq, Tk), or None
        return self._mix(q, k, v, None if m is None else m[:, None], bias, need_weights)

    def decode(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        keep: Tensor,
        state: Any = None,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Any]:
        """A cache of every head's projected keys and values (B, H, t, Dh) (``local`` keeps its
        window of them)."""
        q, k, v = self._heads(query, key, value)  # (B, H, S, Dh) each
        s = q.shape[2]
        if positions is not None and positions.rotate is not None:
            q = positions.rotate(q, positions.query)
            k = positions.rotate(k, positions.key[:, -s:])  # the new keys' positions
        cache = KVCache.extend(state, k, v, keep)  # (B, H, t + S, Dh)
        mask = self._decode_mask(cache.keep, s)[:, None]  # (B, 1, S, t + S)
        bias = None
        if positions is not None:
            bias = positions.last(cache.keep.shape[1]).score_bias(self.heads)
        out, _ = self._mix(q, cache.key, cache.value, mask, bias, False)
        return out, self._kept(cache)

    def _decode_mask(self, keep: Tensor, s: int) -> Tensor:
        """(B, S, t + S): which cached keys each of the S new queries may see."""
        return causal_rows(keep, s)

    def _kept(self, cache: KVCache) -> KVCache:
        """What the next decoding call needs of the cache: all of it."""
        return cache

    def _heads(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values projected and split into (B, H, T, Dh) heads."""
        b, tq, _ = query.shape
        tk = key.shape[1]
        h, dh = self.heads, self.d_model // self.heads
        q = self.q_proj(query).view(b, tq, h, dh).transpose(1, 2)  # (B, H, Tq, Dh)
        k = self.k_proj(key).view(b, tk, h, dh).transpose(1, 2)  # (B, H, Tk, Dh)
        v = self.v_proj(value).view(b, tk, h, dh).transpose(1, 2)  # (B, H, Tk, Dh)
        return q, k, v

    def _mix(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        m4: Tensor | None,
        bias: Tensor | None,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Heads q (B, H, Tq, Dh) over k, v (B, H, Tk, Dh) under the mask m4 (B, 1, Tq, Tk) and
        the logit bias (B | 1, H, Tq, Tk): the output-projected context (B, Tq, D) and, with
        ``need_weights``, the weights averaged over heads (B, Tq, Tk)."""
        b, _, tq, _ = q.shape
        safe, empty = sdpa_mask(m4)  # empty: (B, 1, Tq, 1) or None
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = dot_scores(q, k, q.shape[-1] ** -0.5)  # (B, H, Tq, Tk)
            if bias is not None:
                scores = scores + bias
            ctx, head_weights = softmax_mix(scores, m4, v, p)  # (B, H, Tq, Dh), (B, H, Tq, Tk)
            weights = head_weights.mean(dim=1)  # (B, Tq, Tk)
        else:
            mask = fold_bias(safe, bias, q.dtype)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            weights = None  # ctx: (B, H, Tq, Dh)

        ctx = ctx.transpose(1, 2).reshape(b, tq, self.d_model)  # (B, Tq, D)
        out = self.out_proj(ctx)  # (B, Tq, D)
        if empty is not None:  # rows with no allowed key: zero value and zero gradient
            out = out.masked_fill(empty[:, 0], 0.0)
        return out, weights

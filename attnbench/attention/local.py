"""Sliding-window (local) attention (Beltagy et al. 2020, Longformer §3.1): each position attends
only to the positions within ``window`` of it, with H heads of scaled dot-product.

Notation: B batch, T sequence length (Tq = Tk), Tq/Tk query/key lengths in general, D = Dq model
width, H heads, Dh = D / H, w the window (``window``), C query rows per block (``block``),
N = ⌈T / C⌉ blocks, n = ⌈w / C⌉ neighbouring blocks on each side, S = (2n + 1)·C keys per block.

    head = softmax(Q Kᵀ / √Dh + band) V,  band_ij = 0 if |i − j| ≤ w else −∞      (2w + 1 keys)

combined with the caller's mask (padding, causal: a decoder then sees the w + 1 keys i − w..i).
Projections, heads and the weights path are ``multihead``'s (this class extends it), so
``local`` differs from ``multihead`` only by the window.

Where the window applies: positions are shared only when the queries ARE the keys (self-attention:
the Transformer's token mixer, the rnn's per-position attention). The contract does not say so
explicitly, so, like ``torch.nn.MultiheadAttention``, self-attention is recognised as
``query is key``. Cross-attention and pooling (a decoder state over encoder states, a learned
query over hidden states) have no position shared by query and key, so there every key is in
the window: ``local`` then equals ``multihead``.

Fast path (self-attention, ``need_weights=False``): queries in blocks of C rows, each block
against its S-key neighbourhood (the keys of blocks s − n..s + n, so every key within w of the
block), one fused SDPA call over all (B·N) blocks with the band ∧ mask gathered per block:
O(T·S) time and memory, never a T × T tensor (the caller's mask is only read at the in-band
positions). When one block's neighbourhood already covers the sequence (T ≤ S) the plain
T × T band mask is as cheap and ``multihead``'s path runs with it. Weights path: the explicit
(B, T, T) band ∧ mask, for diagnostics only.

Positions inside attention: ``multihead``'s (RoPE per head, ALiBi per head), gathered per block on
the blocked path. Decoding (causal.py) keeps the last w keys and values of every head: a constant-
size window state, where ``multihead`` keeps every position.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.attention import ATTENTION
from attnbench.attention.base import Call, Reference, expand_mask, sdpa_mask
from attnbench.attention.causal import KVCache, Positions, fold_bias, hide_future
from attnbench.attention.dot import sdpa_flops
from attnbench.attention.multihead import MultiHeadAttention, merge_heads, split_heads

MIN_BLOCK = 16  # default block rows: tiny windows would otherwise make tiny matrices


def band_mask(t: int, window: int, device: torch.device) -> Tensor:
    """(T, T) bool: True where |i − j| ≤ window."""
    pos = torch.arange(t, device=device)
    return (pos[:, None] - pos[None, :]).abs() <= window


def _local_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """Every head's full (T, T) band-masked softmax: the bench's ``naive`` (``causal``: the
    band's half up to the query)."""
    qh, kh, vh = split_heads(attn, q, k, v)
    scores = qh @ kh.transpose(-2, -1) / qh.shape[-1] ** 0.5  # (B, H, T, T)
    if q is k:  # the window applies to self-attention only, as in the variant
        scores = scores.masked_fill(~band_mask(q.shape[1], attn.window, q.device), float("-inf"))
    return merge_heads(attn, torch.softmax(hide_future(scores, causal), dim=-1) @ vh)


@ATTENTION.register("local")
class LocalAttention(MultiHeadAttention):
    references = MappingProxyType({"naive": Reference(_local_naive, causal=True)})
    reference: ClassVar[str] = (
        "Beltagy, Peters & Cohan 2020, 'Longformer: The Long-Document Transformer', §3.1 "
        "sliding window: each token attends to the tokens within w of it; scores per head as "
        "Vaswani et al. 2017 §3.2.2: softmax(Q_i K_iᵀ / √d_k) V_i"
    )

    def __init__(
        self,
        d_query: int,
        d_key: int,
        d_value: int,
        *,
        window: int = 8,
        heads: int = 4,
        block: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(d_query, d_key, d_value, heads=heads, dropout=dropout)
        if window < 0:
            raise ValueError(f"window must be >= 0 (keys on each side of a query), got {window}")
        if block < 0:
            raise ValueError(f"block must be >= 0 (0 = max(window, {MIN_BLOCK})), got {block}")
        self.window = window
        self.block = block or max(window, MIN_BLOCK)

    def _blocks(self, t: int) -> tuple[int, int] | None:
        """(N blocks, S keys per block) of the blocked fast path at self-attention length T;
        None when one block's neighbourhood covers the sequence (multihead's path runs)."""
        c = self.block
        s = (2 * -(-self.window // c) + 1) * c
        return None if t <= s else (-(-t // c), s)

    def flops(self, call: Call) -> float:
        """Self-attention (Tq = Tk): the blocked path's SDPA over N·C query rows against S keys
        each; otherwise multihead's (every key is in the window)."""
        blocks = self._blocks(call.tk) if call.tq == call.tk else None
        if blocks is None:
            return super().flops(call)
        n, s = blocks
        rows = n * self.block  # N·C queries, the last block padded
        d = self.d_model
        return self._projection_flops(call) + sdpa_flops(call.batch, rows, s, d, d)

    def memory_bytes(self, call: Call, path: Literal["fast", "naive"] = "fast") -> int:
        """Self-attention's blocked path: S / C copies of K and V (and gradients), the (C, S)
        masks and per-block scores; otherwise multihead's, with the (T, T) band mask."""
        e, b, t = call.element_bytes, call.batch, call.tk
        blocks = self._blocks(t) if call.tq == t and path == "fast" else None
        if blocks is None:
            return super().memory_bytes(call, path) + call.tq * call.tk * b
        _, s = blocks
        copies = 4 * (s // self.block) * b * t * self.d_model * e
        return copies + 3 * b * t * s + 4 * b * self.heads * t * s * e

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        if query is not key:  # no shared positions: every key is in the window
            return super().forward(query, key, value, mask, need_weights, positions)
        b, t, _ = query.shape
        c = self.block
        n = -(-self.window // c)  # neighbouring blocks on each side
        if need_weights or t <= (2 * n + 1) * c:
            band = band_mask(t, self.window, query.device)  # (T, T)
            m = expand_mask(mask, b, t, t)
            m = band if m is None else m & band
            return super().forward(query, key, value, m, need_weights, positions)
        return self._blocked(query, value, mask, n, positions), None

    def _decode_mask(self, keep: Tensor, s: int) -> Tensor:
        """multihead's causal rows, within the window: (B, S, t + S)."""
        total = keep.shape[1]
        cols = torch.arange(total, device=keep.device)
        rows = torch.arange(total - s, total, device=keep.device)
        near = (rows[:, None] - cols[None, :]) <= self.window  # (S, t + S)
        return super()._decode_mask(keep, s) & near[None]

    def _kept(self, cache: KVCache) -> KVCache:
        """The next query sees the w positions before it: keep those."""
        return cache.last(self.window)

    def _blocked(
        self, x: Tensor, value: Tensor, mask: Tensor | None, n: int, positions: Positions | None
    ) -> Tensor:
        """Self-attention of x (B, T, D) within the window, block by block: (B, T, D)."""
        b, t, _ = x.shape
        h, dh, c = self.heads, self.d_model // self.heads, self.block
        nb = -(-t // c)  # N blocks of queries
        pad = nb * c - t
        s = (2 * n + 1) * c  # keys per block
        p = self.dropout if self.training else 0.0

        q = self.q_proj(x).view(b, t, h, dh)  # (B, T, H, Dh)
        k = self.k_proj(x).view(b, t, h, dh)  # (B, T, H, Dh)
        v = self.v_proj(value).view(b, t, h, dh)  # (B, T, H, Dh)
        if positions is not None and positions.rotate is not None:  # RoPE over (B, H, T, Dh)
            q = positions.rotate(q.transpose(1, 2), positions.query).transpose(1, 2)
            k = positions.rotate(k.transpose(1, 2), positions.key).transpose(1, 2)
        qb = F.pad(q, (0, 0, 0, 0, 0, pad)).view(b, nb, c, h, dh)  # (B, N, C, H, Dh)
        qb = qb.permute(0, 1, 3, 2, 4).reshape(b * nb, h, c, dh)  # (B·N, H, C, Dh)

        def neighbourhoods(z: Tensor) -> Tensor:
            """(B, T, H, Dh) -> (B·N, H, S, Dh): block s gets keys from position (s − n)·C on."""
            zp = F.pad(z, (0, 0, 0, 0, n * c, pad + n * c))  # (B, (N + 2n)·C, H, Dh)
            zb = zp.unfold(1, s, c)  # (B, N, H, Dh, S), a view
            return zb.permute(0, 1, 2, 4, 3).reshape(b * nb, h, s, dh)

        kb, vb = neighbourhoods(k), neighbourhoods(v)  # (B·N, H, S, Dh) each

        blocks = torch.arange(nb, device=x.device)[:, None]  # (N, 1)
        qpos = blocks * c + torch.arange(c, device=x.device)  # (N, C) query positions
        kpos = (blocks - n) * c + torch.arange(s, device=x.device)  # (N, S) key positions
        allowed = ((kpos[:, None, :] - qpos[:, :, None]).abs() <= self.window) & (
            (kpos >= 0) & (kpos < t)
        )[:, None, :]  # (N, C, S): in the window and a real position
        m = expand_mask(mask, b, t, t)  # a (B, T, T) view; only in-band entries are read
        if m is not None:
            rows = qpos.clamp(max=t - 1)[:, :, None]  # (N, C, 1)
            cols = kpos.clamp(0, t - 1)[:, None, :]  # (N, 1, S)
            allowed = allowed & m[:, rows, cols]  # (B, N, C, S)
        allowed = allowed.expand(b, nb, c, s).reshape(b * nb, 1, c, s)  # (B·N, 1, C, S)
        safe, empty = sdpa_mask(allowed)  # empty: (B·N, 1, C, 1) or None
        bias = None
        if positions is not None and positions.bias is not None:  # ALiBi, per block
            pq = positions.query[:, qpos.clamp(max=t - 1)]  # (B | 1, N, C)
            pk = positions.key[:, kpos.clamp(0, t - 1)]  # (B | 1, N, S)
            bias = positions.bias(pq[..., :, None] - pk[..., None, :], h)  # (H, B | 1, N, C, S)
            bias = bias.permute(1, 2, 0, 3, 4).expand(b, nb, h, c, s).reshape(b * nb, h, c, s)

        mask = fold_bias(safe, bias, qb.dtype)  # (B·N, 1 | H, C, S)
        ctx = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=p)
        ctx = ctx.view(b, nb, h, c, dh).permute(0, 1, 3, 2, 4)  # (B, N, C, H, Dh)
        out = self.out_proj(ctx.reshape(b, nb * c, self.d_model)[:, :t])  # (B, T, D)
        if empty is not None:  # rows with no allowed key: zero value and zero gradient
            out = out.masked_fill(empty.view(b, nb * c, 1)[:, :t], 0.0)
        return out

"""Causal self-attention: positions applied inside attention, and decoding step by step.

Notation: B batch, Tq query length, Tk key length, S new positions of one decoding call, t the
positions kept from earlier calls, H heads, Dh per-head width.

``Positions`` is what a backbone's positional scheme (``backbone.positions``) hands a variant for
one call: where its queries and keys sit, and what the scheme does with that inside attention —
RoPE rotates queries and keys (Su et al. 2021), ALiBi adds a per-head bias of the distance to the
logits (Press et al. 2022). A variant receives it only when it declares the fact the scheme
needs (``accepts_rotary``, ``accepts_bias``; attention/base.py), so a variant that declares
neither never sees the keyword.

``Attention.decode`` runs causal self-attention over the S newest positions of a sequence, given
what earlier calls kept (``KVCache`` by default: every key and value so far; ``linear`` keeps its
running sums, ``local`` its window): its contexts equal the last S rows of ``forward`` over the
whole sequence under the causal mask ``causal_rows`` builds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Positions:
    """The positions of one attention call and what the scheme does with them.

    - ``query`` (B | 1, Tq) and ``key`` (B | 1, Tk): long positions (one row per example, or one
      row all examples share);
    - ``rotate(x, pos)``: x (B[, H], T, Dh) rotated by pos (B | 1, T) (RoPE), or None;
    - ``bias(distance, heads)``: query minus key positions (...) -> (H, ...) float added to the
      logits (ALiBi), or None.
    """

    query: Tensor
    key: Tensor
    rotate: Callable[[Tensor, Tensor], Tensor] | None = None
    bias: Callable[[Tensor, int], Tensor] | None = None

    def rotated(self, query: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
        """query (B[, H], Tq, Dh) and key (B[, H], Tk, Dh), rotated by their positions (as they
        are without a rotation)."""
        if self.rotate is None:
            return query, key
        return self.rotate(query, self.query), self.rotate(key, self.key)

    def score_bias(self, heads: int) -> Tensor | None:
        """(B | 1, H, Tq, Tk) float added to the logits, or None."""
        if self.bias is None:
            return None
        distance = self.query[:, :, None] - self.key[:, None, :]  # (B | 1, Tq, Tk)
        return self.bias(distance, heads).transpose(0, 1)  # (B | 1, H, Tq, Tk)

    def last(self, n: int) -> Positions:
        """The same call over its last n keys only (a cache that keeps a window)."""
        return replace(self, key=self.key[:, self.key.shape[1] - n :])


def fold_bias(mask: Tensor | None, bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """The ``attn_mask`` for fused SDPA: the bool ``mask`` (True = may attend, rows with no key
    already opened by ``sdpa_mask``) alone, or the float ``bias`` where a key may be attended and
    -inf where not, in the queries' dtype (SDPA adds a float mask to its logits)."""
    if bias is None:
        return mask
    bias = bias.to(dtype)
    return bias if mask is None else bias.masked_fill(~mask, float("-inf"))


def hide_future(scores: Tensor, causal: bool, fill: float = float("-inf")) -> Tensor:
    """Scores (..., Tq, Tk) with every key after its query (j > i) set to ``fill`` when
    ``causal`` (as they are otherwise): the causal mask of a materialised reference (a bench
    ``Reference`` that declares ``causal``), SDPA's ``is_causal`` written out."""
    if not causal:
        return scores
    tq, tk = scores.shape[-2:]
    later = torch.ones(tq, tk, dtype=torch.bool, device=scores.device).triu(1)  # (Tq, Tk)
    return scores.masked_fill(later, fill)


def causal_rows(keep: Tensor, s: int) -> Tensor:
    """(B, S, t + S) bool: the newest S of t + S positions as queries, each allowed the real
    positions (``keep`` (B, t + S)) up to and including its own."""
    total = keep.shape[1]
    cols = torch.arange(total, device=keep.device)
    rows = torch.arange(total - s, total, device=keep.device)
    return (cols[None, :] <= rows[:, None])[None] & keep[:, None, :]


@dataclass(frozen=True)
class KVCache:
    """What ``decode`` keeps by default: the keys and values given so far and which of their
    positions are real tokens. key (..., t, Dk) and value (..., t, Dv), positions on axis -2 (a
    variant's inputs (B, t, D), or its projected heads (B, H, t, Dh)); keep (B, t) bool."""

    key: Tensor
    value: Tensor
    keep: Tensor

    @staticmethod
    def extend(state: KVCache | None, key: Tensor, value: Tensor, keep: Tensor) -> KVCache:
        """The cache with S new positions appended (a new cache when ``state`` is None)."""
        if state is None:
            return KVCache(key, value, keep)
        return KVCache(
            torch.cat([state.key, key], dim=-2),
            torch.cat([state.value, value], dim=-2),
            torch.cat([state.keep, keep], dim=1),
        )

    def last(self, n: int) -> KVCache:
        """The last n positions only."""
        t = self.keep.shape[1]
        start = max(0, t - n)
        return KVCache(self.key[..., start:, :], self.value[..., start:, :], self.keep[:, start:])

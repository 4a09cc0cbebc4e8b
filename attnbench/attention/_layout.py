"""Mask layouts and the masked kernel sums that let ``linear`` and ``lowrank`` run in O(n).

Notation: B batch, Tq query length, Tk key length, T = Tq = Tk (causal masks), C chunk length,
N = ⌈T / C⌉ chunks, Dx query/key feature width, Da summed feature width.

The attention contract hands a variant one boolean mask broadcastable to (B, Tq, Tk); backbones
build it from key padding ((B, 1, Tk): encoders, pooling, cross-attention) or from causal key
padding ((B, T, T): decoder self-attention). ``mask_layout`` recognises those two structures so
the kernelised variants can use shared sums (padding) or prefix sums (causal) instead of the
(B, Tq, Tk) matrix; any other mask is ``dense`` and takes the explicit O(Tq·Tk) route.

``masked_kernel_sum(x, y, a, layout)`` computes, for every query i,

    out_i = Σ_j M_ij (x_i · y_j) a_j                                     (B, Tq, Da)

which is the numerator and denominator of linear attention (x = φ(q), y = φ(k), a = [v, 1]) and
every length-wise sum of the Linformer projection. ``check_chunk`` validates the chunk length C
both variants take, and ``safe_denominator`` divides their sums' empty rows by 1, not 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.attention.base import expand_mask


@dataclass(frozen=True)
class MaskLayout:
    """What a mask allows, in the cheapest form that describes it exactly.

    - ``full``: no mask, every query sees every key.
    - ``keys``: the same keys for every query; ``keys`` (B, Tk).
    - ``causal``: Tq = Tk and query i sees key j < i iff ``keys[:, j]``, key i iff ``diag[:, i]``,
      and no key j > i (the Transformer decoder's mask: causal & padding, plus "see yourself").
    - ``dense``: anything else; ``dense`` (B, Tq, Tk).
    """

    kind: Literal["full", "keys", "causal", "dense"]
    keys: Tensor | None = None
    diag: Tensor | None = None
    dense: Tensor | None = None


def check_chunk(chunk: int) -> None:
    """Refuse a chunk length below 1 (``masked_kernel_sum``'s rows per causal block)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 (rows per block of the causal form), got {chunk}")


def safe_denominator(den: Tensor) -> Tensor:
    """Denominator with empty rows (den = 0, numerator exactly 0 too) divided by 1 instead."""
    return torch.where(den > 0, den, torch.ones_like(den))


def mask_layout(mask: Tensor | None, b: int, tq: int, tk: int) -> MaskLayout:
    """Classify a bool mask broadcastable to (B, Tq, Tk) (True = may attend).

    Looking at a per-query mask costs O(B·Tq·Tk) comparisons, no more than building it did.
    """
    m = expand_mask(mask, b, tq, tk)  # (B, Tq, Tk) view or None
    if m is None:
        return MaskLayout("full")
    if mask.dim() < 2 or mask.shape[-2] == 1 or tq == 1 or bool((m == m[:, :1]).all()):
        return MaskLayout("keys", keys=m[:, 0])  # (B, Tk)
    if tq == tk:
        ones = torch.ones(tq, tk, dtype=torch.bool, device=m.device)
        later = ones.triu(1)  # key after the query
        earlier = ones.tril(-1)  # key before the query
        keys = m[:, -1]  # (B, Tk): the last query sees every earlier key it is allowed
        if not bool((m & later).any()) and bool(((m == keys[:, None, :]) | ~earlier).all()):
            return MaskLayout("causal", keys=keys, diag=m.diagonal(dim1=1, dim2=2))
    return MaskLayout("dense", dense=m)


def masked_kernel_sum(x: Tensor, y: Tensor, a: Tensor, layout: MaskLayout, chunk: int) -> Tensor:
    """out_i = Σ_j M_ij (x_i · y_j) a_j with M given by ``layout``.

    x: (B, Tq, Dx), y: (B, Tk, Dx), a: (B, Tk, Da) -> (B, Tq, Da). Cost:
    - full / keys: one shared (Dx, Da) sum, O((Tq + Tk)·Dx·Da) time, O(Dx·Da) extra memory;
    - causal: chunks of C rows, each against the running (Dx, Da) prefix sum of the chunks
      before it plus its own masked (C, C) block, O(T·(C + Dx·Da / C)) time and memory;
    - dense: the explicit (B, Tq, Tk) matrix, O(Tq·Tk).
    """
    if layout.kind in ("full", "keys"):
        if layout.keys is not None:
            y = y * layout.keys[..., None]  # masked keys contribute nothing: (B, Tk, Dx)
        state = y.transpose(1, 2) @ a  # (B, Dx, Da)
        return x @ state  # (B, Tq, Da)
    if layout.kind == "dense":
        scores = (x @ y.transpose(1, 2)).masked_fill(~layout.dense, 0.0)  # (B, Tq, Tk)
        return scores @ a  # (B, Tq, Da)
    return _causal_sum(x, y, a, layout.keys, layout.diag, chunk)


def _causal_sum(x: Tensor, y: Tensor, a: Tensor, keys: Tensor, diag: Tensor, chunk: int) -> Tensor:
    """The ``causal`` case of ``masked_kernel_sum``: chunked prefix sums (Katharopoulos §3.3)."""
    b, t, _ = x.shape
    c = max(1, min(chunk, t))
    n = -(-t // c)  # N chunks, the last one padded with nothing-to-see rows and keys
    pad = n * c - t
    if pad:
        x, y, a = (F.pad(z, (0, 0, 0, pad)) for z in (x, y, a))
        keys, diag = F.pad(keys, (0, pad)), F.pad(diag, (0, pad))  # padding: False
    xb = x.reshape(b, n, c, -1)  # (B, N, C, Dx)
    yb = y.reshape(b, n, c, -1)  # (B, N, C, Dx)
    ab = a.reshape(b, n, c, -1)  # (B, N, C, Da)
    kb, db = keys.reshape(b, n, c), diag.reshape(b, n, c)  # (B, N, C)

    # Earlier chunks: every key a later query may see, summed per chunk, then an exclusive
    # prefix sum over chunks (the S_i of the paper, one per chunk instead of one per step).
    state = (yb * kb[..., None]).transpose(2, 3) @ ab  # (B, N, Dx, Da)
    before = torch.cat([torch.zeros_like(state[:, :1]), state[:, :-1].cumsum(dim=1)], dim=1)
    inter = xb @ before  # (B, N, C, Da)

    # The chunk itself: key j < i by padding, key i by the diagonal, nothing after.
    ones = torch.ones(c, c, dtype=torch.bool, device=x.device)
    allowed = (
        ones.tril(-1) & kb[:, :, None, :]
        | torch.eye(c, dtype=torch.bool, device=x.device) & db[..., None]
    )  # (B, N, C, C)
    intra = (xb @ yb.transpose(2, 3)).masked_fill(~allowed, 0.0) @ ab  # (B, N, C, Da)
    return (inter + intra).reshape(b, n * c, -1)[:, :t]  # (B, T, Da)

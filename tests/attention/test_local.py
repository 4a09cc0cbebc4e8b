"""Sliding-window attention against a naive reference that materialises the full band.

Notation: B batch, T length (queries = keys), D width, H heads, Dh = D / H, w window.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tests.attention.helpers import LargestFloatTensor, decoder_mask, padding_mask
from tests.attention.test_conformance import CONF, TOL, build, grads

YAML = CONF / "local.yaml"
B, T, D = 3, 23, 16


def local_by_hand(
    attn: nn.Module, x: Tensor, window: float, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Multi-head self-attention of x (B, T, D) where query i sees key j iff |i − j| ≤ window and
    the mask allows it; rows with no key give zero. Returns context and head-averaged weights."""
    b, t, d = x.shape
    h = attn.heads
    dh = d // h

    def heads(proj: nn.Linear) -> Tensor:  # (B, T, D) -> (B, H, T, Dh)
        return (x @ proj.weight.T + proj.bias).view(b, t, h, dh).transpose(1, 2)

    q, k, v = heads(attn.q_proj), heads(attn.k_proj), heads(attn.v_proj)
    pos = torch.arange(t)
    allowed = (pos[:, None] - pos[None, :]).abs() <= window  # (T, T)
    if mask is not None:
        allowed = allowed & mask
    allowed = allowed.expand(b, t, t)  # (B, T, T)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(dh)).masked_fill(~allowed[:, None], -1e30)
    weights = torch.softmax(scores, dim=-1) * allowed[:, None]  # (B, H, T, T)
    ctx = (weights @ v).transpose(1, 2).reshape(b, t, d)  # (B, T, D)
    out = (ctx @ attn.out_proj.weight.T + attn.out_proj.bias) * allowed.any(-1, keepdim=True)
    return out, weights.mean(dim=1)


def make(**kwargs: object) -> nn.Module:
    """The local variant for self-attention on width D (query, key and value widths D)."""
    return build(YAML, **{"dq": D, "dk": D, "dv": D, **kwargs})


def sequence(b: int = B, t: int = T, d: int = D, seed: int = 1) -> Tensor:
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed), requires_grad=True)


MASKS = {
    "none": lambda: None,
    "key-padding": lambda: padding_mask([T, 9, 1], T),
    "causal": lambda: decoder_mask([T, 9, 1], T),
    "causal-empty-rows": lambda: decoder_mask([T, 9, 0], T, see_self=False),
    "ragged": lambda: torch.rand(B, T, T, generator=torch.Generator().manual_seed(3)) > 0.5,
}
# (window, block): blocked fast path with 1, 1 and 3 neighbouring blocks, only the block itself,
# and the default block (T ≤ one neighbourhood: the plain band-mask path).
SHAPES = [(2, 3), (3, 3), (5, 2), (0, 1), (2, 0)]


@pytest.mark.parametrize(("window", "block"), SHAPES, ids=[f"w{w}-c{c}" for w, c in SHAPES])
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_local_matches_the_naive_reference(mask_name: str, window: int, block: int) -> None:
    attn = make(window=window, block=block)
    x = sequence()
    mask = MASKS[mask_name]()
    tensors = [x, *attn.parameters()]
    ref, ref_w = local_by_hand(attn, x, window, mask)
    ref.square().sum().backward()
    ref_grads = grads(tensors)
    for need_weights in (False, True):
        attn.zero_grad(set_to_none=True)
        x.grad = None
        ctx, w = attn(x, x, x, mask=mask, need_weights=need_weights)
        assert torch.isfinite(ctx).all()
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
        if need_weights:
            torch.testing.assert_close(w, ref_w, atol=TOL, rtol=0)
        ctx.square().sum().backward()
        for a, b in zip(grads(tensors), ref_grads, strict=True):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_cross_attention_has_no_window() -> None:
    """Queries that are not the keys share no positions with them: every key is in the window."""
    attn = make(window=1, block=2)
    x = sequence().detach()
    mask = padding_mask([T, 9, 1], T)
    ref, _ = local_by_hand(attn, x, math.inf, mask)
    ctx, _ = attn(x, x.clone(), x, mask=mask)  # equal values, but not the same tensor
    torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
    windowed, _ = attn(x, x, x, mask=mask)
    assert not torch.allclose(windowed, ref, atol=1e-3)


def test_a_window_wider_than_the_sequence_is_multihead() -> None:
    attn = make(window=T, block=4)
    x = sequence().detach()
    ref, _ = local_by_hand(attn, x, math.inf, None)
    torch.testing.assert_close(attn(x, x, x)[0], ref, atol=TOL, rtol=0)


def test_dropout_in_the_blocked_path() -> None:
    attn = make(window=2, block=3, dropout=0.5).train()
    x = sequence().detach()
    torch.manual_seed(0)
    ctx, _ = attn(x, x, x)
    assert torch.isfinite(ctx).all() and not torch.allclose(ctx, attn.eval()(x, x, x)[0])


@pytest.mark.parametrize("mask_name", ["key-padding", "causal"])
def test_memory_grows_linearly_with_length(mask_name: str) -> None:
    b, t, d, heads = 2, 256, 8, 2
    attn = make(dq=d, dk=d, dv=d, heads=heads, window=4, block=8)
    x = sequence(b, t, d)
    lengths = [t, t // 2]
    mask = padding_mask(lengths, t) if mask_name == "key-padding" else decoder_mask(lengths, t)
    with LargestFloatTensor() as seen:
        ctx, _ = attn(x, x, x, mask=mask)
        ctx.sum().backward()
    assert seen.numel < b * heads * t * t // 8, seen.numel  # no (B, H, T, T) score tensor
    torch.testing.assert_close(ctx, local_by_hand(attn, x, 4, mask)[0], atol=TOL, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": -1}, "window must be >= 0"),
        ({"block": -1}, "block must be >= 0"),
        ({"heads": 3}, "d_query=16 must be divisible by heads=3"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_invalid_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(**kwargs)

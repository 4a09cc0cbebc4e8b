"""Linear attention against a naive reference that materialises φ(Q)φ(K)ᵀ, for every mask layout.

Notation: B batch, T length (queries = keys), TQ/TK query/key lengths, D width, DV value width.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.attention._layout import mask_layout
from tests.attention.helpers import LargestFloatTensor, decoder_mask, padding_mask
from tests.attention.test_conformance import CONF, TOL, build, grads, inputs, zero_grads

YAML = CONF / "linear.yaml"
B, T = 3, 7


def linear_by_hand(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Σ_j M_ij φ(q_i)·φ(k_j) v_j / Σ_j M_ij φ(q_i)·φ(k_j), φ = elu + 1; empty rows give zero."""
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    sim = torch.einsum("bqd,bkd->bqk", fq, fk)  # (B, TQ, TK)
    if mask is not None:
        sim = sim * mask  # broadcasts; masked keys count zero
    return sim / sim.sum(-1, keepdim=True).clamp_min(1e-30) @ v


MASKS = {
    "none": lambda: None,
    "key-padding": lambda: padding_mask([T, 4, 1], T),
    "causal": lambda: decoder_mask([T, 4, 1], T),  # the Transformer decoder's mask
    "causal-empty-rows": lambda: decoder_mask([T, 4, 0], T, see_self=False),
    "causal-no-padding": lambda: torch.ones(T, T, dtype=torch.bool).tril(),
    "ragged": lambda: torch.rand(B, T, T, generator=torch.Generator().manual_seed(3)) > 0.5,
}


@pytest.mark.parametrize("chunk", [1, 3, 64])
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_linear_matches_the_naive_reference(mask_name: str, chunk: int) -> None:
    attn = build(YAML, chunk=chunk)
    q, k, v = inputs(tq=T, tk=T)
    mask = MASKS[mask_name]()
    ref = linear_by_hand(q, k, v, mask)
    ref.square().sum().backward()
    ref_grads = grads([q, k, v])
    for need_weights in (False, True):
        zero_grads(attn, [q, k, v])
        ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
        assert torch.isfinite(ctx).all()
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
        ctx.square().sum().backward()
        for a, b in zip(grads([q, k, v]), ref_grads, strict=True):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)
        if need_weights:
            torch.testing.assert_close(w @ v, ref, atol=TOL, rtol=0)


def test_cross_attention_with_padding() -> None:
    attn = build(YAML)
    q, k, v = inputs(tq=1, tk=T)  # a pooling query / one decoder step over T keys
    mask = padding_mask([T, 4, 1], T)
    torch.testing.assert_close(
        attn(q, k, v, mask)[0], linear_by_hand(q, k, v, mask), atol=TOL, rtol=0
    )


@pytest.mark.parametrize(
    ("mask_name", "kind"),
    [
        ("none", "full"),
        ("key-padding", "keys"),
        ("causal", "causal"),
        ("causal-empty-rows", "causal"),
        ("causal-no-padding", "causal"),
        ("ragged", "dense"),
    ],
)
def test_masks_are_recognised(mask_name: str, kind: str) -> None:
    assert mask_layout(MASKS[mask_name](), B, T, T).kind == kind
    full = MASKS[mask_name]()
    if full is not None:  # the same mask expanded per query is recognised the same way
        assert mask_layout(full.expand(B, T, T).clone(), B, T, T).kind == kind


def test_a_key_seen_by_a_later_query_only_is_not_causal() -> None:
    mask = decoder_mask([T] * B, T)
    mask[0, 5, 2] = False  # query 5 skips key 2 that queries 3, 4, 6 see: no prefix-sum form
    assert mask_layout(mask, B, T, T).kind == "dense"


@pytest.mark.parametrize("mask_name", ["key-padding", "causal"])
def test_memory_grows_linearly_with_length(mask_name: str) -> None:
    b, t, d = 2, 256, 8
    attn = build(YAML, dq=d, dk=d, dv=d, chunk=16)
    q, k, v = inputs(b, t, t, d, d, d)
    lengths = [t, t // 2]
    mask = padding_mask(lengths, t) if mask_name == "key-padding" else decoder_mask(lengths, t)
    with LargestFloatTensor() as seen:
        ctx, _ = attn(q, k, v, mask=mask)
        ctx.sum().backward()
    assert seen.numel < b * t * t // 4, seen.numel  # no (B, T, T) float tensor, forward or back
    torch.testing.assert_close(ctx, linear_by_hand(q, k, v, mask), atol=TOL, rtol=0)


def test_invalid_values() -> None:
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        build(YAML, chunk=0)
    with pytest.raises(ValueError, match="d_query=16, d_key=8"):
        build(YAML, dk=8)

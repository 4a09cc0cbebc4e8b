"""Luong "general" attention against its formula, score = qᵀ W k, with fixed weights.

Notation: B batch, TQ query length, TK key length, DQ/DK/DV widths.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.attention.test_conformance import (
    CONF,
    TOL,
    build,
    by_hand_softmax,
    grads,
    inputs,
    key_padding,
    ragged_mask,
    zero_grads,
)

YAML = CONF / "general.yaml"


def general_by_hand(q: Tensor, k: Tensor, v: Tensor, w: Tensor, mask: Tensor | None) -> Tensor:
    """softmax_j(q_iᵀ W k_j) v_j with W (DQ, DK); empty rows give zero."""
    scores = torch.einsum("bqd,de,bke->bqk", q, w, k)  # (B, TQ, TK)
    weights = by_hand_softmax(scores, mask).nan_to_num(0.0)
    return weights @ v


@pytest.mark.parametrize("dk", [16, 12], ids=["same-width", "different-width"])
@pytest.mark.parametrize("mask_kind", ["none", "key-padding", "ragged"])
def test_general_matches_the_formula(dk: int, mask_kind: str) -> None:
    attn = build(YAML, dk=dk)
    w = torch.randn(16, dk, generator=torch.Generator().manual_seed(7)) / dk**0.5
    with torch.no_grad():
        attn.W.weight.copy_(w)
    q, k, v = inputs(dk=dk)
    mask = {"none": None, "key-padding": key_padding(), "ragged": ragged_mask()}[mask_kind]
    ref = general_by_hand(q, k, v, w, mask)
    ref.square().sum().backward()
    ref_grads = grads([q, k, v])
    for need_weights in (False, True):
        zero_grads(attn, [q, k, v])
        ctx, weights = attn(q, k, v, mask=mask, need_weights=need_weights)
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
        ctx.square().sum().backward()
        for a, b in zip(grads([q, k, v]), ref_grads, strict=True):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)
        assert (weights is not None) is need_weights


def test_general_learns_its_bilinear_form() -> None:
    attn = build(YAML, dk=12)
    q, k, v = inputs(dk=12)
    attn(q, k, v, mask=key_padding())[0].sum().backward()
    assert attn.W.weight.shape == (16, 12)
    assert attn.W.weight.grad is not None and attn.W.weight.grad.abs().sum() > 0

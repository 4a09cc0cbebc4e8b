"""Cosine attention against NTM eq. 5-6 written out, with a fixed and a learned temperature.

Notation: B batch, TQ query length, TK key length, D query/key width, DV value width.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
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

YAML = CONF / "cosine.yaml"


def cosine_by_hand(
    q: Tensor, k: Tensor, v: Tensor, tau: float, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """softmax_j(cos(q_i, k_j) / τ) v_j; empty rows give zero."""
    cos = F.cosine_similarity(q[:, :, None, :], k[:, None, :, :], dim=-1)  # (B, TQ, TK)
    weights = by_hand_softmax(cos / tau, mask).nan_to_num(0.0)
    return weights @ v, weights


@pytest.mark.parametrize("learn", [True, False], ids=["learned", "fixed"])
@pytest.mark.parametrize("mask_kind", ["none", "key-padding", "ragged"])
def test_cosine_matches_the_formula(learn: bool, mask_kind: str) -> None:
    tau = 0.25
    attn = build(YAML, temperature=tau, learn_temperature=learn)
    q, k, v = inputs()
    mask = {"none": None, "key-padding": key_padding(), "ragged": ragged_mask()}[mask_kind]
    ref, ref_w = cosine_by_hand(q, k, v, tau, mask)
    ref.square().sum().backward()
    ref_grads = grads([q, k, v])
    for need_weights in (False, True):
        zero_grads(attn, [q, k, v])
        ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
        if need_weights:
            torch.testing.assert_close(w, ref_w, atol=TOL, rtol=0)
        ctx.square().sum().backward()
        for a, b in zip(grads([q, k, v]), ref_grads, strict=True):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_learned_temperature_is_a_parameter_and_fixed_is_not() -> None:
    learned = build(YAML, temperature=0.5)
    fixed = build(YAML, temperature=0.5, learn_temperature=False)
    assert [n for n, _ in learned.named_parameters()] == ["log_temperature"]
    assert list(fixed.parameters()) == []
    assert "log_temperature" in fixed.state_dict()  # saved with checkpoints either way
    assert math.isclose(learned.temperature, 0.5, rel_tol=1e-6)
    q, k, v = inputs()
    learned(q, k, v, mask=key_padding())[0].square().sum().backward()
    assert learned.log_temperature.grad is not None and learned.log_temperature.grad != 0


def test_zero_vectors_do_not_give_nan() -> None:
    attn = build(YAML)
    q, k, v = (t.detach().clone() for t in inputs())
    q[0, 0] = 0.0
    k[1, :2] = 0.0
    for need_weights in (False, True):
        ctx, _ = attn(q, k, v, need_weights=need_weights)
        assert torch.isfinite(ctx).all()


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_temperature_must_be_positive(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature must be > 0"):
        build(YAML, temperature=temperature)


def test_widths_must_match() -> None:
    with pytest.raises(ValueError, match="d_query=16, d_key=8"):
        build(YAML, dk=8)

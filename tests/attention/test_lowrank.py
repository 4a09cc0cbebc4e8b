"""Linformer attention against a naive reference that materialises every per-query projection.

Notation: B batch, T length (queries = keys), TQ/TK query/key lengths, D width, DV value width,
R projected rows.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from tests.attention.helpers import LargestFloatTensor, decoder_mask, padding_mask
from tests.attention.test_conformance import CONF, TOL, build, grads, inputs, zero_grads

YAML = CONF / "lowrank.yaml"
B, T, R = 3, 7, 4


def lowrank_by_hand(
    attn: nn.Module, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """softmax(q_i (E_i K)ᵀ / √D) (F_i V) with E_i, F_i the row-normalised exp(logits) over the
    keys query i may see; also the weights on keys, softmax(·) F_i. Everything materialised."""
    b, tq, d = q.shape
    tk = k.shape[1]
    m = torch.ones(b, tq, tk, dtype=torch.bool) if mask is None else mask.expand(b, tq, tk)
    m = m[:, :, None, :]  # (B, TQ, 1, TK)

    def rows(logits: Tensor) -> Tensor:  # (R, TK) -> (B, TQ, R, TK), rows sum to 1 (or 0)
        w = torch.exp(logits[:, :tk] - logits[:, :tk].max()) * m
        return w / w.sum(-1, keepdim=True).clamp_min(1e-30)

    e, f = rows(attn.key_logits), rows(attn.value_logits)  # (B, TQ, R, TK) each
    k_proj = e @ k[:, None]  # E_i K: (B, TQ, R, D)
    v_proj = f @ v[:, None]  # F_i V: (B, TQ, R, DV)
    scores = (k_proj @ q[..., None])[..., 0] / math.sqrt(d)  # (B, TQ, R)
    probs = torch.softmax(scores, dim=-1)[:, :, None, :]  # (B, TQ, 1, R)
    return (probs @ v_proj)[:, :, 0], (probs @ f)[:, :, 0]  # (B, TQ, DV), (B, TQ, TK)


MASKS = {
    "none": lambda: None,
    "key-padding": lambda: padding_mask([T, 4, 1], T),
    "causal": lambda: decoder_mask([T, 4, 1], T),
    "causal-empty-rows": lambda: decoder_mask([T, 4, 0], T, see_self=False),
    "ragged": lambda: torch.rand(B, T, T, generator=torch.Generator().manual_seed(3)) > 0.5,
}


@pytest.mark.parametrize("chunk", [1, 3, 64])
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_lowrank_matches_the_naive_reference(mask_name: str, chunk: int) -> None:
    attn = build(YAML, rank=R, max_len=10, chunk=chunk)
    q, k, v = inputs(tq=T, tk=T)
    mask = MASKS[mask_name]()
    tensors = [q, k, v, *attn.parameters()]
    ref, ref_w = lowrank_by_hand(attn, q, k, v, mask)
    ref.square().sum().backward()
    ref_grads = grads(tensors)
    for need_weights in (False, True):
        zero_grads(attn, [q, k, v])
        ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
        assert torch.isfinite(ctx).all()
        torch.testing.assert_close(ctx, ref, atol=TOL, rtol=0)
        if need_weights:
            torch.testing.assert_close(w, ref_w, atol=TOL, rtol=0)
        ctx.square().sum().backward()
        for a, b in zip(grads(tensors), ref_grads, strict=True):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_causal_projection_sees_no_future_key() -> None:
    attn = build(YAML, rank=R, max_len=10)
    q, k, v = (t.detach() for t in inputs(tq=T, tk=T))
    mask = decoder_mask([T] * B, T)
    before, _ = attn(q, k, v, mask=mask)
    k2, v2 = k.clone(), v.clone()
    k2[:, 4:], v2[:, 4:] = torch.randn(B, T - 4, k.shape[-1]), torch.randn(B, T - 4, v.shape[-1])
    after, _ = attn(q, k2, v2, mask=mask)
    torch.testing.assert_close(before[:, :4], after[:, :4], atol=TOL, rtol=0)


def test_one_query_at_a_time_equals_all_at_once() -> None:
    attn = build(YAML, rank=R)
    q, k, v = (t.detach() for t in inputs(tq=5, tk=T))
    mask = padding_mask([T, 4, 1], T)
    whole, _ = attn(q, k, v, mask=mask)
    steps = torch.cat([attn(q[:, i : i + 1], k, v, mask=mask)[0] for i in range(5)], dim=1)
    torch.testing.assert_close(steps, whole, atol=TOL, rtol=0)


def test_appending_padding_changes_nothing() -> None:
    attn = build(YAML, rank=R)
    q, k, v = (t.detach() for t in inputs(tq=5, tk=T))
    mask = padding_mask([T, 4, 1], T)
    longer = [torch.cat([t, torch.randn(B, 6, t.shape[-1])], dim=1) for t in (k, v)]
    for need_weights in (False, True):
        ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
        ctx2, w2 = attn(q, *longer, mask=padding_mask([T, 4, 1], T + 6), need_weights=need_weights)
        torch.testing.assert_close(ctx2, ctx, atol=TOL, rtol=0)
        if need_weights:
            torch.testing.assert_close(w2[..., :T], w, atol=TOL, rtol=0)
            assert (w2[..., T:] == 0).all()


def test_keys_longer_than_max_len_are_refused_with_the_setting_named() -> None:
    attn = build(YAML, max_len=6)
    with pytest.raises(ValueError, match=r"7 keys but attention.max_len=6.*max_len>=7"):
        attn(*inputs(tk=T))


@pytest.mark.parametrize("mask_name", ["key-padding", "causal"])
def test_memory_grows_linearly_with_length(mask_name: str) -> None:
    b, t, d = 2, 256, 8
    attn = build(YAML, dq=d, dk=d, dv=d, rank=R, chunk=16)
    q, k, v = inputs(b, t, t, d, d, d)
    lengths = [t, t // 2]
    mask = padding_mask(lengths, t) if mask_name == "key-padding" else decoder_mask(lengths, t)
    with LargestFloatTensor() as seen:
        ctx, _ = attn(q, k, v, mask=mask)
        ctx.sum().backward()
    assert seen.numel < b * t * t // 4, seen.numel  # no (B, T, T) float tensor, forward or back
    torch.testing.assert_close(ctx, lowrank_by_hand(attn, q, k, v, mask)[0], atol=TOL, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 0}, "rank must be >= 1"),
        ({"max_len": 0}, "max_len must be >= 1"),
        ({"chunk": 0}, "chunk must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"dk": 8}, "d_query=16, d_key=8"),
    ],
)
def test_invalid_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(YAML, **kwargs)

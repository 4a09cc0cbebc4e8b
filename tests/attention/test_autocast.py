"""Every attention variant under bfloat16 autocast on the CPU against its own float32 output.

Variants are found by globbing conf/attention/*.yaml and built, fed and masked by
test_conformance's ``build``, ``inputs`` and ``ragged_mask``, so a new YAML is tested here too.
Each case runs the same module twice, in float32 and under ``torch.autocast("cpu", bfloat16)``.

Notation: B batch, TQ query length, TK key length, T = TQ = TK, DV value width.

Tolerances, relative to the float32 output's scale (its largest magnitude):
- context 2e-2. bfloat16 keeps 8 significant bits: one rounding costs up to u = 2⁻⁸ ≈ 3.9e-3.
  Under autocast a context is rounded about four times on its way (the operands of the score
  product, the projections around it, the weights cast for the mixing product, its output), so
  4u ≈ 1.6e-2 bounds the usual case; 2e-2 leaves a little room (measured worst: 8.2e-3, general).
- gradients 4e-2: backward rounds as often again (bfloat16 activations saved by the forward,
  its own bfloat16 products), twice the forward's budget (measured worst: 1.0e-2, general).
- weights: still exact distributions. Normalisers run in float32 (attnbench/attention/base.py,
  "Precision"), so rows sum to 1 within 1e-5, float32's rounding over a row (bfloat16 weights
  missed by up to 7e-3), masked keys get exactly 0 and a fully masked row a zero context.

At larger scores (inputs ×8, T = 64: logits in the hundreds for the dot-product family) the
float32 steps are what keeps the weights path on the fast path's numbers: fused SDPA keeps its
logits in float32, and logits rounded to bfloat16 (spacing 0.5 at 64..128) moved the weights
path's context by up to 0.31 of its scale. What no variant can avoid there is the rounding of
its operands to bfloat16 before the fused kernel (a 2⁻⁹ relative change of a logit of 250 is
0.5), so only variants whose logits stay bounded or whose sums are ours are held to 2e-2 of
float32 there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from attnbench.attention.base import masked_softmax
from tests.attention.helpers import decoder_mask, padding_mask
from tests.attention.test_conformance import (
    DV,
    TQ,
    YAMLS,
    B,
    build,
    grads,
    inputs,
    ragged_mask,
    zero_grads,
)

BF16 = torch.bfloat16
CONTEXT_TOL = 2e-2
GRAD_TOL = 4e-2
SUM_TOL = 1e-5
BIG, T_BIG = 8.0, 64  # the larger-magnitude case: inputs ×8, 64 queries and keys
PATHS_TOL = 1e-2  # weights path vs fast path under autocast at ×8 (measured worst: 6.4e-3)


@pytest.fixture(params=YAMLS, ids=lambda p: p.stem)
def conf(request: pytest.FixtureRequest) -> Path:
    return request.param


def run(
    attn: nn.Module,
    qkv: tuple[Tensor, Tensor, Tensor],
    mask: Tensor | None,
    need_weights: bool,
    amp: bool,
) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """Forward (under bfloat16 autocast if ``amp``) and backward of a fixed linear probe of the
    context: (context, weights, gradients of q, k, v and every parameter)."""
    q, k, v = qkv
    zero_grads(attn, [q, k, v])
    with torch.autocast("cpu", dtype=BF16, enabled=amp):
        ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
    if ctx.requires_grad:
        probe = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(3))
        (ctx.float() * probe).sum().backward()
    return ctx.detach(), None if w is None else w.detach(), grads([q, k, v, *attn.parameters()])


def scale_of(*tensors: Tensor) -> float:
    return max(float(t.float().abs().max()) for t in tensors)


def assert_distributions(w: Tensor, mask: Tensor) -> None:
    """float32 rows summing to 1, exactly 0 on masked keys and on fully masked rows."""
    assert w.dtype == torch.float32, w.dtype
    assert torch.isfinite(w).all() and (w >= 0).all()
    rows = mask.expand_as(w).any(dim=-1)  # (B, TQ)
    ones = torch.ones(int(rows.sum()))
    torch.testing.assert_close(w.sum(-1)[rows], ones, atol=SUM_TOL, rtol=0)
    assert (w[~mask.expand_as(w)] == 0).all(), "masked keys must get exactly zero weight"
    assert (w[~rows] == 0).all(), "a fully masked row must give all-zero weights"


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "weights"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "ragged"])
def test_bf16_autocast_matches_float32(conf: Path, masked: bool, need_weights: bool) -> None:
    attn = build(conf)
    qkv = inputs()
    mask = ragged_mask() if masked else None
    ref, ref_w, ref_g = run(attn, qkv, mask, need_weights, amp=False)
    ctx, w, g = run(attn, qkv, mask, need_weights, amp=True)

    assert torch.isfinite(ctx).all()
    if not attn.baseline:  # the dtype autocast gives a matmul, as fused SDPA returns it
        assert ctx.dtype == BF16, ctx.dtype
    torch.testing.assert_close(ctx.float(), ref, atol=CONTEXT_TOL * scale_of(ref), rtol=0)
    if masked:
        assert (ctx[0, 1] == 0).all(), "a row with nothing to attend to must give a zero context"
    if w is not None:
        assert_distributions(w, mask if masked else torch.ones(1, 1, 1, dtype=torch.bool))
        torch.testing.assert_close(w, ref_w, atol=CONTEXT_TOL, rtol=0)
    # Gradients: finite, and close at the scale of the largest one (a gradient that is exactly
    # zero in float32, like multihead's key bias, is bfloat16 noise at that scale).
    assert all(torch.isfinite(t).all() for t in g)
    atol = GRAD_TOL * scale_of(*ref_g) if ref_g else 0.0
    for got, want in zip(g, ref_g, strict=True):
        torch.testing.assert_close(got, want, atol=atol, rtol=GRAD_TOL)


@pytest.mark.parametrize("shared", [False, True], ids=["cross", "self"])
def test_bf16_autocast_at_large_scores(conf: Path, shared: bool) -> None:
    """Inputs ×8 and T = 64, with the ragged mask; ``self``: query is key (self-attention, where
    ``local``'s window applies and, at this length, its blocked fast path runs)."""
    attn = build(conf)
    q, k, v = (x.detach().mul(BIG).requires_grad_() for x in inputs(tq=T_BIG, tk=T_BIG))
    qkv = (q, q if shared else k, v)
    mask = ragged_mask(tq=T_BIG, tk=T_BIG)
    ref, _, _ = run(attn, qkv, mask, need_weights=False, amp=False)
    fast, _, g_fast = run(attn, qkv, mask, need_weights=False, amp=True)
    slow, w, g_slow = run(attn, qkv, mask, need_weights=True, amp=True)

    for t in (fast, slow, *g_fast, *g_slow):
        assert torch.isfinite(t).all()
    assert (fast[0, 1] == 0).all() and (slow[0, 1] == 0).all()
    if attn.baseline:
        return
    assert_distributions(w, mask)
    scale = scale_of(ref)
    # The weights path sees the fast path's float32 logits: same context up to the rounding of
    # the weights for the mixing product.
    torch.testing.assert_close(slow.float(), fast.float(), atol=PATHS_TOL * scale, rtol=0)
    if attn.bounded_in_bf16:  # the variant's fact (attention/base.py)
        torch.testing.assert_close(fast.float(), ref, atol=CONTEXT_TOL * scale, rtol=0)


@pytest.mark.parametrize("kind", ["causal", "padding"])
def test_bf16_autocast_with_the_masks_backbones_build(conf: Path, kind: str) -> None:
    """Self-attention over T = 80 under a decoder's causal mask or key padding: the structured
    masks that send ``linear`` and ``lowrank`` down their prefix-sum (two chunks of 64) and
    shared-sum paths, and ``local`` down its blocked one."""
    t, lengths = 80, [80, 57, 9]
    q, _, v = inputs(tq=t, tk=t)
    mask = decoder_mask(lengths, t) if kind == "causal" else padding_mask(lengths, t)
    attn = build(conf)
    ref, _, ref_g = run(attn, (q, q, v), mask, need_weights=False, amp=False)
    ctx, _, g = run(attn, (q, q, v), mask, need_weights=False, amp=True)
    assert torch.isfinite(ctx).all() and all(torch.isfinite(x).all() for x in g)
    torch.testing.assert_close(ctx.float(), ref, atol=CONTEXT_TOL * scale_of(ref), rtol=0)
    atol = GRAD_TOL * scale_of(*ref_g) if ref_g else 0.0
    for got, want in zip(g, ref_g, strict=True):
        torch.testing.assert_close(got, want, atol=atol, rtol=GRAD_TOL)


def test_float32_softmax_of_bf16_logits_is_a_distribution_where_bf16_is_not() -> None:
    """``masked_softmax`` of bfloat16 logits (inputs ×8, T = 64) against float64: exact to
    float32, where a softmax left in bfloat16 is off by 1e-3 and its rows miss 1 by as much."""
    q, k, _ = inputs(tq=T_BIG, tk=T_BIG)
    mask = ragged_mask(tq=T_BIG, tk=T_BIG)
    with torch.autocast("cpu", dtype=BF16):
        logits = (q.detach() * BIG) @ (k.detach() * BIG).transpose(1, 2) / 4  # (B, T, T)
    assert logits.dtype == BF16
    exact = masked_softmax(logits.double(), mask)  # the same logits, softmaxed in float64
    rows = mask.any(dim=-1)

    ours = masked_softmax(logits, mask)
    assert ours.dtype == torch.float32
    assert float((ours.double() - exact).abs().max()) < 1e-6
    assert float((ours.double().sum(-1) - 1)[rows].abs().max()) < 1e-6

    plain = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)[rows]  # bfloat16
    assert float((plain.double() - exact[rows]).abs().max()) > 1e-3
    assert float((plain.double().sum(-1) - 1).abs().max()) > 1e-3


def test_none_gives_zeros_under_autocast() -> None:
    """The baseline's zero context is exact in any precision, and it still gives no weights."""
    attn = build(next(p for p in YAMLS if p.stem == "none"))
    with torch.autocast("cpu", dtype=BF16):
        ctx, w = attn(*inputs(), mask=ragged_mask(), need_weights=True)
    assert w is None and ctx.shape == (B, TQ, DV) and (ctx == 0).all()

"""Every attention variant under CUDA autocast, float16 and bfloat16, against its own float32
output on the same GPU (issue 13).

test_autocast.py checks bfloat16 autocast on the CPU; this module runs its cases on a CUDA device,
where autocast reaches what the CPU never runs: the fused SDPA kernels (flash, memory-efficient,
cuDNN) in 16 bits, cuBLAS's 16-bit products, and float16, which CPU training refuses. Variants are
found by globbing conf/attention/*.yaml and built, fed and masked by test_conformance's ``build``,
``inputs`` and ``ragged_mask`` (then moved to the GPU), so a new YAML is tested here too. Marked
``gpu``; each test also skips itself without a CUDA device, and its bfloat16 cases on a GPU
without bfloat16.

Notation: B batch, TQ query length, TK key length, T = TQ = TK.

Tolerances, relative to the float32 output's scale (its largest magnitude):
- bfloat16 (8 significant bits, unit roundoff u = 2⁻⁸ ≈ 3.9e-3): test_autocast.py's figures and
  reasons — context 2e-2 (about four roundings on a context's way), gradients 4e-2 (backward
  rounds as often again), weights path vs fast path at inputs ×8 1e-2.
- float16 (10 stored mantissa bits, 11 significant: u = 2⁻¹¹ ≈ 4.9e-4, 8x finer than bfloat16):
  the same derivation gives bfloat16's figures / 8 (context 2.5e-3, gradients 5e-3, paths
  1.25e-3). They are held at / 4 (5e-3, 1e-2, 2.5e-3): CUDA's fused kernels sum in another order
  and round their softmax probabilities to 16 bits before the mixing product, where the weights
  path rounds normalised weights, and float16 gains less than 8x in practice. Measured with these
  cases on the CPU under float16 autocast (a proxy: no GPU was at hand): worst context 1.7e-3
  (general), gradients 1.8e-3 (dot), paths 6.6e-4 (multihead), where bfloat16 gave 8.2e-3,
  1.0e-2 and 6.4e-3 (test_autocast's figures) — 4.7x, not 8x, better.
- weights, in both dtypes: float32 distributions (rows sum to 1 within 1e-5, masked keys exactly
  0, a fully masked row all 0: test_autocast's ``assert_distributions``).
The float32 references run with TF32 off: TF32 keeps 10 bits of a float32 product, no finer than
float16. float16's other limit is range (largest 65504): at inputs ×8 and T = 64, dot-product
logits reach about 10³ and linear attention's kernel sums about 10⁷, which is why linear and
lowrank sum in float32 and the fused kernels keep their logits in float32; every output and
gradient there must stay finite.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch import Tensor, nn

from tests.attention.helpers import decoder_mask, padding_mask
from tests.attention.test_autocast import (
    BIG,
    CONTEXT_TOL,
    GRAD_TOL,
    PATHS_TOL,
    T_BIG,
    assert_distributions,
    scale_of,
)
from tests.attention.test_conformance import (
    YAMLS,
    build,
    grads,
    inputs,
    ragged_mask,
    zero_grads,
)
from tests.training.test_device import needs_cuda

pytestmark = [pytest.mark.gpu, needs_cuda]

DEV = torch.device("cuda")
# float32 on the GPU vs float32 on the CPU, relative to the context's scale (at least 1): other
# kernels summing in another order. float32's u = 2⁻²⁴ ≈ 6e-8 over D = 16 products moves a logit
# of up to ~16 (dot's unscaled scores) by ~1.5e-5, a weight by as much relatively: 1e-4 bounds it.
F32_TOL = 1e-4


class Tol(NamedTuple):
    context: float
    grad: float
    paths: float


BF16_TOL = Tol(CONTEXT_TOL, GRAD_TOL, PATHS_TOL)
TOLS = {torch.bfloat16: BF16_TOL, torch.float16: Tol(*(t / 4 for t in BF16_TOL))}  # docstring


@pytest.fixture(params=YAMLS, ids=lambda p: p.stem)
def conf(request: pytest.FixtureRequest) -> Path:
    return request.param


@pytest.fixture(params=[torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def amp(request: pytest.FixtureRequest) -> torch.dtype:
    if request.param == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    return request.param


@pytest.fixture(autouse=True)
def ieee_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 products in float32, whatever the environment enables (TF32)."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def on_gpu(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Leaf copies on the GPU that collect gradients."""
    return tuple(t.detach().to(DEV).requires_grad_() for t in tensors)


def run(
    attn: nn.Module,
    qkv: tuple[Tensor, Tensor, Tensor],
    mask: Tensor | None,
    need_weights: bool,
    dtype: torch.dtype | None,
) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """Forward on the GPU (under autocast to ``dtype``, or in float32 for None) and backward of a
    fixed linear probe of the context: (context, weights, gradients of q, k, v and every
    parameter), all checked to be on the GPU and returned on the CPU."""
    q, k, v = qkv
    zero_grads(attn, [q, k, v])
    with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
        ctx, w = attn(q, k, v, mask=mask, need_weights=need_weights)
    assert ctx.is_cuda and (w is None or w.is_cuda)
    if ctx.requires_grad:
        probe = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(3)).to(DEV)
        (ctx.float() * probe).sum().backward()
    g = grads([q, k, v, *attn.parameters()])
    assert all(t.is_cuda for t in g)
    return ctx.detach().cpu(), None if w is None else w.detach().cpu(), [t.cpu() for t in g]


def assert_grads_close(got: list[Tensor], want: list[Tensor], tol: float) -> None:
    """Finite, and close at the scale of the largest float32 gradient (one that is exactly zero in
    float32, like multihead's key bias, is 16-bit noise at that scale)."""
    assert all(torch.isfinite(t).all() for t in got)
    atol = tol * scale_of(*want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=atol, rtol=tol)


@pytest.mark.parametrize("need_weights", [False, True], ids=["fast", "weights"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "ragged"])
def test_cuda_autocast_matches_float32(
    conf: Path, amp: torch.dtype, masked: bool, need_weights: bool
) -> None:
    tol = TOLS[amp]
    attn = build(conf).to(DEV)
    cpu_qkv = inputs()
    qkv = on_gpu(*cpu_qkv)
    cpu_mask = ragged_mask() if masked else None
    mask = None if cpu_mask is None else cpu_mask.to(DEV)
    ref, ref_w, ref_g = run(attn, qkv, mask, need_weights, None)
    ctx, w, g = run(attn, qkv, mask, need_weights, amp)

    # The float32 reference is the variant's float32 maths: the CPU's output, up to float32 sums.
    cpu_ref, _ = build(conf)(*cpu_qkv, mask=cpu_mask, need_weights=need_weights)
    torch.testing.assert_close(
        ref, cpu_ref.detach(), atol=F32_TOL * max(1.0, scale_of(ref)), rtol=0
    )

    assert torch.isfinite(ctx).all()
    if not attn.baseline:  # the dtype autocast gives a matmul, as fused SDPA returns it
        assert ctx.dtype == amp, ctx.dtype
    torch.testing.assert_close(ctx.float(), ref, atol=tol.context * scale_of(ref), rtol=0)
    if masked:
        assert (ctx[0, 1] == 0).all(), "a row with nothing to attend to must give a zero context"
    if w is not None:
        assert_distributions(w, cpu_mask if masked else torch.ones(1, 1, 1, dtype=torch.bool))
        torch.testing.assert_close(w, ref_w, atol=tol.context, rtol=0)
    assert_grads_close(g, ref_g, tol.grad)


@pytest.mark.parametrize("shared", [False, True], ids=["cross", "self"])
def test_cuda_autocast_at_large_scores(conf: Path, amp: torch.dtype, shared: bool) -> None:
    """Inputs ×8 and T = 64, with the ragged mask: float16's range. ``self``: query is key
    (self-attention, where ``local``'s window applies and its blocked fast path runs)."""
    tol = TOLS[amp]
    attn = build(conf).to(DEV)
    q, k, v = on_gpu(*(x.detach().mul(BIG) for x in inputs(tq=T_BIG, tk=T_BIG)))
    qkv = (q, q if shared else k, v)
    cpu_mask = ragged_mask(tq=T_BIG, tk=T_BIG)
    mask = cpu_mask.to(DEV)
    ref, _, _ = run(attn, qkv, mask, need_weights=False, dtype=None)
    fast, _, g_fast = run(attn, qkv, mask, need_weights=False, dtype=amp)
    slow, w, g_slow = run(attn, qkv, mask, need_weights=True, dtype=amp)

    for t in (fast, slow, *g_fast, *g_slow):
        assert torch.isfinite(t).all(), "an overflow in 16 bits"
    assert (fast[0, 1] == 0).all() and (slow[0, 1] == 0).all()
    if attn.baseline:
        return
    assert_distributions(w, cpu_mask)
    scale = scale_of(ref)
    # The weights path sees the fast path's float32 logits (of 16-bit operands): the same context
    # up to the rounding of the probabilities for the mixing product.
    torch.testing.assert_close(slow.float(), fast.float(), atol=tol.paths * scale, rtol=0)
    # Unbounded dot-product logits (about 10³ here) move by whole units when their operands are
    # rounded to 16 bits, in any kernel: only the others are held to float32 (test_autocast.py).
    if attn.bounded_in_bf16:  # the variant's fact (attention/base.py)
        torch.testing.assert_close(fast.float(), ref, atol=tol.context * scale, rtol=0)


@pytest.mark.parametrize("kind", ["causal", "padding"])
def test_cuda_autocast_with_the_masks_backbones_build(
    conf: Path, amp: torch.dtype, kind: str
) -> None:
    """Self-attention over T = 80 under a decoder's causal mask or key padding: ``linear`` and
    ``lowrank`` take their prefix-sum (two chunks of 64) and shared-sum paths, ``local`` its
    blocked one, with the mask indexed on the GPU."""
    tol = TOLS[amp]
    t, lengths = 80, [80, 57, 9]
    q, _, v = inputs(tq=t, tk=t)
    q, v = on_gpu(q, v)
    mask = (decoder_mask(lengths, t) if kind == "causal" else padding_mask(lengths, t)).to(DEV)
    attn = build(conf).to(DEV)
    ref, _, ref_g = run(attn, (q, q, v), mask, need_weights=False, dtype=None)
    ctx, _, g = run(attn, (q, q, v), mask, need_weights=False, dtype=amp)
    assert torch.isfinite(ctx).all()
    torch.testing.assert_close(ctx.float(), ref, atol=tol.context * scale_of(ref), rtol=0)
    assert_grads_close(g, ref_g, tol.grad)

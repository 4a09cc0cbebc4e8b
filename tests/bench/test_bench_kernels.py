"""The fast paths the benchmark times, against the materialised formulas it compares them with.

tests/attention/test_conformance.py already checks every variant's fast path against its weights
path and the paper formulas on tiny inputs. Here: the benchmark's own references (``naive``:
everything materialised, ``plain``/``bare``: plain torch calls) compute exactly what the variant
computes (multihead's ``bare``: exactly its SDPA step, on its own projected heads), so a ratio in
the bench table compares like with like; the chunked additive kernel equals the
naive broadcast at sizes with many chunks (default and small budgets, values and gradients);
and chunking bounds the measured peak memory.

Notation: B batch, T length, D width.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from attnbench.attention.additive import (
    DEFAULT_CHUNK_BYTES,
    additive_scores,
    additive_scores_naive,
)
from attnbench.bench.kernels import REFERENCES, _merge, build_runner
from attnbench.bench.measure import estimate_bytes, scaling_exponent
from attnbench.bench.memory import measure_memory
from attnbench.bench.plan import BenchSettings, Case

TOL = 1e-5
NODES = {
    "dot": {"name": "dot", "dropout": 0.0},
    "scaled": {"name": "scaled", "dropout": 0.0},
    "multihead": {"name": "multihead", "heads": 4, "dropout": 0.0},
    "additive": {"name": "additive", "hidden": 0, "dropout": 0.0, "chunk_bytes": 2**14},
}


def outputs_and_grads(case: Case, settings: BenchSettings) -> tuple[Tensor, list[Tensor]]:
    """One forward+backward of a bench case: its output and the gradients of inputs and weights."""
    runner = build_runner(case, NODES[case.variant], settings)
    runner.clear()
    out = runner.fn()
    out.backward(runner.grad)
    return out.detach(), [t.grad.clone() for t in runner.leaves]


SAME_FUNCTION = sorted(key for key, ref in REFERENCES.items() if ref.inputs is None)


@pytest.mark.parametrize(("variant", "kind"), SAME_FUNCTION)
def test_bench_references_equal_the_variant(variant: str, kind: str) -> None:
    settings = BenchSettings(batch=2, dim=16, seq_lens=[24])
    fast, g_fast = outputs_and_grads(Case(variant, "variant", 24), settings)
    ref, g_ref = outputs_and_grads(Case(variant, kind, 24), settings)
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)
    assert len(g_fast) == len(g_ref)
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_multihead_bare_is_its_own_sdpa_step() -> None:
    """The floor multihead is compared with: one SDPA call on the (B, H, T, Dh) heads its own
    projections make; out-projecting that call's output gives the module's output."""
    settings = BenchSettings(batch=2, dim=16, seq_lens=[24])
    assert sorted(k for (v, k), ref in REFERENCES.items() if ref.inputs is not None) == ["bare"]
    fast, _ = outputs_and_grads(Case("multihead", "variant", 24), settings)
    runner = build_runner(Case("multihead", "bare", 24), NODES["multihead"], settings)
    assert [tuple(t.shape) for t in runner.leaves] == [(2, 4, 24, 4)] * 3  # (B, H, T, Dh) leaves
    assert all(t.is_leaf and t.requires_grad for t in runner.leaves)
    heads_out = runner.fn()
    assert heads_out.shape == runner.grad.shape == (2, 4, 24, 4)
    torch.manual_seed(settings.seed)  # the module build_runner made for this case, same weights
    from attnbench.config.build import attention_factory
    from attnbench.config.schema import ComponentConfig

    attn = attention_factory(ComponentConfig.from_node(NODES["multihead"]))(16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(_merge(attn, heads_out), fast, atol=TOL, rtol=0)
    heads_out.backward(runner.grad)
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in runner.leaves)


@pytest.mark.parametrize("budget", [DEFAULT_CHUNK_BYTES, 2**16, 2**12])
@pytest.mark.parametrize("scale", [1.0, 4.0])  # 4.0: many pre-activations deep in tanh's tails
def test_additive_chunked_equals_naive_with_gradients(budget: int, scale: float) -> None:
    """Many chunks (the last one shorter), Tq != Tk, values and all three gradients."""
    g = torch.Generator().manual_seed(0)
    b, tq, tk, hd = 3, 45, 37, 32
    wq = (scale * torch.randn(b, tq, hd, generator=g)).requires_grad_()
    uk = (scale * torch.randn(b, tk, hd, generator=g)).requires_grad_()
    v = torch.randn(hd, generator=g, requires_grad=True)
    grad = torch.randn(b, tq, tk, generator=g)
    results = []
    chunked_fn = lambda: additive_scores(wq, uk, v, budget)  # noqa: E731
    for fn in (chunked_fn, lambda: additive_scores_naive(wq, uk, v)):
        for t in (wq, uk, v):
            t.grad = None
        out = fn()
        out.backward(grad)
        results.append((out.detach(), [t.grad.clone() for t in (wq, uk, v)]))
    (chunked, g_chunked), (naive, g_naive) = results
    torch.testing.assert_close(chunked, naive, atol=TOL, rtol=0)
    # A gradient sums up to B·Tq·Tk float32 terms (5,000 for ∂v, of size ~100): both float32
    # results are ~4e-6 of that size away from a float64 reference, so compare at that scale.
    for a, b_ in zip(g_chunked, g_naive, strict=True):
        torch.testing.assert_close(a, b_, atol=TOL * float(b_.abs().max()), rtol=0)


def test_additive_chunking_bounds_the_measured_peak_memory() -> None:
    """Peak RSS of one forward+backward, each in a fresh process: chunked <= 1/8 of naive."""
    settings = BenchSettings(batch=2, dim=64, seq_lens=[192])
    node = {"name": "additive", "hidden": 0, "dropout": 0.0, "chunk_bytes": 2**20}
    naive_mb, note = measure_memory(Case("additive", "naive", 192), node, settings, threads=1)
    assert naive_mb is not None, note
    chunked_mb, note = measure_memory(Case("additive", "variant", 192), node, settings, threads=1)
    assert chunked_mb is not None, note
    # naive: the (B, T, T, Hd) broadcast (18.9 MB), its tanh and their gradients
    assert naive_mb > 30, naive_mb
    assert chunked_mb <= naive_mb / 8, (chunked_mb, naive_mb)


def test_memory_estimates_order_the_cases() -> None:
    settings = BenchSettings(batch=8, dim=128)
    naive = estimate_bytes(Case("additive", "naive", 1024), NODES["additive"], settings)
    chunked = estimate_bytes(Case("additive", "variant", 1024), NODES["additive"], settings)
    assert 12e9 < naive < 14e9  # the issue measured 12.3 GB for this case
    assert chunked < naive / 8
    fused = estimate_bytes(Case("scaled", "variant", 1024), NODES["scaled"], settings)
    materialised = estimate_bytes(Case("scaled", "naive", 1024), NODES["scaled"], settings)
    assert fused < materialised


def test_scaling_exponent_is_the_log_log_slope() -> None:
    ns = [128, 256, 512, 1024]
    assert scaling_exponent(ns, [3e-9 * n**2 for n in ns]) == pytest.approx(2.0)
    assert scaling_exponent(ns, [1e-6 * n for n in ns]) == pytest.approx(1.0)
    assert scaling_exponent([128], [1.0]) is None

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
import yaml
from torch import Tensor

from attnbench.attention import ATTENTION
from attnbench.attention.additive import (
    DEFAULT_CHUNK_BYTES,
    additive_scores,
    additive_scores_naive,
)
from attnbench.attention.base import Call
from attnbench.attention.multihead import merge_heads
from attnbench.bench.case_memory import measure_memory
from attnbench.bench.kernels import build_module, build_runner
from attnbench.bench.measure import count_flops, estimate_bytes
from attnbench.bench.plan import BenchSettings, Case, variant_node
from attnbench.bench.results import crossover, scaling_exponent
from tests.conftest import CONF

TOL = 1e-5
# Settings that take each variant's interesting path at the tests' small sizes (T = 24): several
# additive chunks, lowrank's and linear's chunked forms, local's blocked path (window 3, blocks of
# 4 rows: S = 12 keys per block). Every other setting is the variant's YAML (conf/attention).
PATHS = {
    "additive": {"chunk_bytes": 2**14},
    "cosine": {"temperature": 0.5},
    "linear": {"chunk": 8},
    "lowrank": {"rank": 4, "max_len": 32, "chunk": 8},
    "local": {"window": 3, "heads": 4, "block": 4},
}
NODES = {
    node["name"]: {**node, **PATHS.get(node["name"], {})}
    for node in (yaml.safe_load(p.read_text()) for p in sorted(CONF.glob("attention/*.yaml")))
}


def outputs_and_grads(case: Case, settings: BenchSettings) -> tuple[Tensor, list[Tensor]]:
    """One forward+backward of a bench case: its output and the gradients of inputs and weights."""
    runner = build_runner(case, NODES[case.variant], settings)
    runner.clear()
    out = runner.fn()
    out.backward(runner.grad)
    return out.detach(), [t.grad.clone() for t in runner.leaves]


# Every (variant, kind) reference the variants declare (Attention.references), from the registry.
REFERENCES = {
    (name, kind): ref
    for name in ATTENTION.names()
    for kind, ref in ATTENTION.get(name).references.items()
}
SAME_FUNCTION = sorted(
    key for key, ref in REFERENCES.items() if ref.inputs is None and ref.peer is None
)


@pytest.mark.parametrize("inputs", ["self", "separate"])
@pytest.mark.parametrize(("variant", "kind"), SAME_FUNCTION)
def test_bench_references_equal_the_variant(variant: str, kind: str, inputs: str) -> None:
    settings = BenchSettings(batch=2, dim=16, seq_lens=[24], inputs=inputs)
    fast, g_fast = outputs_and_grads(Case(variant, "variant", 24), settings)
    ref, g_ref = outputs_and_grads(Case(variant, kind, 24), settings)
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)
    assert len(g_fast) == len(g_ref)
    for a, b in zip(g_fast, g_ref, strict=True):  # float32 sums: compare at the gradient's scale
        torch.testing.assert_close(a, b, atol=TOL * max(1.0, float(b.abs().max())), rtol=0)


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
    from attnbench.config.run_config import ComponentConfig

    attn = attention_factory(ComponentConfig.from_node(NODES["multihead"]))(16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(merge_heads(attn, heads_out), fast, atol=TOL, rtol=0)
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


def test_torch_mha_reference_is_multihead_in_pytorch() -> None:
    """multihead_torch: nn.MultiheadAttention(batch_first=True) with multihead's weights (packed
    in-projection) on the same inputs: same output, same input gradients, same weight gradients."""
    settings = BenchSettings(batch=2, dim=16, seq_lens=[24], inputs="separate")
    fast, g_fast = outputs_and_grads(Case("multihead", "variant", 24), settings)
    ref, g_ref = outputs_and_grads(Case("multihead", "torch", 24), settings)
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)
    for a, b in zip(g_fast[:3], g_ref[:3], strict=True):  # query, key, value
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)
    # weights: ours q, k, v, out (weight, bias each); torch's packed (3D, D), (3D,), then out
    wq, bq, wk, bk, wv, bv, wo, bo = g_fast[3:]
    in_w, in_b, out_w, out_b = g_ref[3:]
    assert in_w.shape == (48, 16)  # nn.MultiheadAttention's packed in_proj_weight
    for a, b in (
        (torch.cat([wq, wk, wv]), in_w),
        (torch.cat([bq, bk, bv]), in_b),
        (wo, out_w),
        (bo, out_b),
    ):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


@pytest.mark.parametrize("variant", sorted(NODES))
def test_every_variant_and_reference_runs_in_bf16_on_cpu(variant: str) -> None:
    """bench.dtype=bf16: weights, inputs, output and gradients all bfloat16 (cast, not autocast)."""
    from attnbench.bench.kernels import cases_for

    settings = BenchSettings(batch=2, dim=16, seq_lens=[24], dtype="bf16")
    for case in cases_for(variant, 24, settings):
        runner = build_runner(case, NODES[variant], settings)
        runner.clear()
        out = runner.fn()
        assert out.dtype == torch.bfloat16, case
        assert all(t.dtype == torch.bfloat16 for t in runner.leaves), case
        assert torch.isfinite(out.float()).all(), case
        runner()  # forward + backward
        grads = [t.grad for t in runner.leaves if t.grad is not None]
        assert variant == "none" or grads, case
        assert all(g.dtype == torch.bfloat16 for g in grads), case


def test_bf16_halves_the_memory_estimates_and_the_measured_naive_peak() -> None:
    node = NODES["scaled"]
    f32, bf16 = BenchSettings(batch=4, dim=64), BenchSettings(batch=4, dim=64, dtype="bf16")
    case = Case("scaled", "naive", 1024)
    assert estimate_bytes(case, node, bf16) * 2 == estimate_bytes(case, node, f32)
    # (B, T, T) scores, weights and their gradients: 4 × 16 MiB in float32, half in bf16
    mb = {}
    for name, settings in (("f32", f32), ("bf16", bf16)):
        mb[name], note = measure_memory(case, node, settings, threads=1)
        assert mb[name] is not None, note
    assert mb["f32"] > 40 and mb["bf16"] < 0.75 * mb["f32"], mb


def test_variant_node_fits_every_length() -> None:
    """lowrank's max_len is raised to the longest bench length (never lowered); bench.window and
    bench.heads reach the variants that take them, and only those."""
    settings = BenchSettings(seq_lens=[128, 8192], window=64, heads=8)
    lowrank = variant_node({"name": "lowrank", "rank": 32, "max_len": 512}, settings)
    assert lowrank["max_len"] == 8192 and "window" not in lowrank and "heads" not in lowrank
    long = variant_node({"name": "lowrank", "max_len": 10_000}, settings)
    assert long["max_len"] == 10_000
    local = variant_node({"name": "local", "window": 8, "heads": 4}, settings)
    assert local["window"] == 64 and local["heads"] == 8 and "max_len" not in local
    assert variant_node({"name": "scaled"}, settings) == {"name": "scaled"}


def test_crossover_is_where_the_variant_stays_faster() -> None:
    base = {128: 1.0, 256: 2.0, 512: 4.0, 1024: 8.0}
    assert crossover({128: 2.0, 256: 2.5, 512: 3.0, 1024: 3.5}, base) == 512
    assert crossover({128: 0.5, 256: 3.0, 512: 3.0, 1024: 3.5}, base) == 512  # a lucky 128
    assert crossover({128: 0.5, 256: 1.0, 512: 2.0, 1024: 9.0}, base) is None  # slower at the end
    assert crossover({128: 0.5, 256: 1.0}, base) == 128
    assert crossover({}, base) is None


def test_memory_estimates_order_the_cases() -> None:
    settings = BenchSettings(batch=8, dim=128)
    naive = estimate_bytes(Case("additive", "naive", 1024), NODES["additive"], settings)
    chunked = estimate_bytes(Case("additive", "variant", 1024), NODES["additive"], settings)
    assert 12e9 < naive < 14e9  # the issue measured 12.3 GB for this case
    assert chunked < naive / 8
    fused = estimate_bytes(Case("scaled", "variant", 1024), NODES["scaled"], settings)
    materialised = estimate_bytes(Case("scaled", "naive", 1024), NODES["scaled"], settings)
    assert fused < materialised
    # the O(n) variants against their (T, T) naive references, at T = 8192 (the figure's length)
    nodes = {**NODES, "local": {"name": "local", "window": 64, "heads": 4, "block": 0}}
    for variant in ("linear", "lowrank", "local"):
        node = variant_node(nodes[variant], BenchSettings(seq_lens=[8192]))
        cheap = estimate_bytes(Case(variant, "variant", 8192), node, settings)
        naive = estimate_bytes(Case(variant, "naive", 8192), node, settings)
        assert cheap < 2 * 2**30, (variant, cheap)
        # lowrank's naive form materialises E, F and the projected (R, D) keys/values: O(T·R) too
        assert naive > 8 * cheap if variant != "lowrank" else naive < 2**30, (variant, naive)


def test_scaling_exponent_is_the_log_log_slope() -> None:
    ns = [128, 256, 512, 1024]
    assert scaling_exponent(ns, [3e-9 * n**2 for n in ns]) == pytest.approx(2.0)
    assert scaling_exponent(ns, [1e-6 * n for n in ns]) == pytest.approx(1.0)
    assert scaling_exponent([128], [1.0]) is None


def test_matmul_peak_shrinks_when_one_product_would_be_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dtype the device only emulates (bf16 on most CPUs) is measured at a smaller N instead
    of spending minutes on the peak; a fast one keeps bench.peak_size."""
    from attnbench.bench import measure

    gflops, n = measure.matmul_peak_gflops(128, repeats=1)
    assert n == 128 and gflops > 0
    monkeypatch.setattr(measure, "PEAK_CALL_S", 1e-12)  # every product is "too slow"
    gflops, n = measure.matmul_peak_gflops(512, repeats=1, dtype="bf16")
    assert n == 256 and gflops > 0  # down to the 256³ probe, no further


@pytest.mark.parametrize("variant", sorted(NODES))
def test_written_flop_formulas_equal_the_flop_counter(variant: str) -> None:
    """The bench counts FLOPs with torch's FLOP counter for every variant (plugins included);
    a variant's written ``flops`` formula, where it has one, counts the same."""
    settings = BenchSettings(batch=2, dim=16, seq_lens=[24])
    counted = count_flops(build_runner(Case(variant, "variant", 24), NODES[variant], settings))
    written = build_module(NODES[variant], settings, device="meta").flops(Call(2, 24, 24))
    if variant == "none":
        assert counted == 0 and written is None
    elif written is None:  # additive, lowrank: element-wise work of the same order is uncounted
        assert counted > 0
    else:
        assert counted == pytest.approx(written, rel=1e-9)

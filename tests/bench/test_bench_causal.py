"""`bench.causal=true`: every variant under the causal mask a decoder hands it, each reference in
its causal form (SDPA's is_causal, masked materialised scores) computing exactly what the variant
computes; a variant without a causal form (lowrank) skipped with one line, not an error.

Notation: B batch, T length, D width.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnbench.attention import ATTENTION
from attnbench.bench.kernels import build_runner, cases_for, skipped
from attnbench.bench.measure import run_cases
from attnbench.bench.plan import BenchSettings, Case, compose_plan
from tests.bench.test_bench_kernels import NODES, REFERENCES, TOL, outputs_and_grads
from tests.conftest import all_runs

CAUSAL_REFS = sorted(key for key, ref in REFERENCES.items() if ref.causal and ref.inputs is None
                     and ref.peer is None)


@pytest.mark.parametrize(("variant", "kind"), CAUSAL_REFS)
def test_causal_references_equal_the_causal_variant(variant: str, kind: str) -> None:
    """The reference's causal form and the variant under its (1, T, T) causal mask: same output,
    same gradients of inputs and weights."""
    settings = BenchSettings(batch=2, dim=16, seq_lens=[24], causal=True)
    fast, g_fast = outputs_and_grads(Case(variant, "variant", 24), settings)
    ref, g_ref = outputs_and_grads(Case(variant, kind, 24), settings)
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=TOL * max(1.0, float(b.abs().max())), rtol=0)


def test_multihead_torch_and_bare_are_causal_too() -> None:
    """nn.MultiheadAttention with its causal attn_mask equals causal multihead; the bare SDPA
    call with is_causal=True on multihead's heads gives position 0 exactly its own value head."""
    settings = BenchSettings(batch=2, dim=16, seq_lens=[24], causal=True, inputs="separate")
    fast, _ = outputs_and_grads(Case("multihead", "variant", 24), settings)
    ref, _ = outputs_and_grads(Case("multihead", "torch", 24), settings)
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)
    bare = build_runner(Case("multihead", "bare", 24), NODES["multihead"], settings)
    qh, kh, vh = bare.leaves  # (B, H, T, Dh)
    out = bare.fn()
    torch.testing.assert_close(out[:, :, 0], vh[:, :, 0], atol=TOL, rtol=0)


@pytest.mark.parametrize("variant", ["dot", "scaled", "general", "cosine", "additive", "linear"])
def test_the_first_position_sees_only_itself(variant: str) -> None:
    """Under the causal mask query 0 may attend to key 0 alone: its context is value 0 exactly
    (a distribution over one key), for the variant and for its naive reference; without the mask
    it is not."""
    for causal in (True, False):
        settings = BenchSettings(batch=2, dim=16, seq_lens=[24], causal=causal, inputs="separate")
        for kind in ("variant", "naive"):
            runner = build_runner(Case(variant, kind, 24), NODES[variant], settings)
            v = runner.leaves[2]  # (B, T, D): query, key, value, then the weights
            first = runner.fn()[:, 0]
            assert torch.allclose(first, v[:, 0], atol=TOL) == causal, (variant, kind, causal)


def test_a_variant_without_a_causal_form_is_skipped_with_one_line() -> None:
    plan = compose_plan(["attention=scaled,lowrank", "bench.causal=true", "bench.seq_lens=[16]",
                         "bench.repeats=1", "bench.warmup=0", "bench.batch=1", "bench.dim=16",
                         "bench.peak_size=64", "bench.threads=1", "bench.memory=false",
                         "bench.naive=false", "bench.bare=false"])
    result = run_cases(plan)
    assert [r.label for r in result.rows] == ["scaled"]
    assert result.skipped == {
        "lowrank": "skipped: lowrank has no causal form (its fact `causal` is False)"}
    from rich.console import Console

    from attnbench.bench.output import results_table

    console = Console(width=250, record=True)
    console.print(results_table(result))
    text = console.export_text()
    lines = [ln for ln in text.splitlines() if "lowrank" in ln]
    assert len(lines) == 1 and "all" in lines[0] and "its fact `causal` is False" in lines[0]
    assert "forward+backward (fwd, bwd: each phase's median), causal" in text  # the title


def test_a_reference_without_a_causal_form_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's reference that does not declare `causal` is left out of a causal bench, with a
    note; the non-causal bench still times it."""
    from types import MappingProxyType

    from attnbench.attention.base import Reference
    from attnbench.attention.dot import dot_naive

    cls = ATTENTION.get("dot")
    monkeypatch.setattr(cls, "references", MappingProxyType({"naive": Reference(dot_naive)}))
    causal = BenchSettings(causal=True)
    assert cases_for("dot", 16, causal) == [Case("dot", "variant", 16)]
    assert skipped("dot", causal) == {"dot_naive": "skipped: this reference has no causal form"}
    assert cases_for("dot", 16, BenchSettings()) == [Case("dot", "variant", 16),
                                                     Case("dot", "naive", 16)]
    assert skipped("dot", BenchSettings(causal=True, naive=False)) == {}  # not asked for


def test_nothing_causal_to_bench_is_one_line(cli, runs_dir: Path) -> None:
    result = cli("bench", "attention=lowrank", "bench.causal=true", f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: bench.causal=true: nothing to bench: lowrank has no causal form (its fact "
        "`causal` is False). Variants to bench: additive, cosine, dot, general, linear, local, "
        "multihead, none, scaled"]
    decode = cli("bench", "attention=lowrank,none", "bench.mode=decode", f"runs_dir={runs_dir}")
    assert decode.exit_code == 2, decode.output
    assert decode.output.strip().splitlines() == [
        "error: bench.mode=decode: nothing to bench: lowrank has no causal form (its fact "
        "`causal` is False); none has no attention to decode (a backbone skips the baseline's "
        "mixing). Variants to bench: additive, cosine, dot, general, linear, local, multihead, "
        "scaled"]
    assert all_runs(runs_dir) == []


def test_the_causal_estimate_counts_the_mask() -> None:
    """The variant gets a bool (T, T) mask (checked as one (B, T, T) bool) and fused SDPA a float
    copy of it: the causal estimate is above the unmasked one by at least that much."""
    from attnbench.bench.measure import estimate_bytes

    b, t = 8, 1024
    plain, causal = BenchSettings(batch=b), BenchSettings(batch=b, causal=True)
    case = Case("scaled", "variant", t)
    extra = estimate_bytes(case, NODES["scaled"], causal) - estimate_bytes(case, NODES["scaled"],
                                                                           plain)
    assert extra == b * t * t + b * t * t * 4  # bool check + float mask, float32
    bare = Case("scaled", "bare", t)  # is_causal: no mask tensor
    assert estimate_bytes(bare, NODES["scaled"], causal) == estimate_bytes(bare, NODES["scaled"],
                                                                           plain)

"""`bench.mode=decode`: the state a variant holds after a T-position prefix, against bytes
computed by hand (a KV cache grows with T, linear's sums and local's window do not), the
exponent fits on hand-made numbers, the memory estimate's extrapolation, and the whole mode on
tiny sizes (no timing assertions: timings on a shared machine are noise).

Notation: B batch, T prefix length, D width, H heads, w local's window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from attnbench.bench.decode import build_decoder, estimate_bytes, state_bytes
from attnbench.bench.measure import run_cases
from attnbench.bench.plan import BenchSettings, Case, compose_plan
from attnbench.bench.results import Row, exponents
from tests.bench.test_bench_kernels import NODES
from tests.conftest import all_runs

B, D, T = 2, 16, 40
DECODE = BenchSettings(batch=B, dim=D, seq_lens=[T], mode="decode", causal=True, prefill=16)


def kv_cache(t: int, b: int = B, d: int = D, element: int = 4) -> int:
    """Keys and values (B, t, D) (or (B, H, t, D/H): as many elements) and the (B, t) bool of
    which positions are real tokens."""
    return 2 * b * t * d * element + b * t


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("scaled", kv_cache(T)),
        ("dot", kv_cache(T)),
        ("general", kv_cache(T)),  # W k cached instead of k: the same size
        ("cosine", kv_cache(T)),  # unit keys
        ("additive", kv_cache(T)),
        ("multihead", kv_cache(T)),  # (B, H, T, D/H) projected heads
        ("local", kv_cache(3)),  # its window (w = 3 here): w positions, whatever T
        ("linear", B * D * (D + 1) * 4),  # the running (S, z): (B, D, D + 1) float32
    ],
)
def test_state_bytes_against_hand_computed_sizes(variant: str, expected: int) -> None:
    assert NODES["local"]["window"] == 3
    runner = build_decoder(Case(variant, "variant", T), NODES[variant], DECODE)
    assert runner.state_bytes == expected
    runner()  # one step against that state: it does not grow the state the repeats read
    assert state_bytes(runner.state) == expected


def test_bf16_halves_the_kv_cache() -> None:
    settings = BenchSettings(batch=B, dim=D, mode="decode", causal=True, dtype="bf16")
    runner = build_decoder(Case("scaled", "variant", T), NODES["scaled"], settings)
    assert runner.state_bytes == kv_cache(T, element=2)


@dataclass(frozen=True)
class _Nested:
    kv: tuple[torch.Tensor, torch.Tensor]
    extra: dict[str, object]


def test_state_bytes_walks_any_structure_and_counts_each_tensor_once() -> None:
    a = torch.zeros(3, 5)  # 60 bytes
    b = torch.zeros(4, dtype=torch.float64)  # 32 bytes
    state = _Nested((a, a), {"b": b, "list": [b, torch.zeros(2, dtype=torch.bool)], "n": 3})
    assert state_bytes(state) == 60 + 32 + 2
    assert state_bytes(None) == 0
    assert state_bytes(torch.zeros(10)[2:6]) == 16  # a view: its own elements


def test_exponent_fits_on_hand_made_rows() -> None:
    """Flat (linear's sums) fits 0, proportional to T (a KV cache) fits 1, T² fits 2."""
    ns = [64, 256, 1024, 4096]
    rows = [Row("linear", "linear", "variant", n, median_ms=0.1, state_mb=0.5) for n in ns]
    rows += [Row("scaled", "scaled", "variant", n, median_ms=1e-4 * n, state_mb=1e-3 * n)
             for n in ns]
    rows += [Row("naive", "naive", "variant", n, median_ms=1e-7 * n * n) for n in ns]
    times, states = exponents(rows), exponents(rows, "state_mb")
    assert times["linear"] == pytest.approx(0.0, abs=1e-9)
    assert times["scaled"] == pytest.approx(1.0)
    assert times["naive"] == pytest.approx(2.0)
    assert states["linear"] == pytest.approx(0.0, abs=1e-9)
    assert states["scaled"] == pytest.approx(1.0)
    assert states["naive"] is None  # no state measured


def test_prefill_chunks() -> None:
    """bench.prefill=0: the prefix in 32 calls of at least 256 positions; a set value is kept."""
    from attnbench.bench.decode import prefill_at

    auto = BenchSettings()
    assert [prefill_at(auto, t) for t in (100, 1000, 8192, 32768, 32769)] == [
        100, 256, 256, 1024, 1025]
    assert prefill_at(BenchSettings(prefill=16), 1000) == 16


def test_the_estimate_extrapolates_the_measured_states() -> None:
    """State twice (the prefill's cat holds old and new), plus one prefill call: the variant's
    memory for P queries over T keys, a (B, P, T) bool mask, ten (B, P, D) tensors."""
    s = BenchSettings(batch=B, dim=D, mode="decode", causal=True, prefill=16)
    case = Case("scaled", "variant", 400)
    prefill = (B * 16 * 400 * 4 + 2 * B * 16 * 4) + B * 16 * 400 + 10 * B * 16 * D * 4
    assert estimate_bytes(case, NODES["scaled"], s) == 2 * (2 * B * 400 * D * 4) + prefill
    grows = [(100, 1000), (200, 2000)]
    assert estimate_bytes(case, NODES["scaled"], s, grows) == 2 * 4000 + prefill
    flat = [(100, 500), (200, 500)]
    assert estimate_bytes(case, NODES["scaled"], s, flat) == 2 * 500 + prefill
    assert estimate_bytes(case, NODES["scaled"], s, [(100, 1000)]) == 2 * 4000 + prefill


def test_decode_mode_reports_state_and_exponents(cli, runs_dir: Path) -> None:
    """The figure's command at tiny sizes: per-step time and state MB per prefix length; the
    state's exponent is exactly 1 for scaled's cache (bytes ∝ T) and 0 for linear's sums; lowrank
    (no causal form) and none (nothing to decode) are one line each."""
    result = cli("bench", "attention=linear,scaled,lowrank,none", "bench.causal=true",
                 "bench.mode=decode", "bench.seq_lens=[16,64]", "bench.repeats=2",
                 "bench.batch=2", "bench.dim=16", "bench.peak_size=64", "bench.threads=1",
                 f"runs_dir={runs_dir}")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("ms/token", "state MB", "prefix T", "state exponent", "time exponent"):
        assert text in out, text
    assert "skipped: lowrank has no causal form (its fact `causal` is False)" in out
    assert "skipped: none has no attention to decode" in out
    run = all_runs(runs_dir)[0]
    assert run.params["bench.mode"] == "decode" and run.params["bench.causal"] == "True"
    assert run.metrics["scaled/state_exponent"] == pytest.approx(1.0)
    assert run.metrics["linear/state_exponent"] == pytest.approx(0.0, abs=1e-9)
    assert run.metrics["scaled/state_mb"] == pytest.approx(kv_cache(64) / 2**20)
    assert run.metrics["linear/state_mb"] == pytest.approx(2 * 16 * 17 * 4 / 2**20)
    assert "scaled/peak_mem_mb" not in run.metrics  # decoding reports its state instead
    assert run.metrics["scaled/gflops"] > 0  # FLOPs of one step, counted


def test_decode_implies_causal_and_times_no_references() -> None:
    plan = compose_plan(["attention=multihead", "bench.mode=decode", "bench.seq_lens=[16]",
                         "bench.repeats=1", "bench.warmup=0", "bench.batch=1", "bench.dim=16",
                         "bench.peak_size=64", "bench.threads=1"])
    assert plan.settings.causal is True
    result = run_cases(plan)
    assert [(r.label, r.n) for r in result.rows] == [("multihead", 16)]
    row = result.rows[0]
    assert row.median_ms and row.peak_mb is None and row.fwd_ms is None
    assert row.state_mb == pytest.approx(kv_cache(16, b=1) / 2**20)

"""`bench.mode`: train times forward and backward separately (and their sum), forward times the
inference forward without autograd; FLOPs are counted in each mode for every variant, a plugin's
included (tests/plugin_pkg's RBF variant). No timing assertions: structure, FLOP counts and the
phases' bookkeeping on hand-made numbers.

Notation: B batch, T length, D width.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from attnbench.bench.kernels import build_runner
from attnbench.bench.measure import count_flops
from attnbench.bench.plan import BenchSettings, Case
from attnbench.bench.results import Row, record_times
from tests.bench.test_bench_kernels import NODES
from tests.conftest import all_runs

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "plugin_pkg"


def test_train_rows_hold_each_phase_and_their_sum() -> None:
    """Per repeat (forward s, backward s): the time is the median of the sums, fwd and bwd each
    phase's own median."""
    row = Row("scaled", "scaled", "variant", 16)
    record_times(row, [(0.001, 0.002), (0.002, 0.003), (0.003, 0.001)], None, 8e6, {})
    assert row.median_ms == pytest.approx(4.0)  # sums 3, 5, 4 ms
    assert row.iqr_ms == pytest.approx(1.0)  # quartiles 3.5 and 4.5 (inclusive)
    assert (row.fwd_ms, row.bwd_ms) == (pytest.approx(2.0), pytest.approx(2.0))
    assert row.repeats == 3 and row.gflops == pytest.approx(2.0)  # 8e6 FLOPs in 4 ms
    one = Row("scaled", "scaled", "variant", 16)
    record_times(one, [(0.002,), (0.004,)], None, None, {})  # forward or decode: one phase
    assert one.median_ms == pytest.approx(3.0) and one.fwd_ms is None and one.bwd_ms is None


def test_runner_phases_by_mode() -> None:
    b, t, d = 2, 24, 16
    train = build_runner(Case("scaled", "variant", t), NODES["scaled"],
                         BenchSettings(batch=b, dim=d))
    assert [p.__name__ for p in train.phases()] == ["forward", "backward"]
    train()
    assert all(x.grad is not None for x in train.leaves)
    # SDPA forward: Q Kᵀ and P V, 2·B·T·T·D each; its backward recomputes and adds 10·B·T²·D
    assert count_flops(train) == 14 * b * t * t * d
    infer = build_runner(Case("scaled", "variant", t), NODES["scaled"],
                         BenchSettings(batch=b, dim=d, mode="forward"))
    assert [p.__name__ for p in infer.phases()] == ["infer"]
    infer()
    assert all(x.grad is None and not x.requires_grad for x in infer.leaves[:1])
    assert count_flops(infer) == 4 * b * t * t * d


def test_forward_mode_on_the_command_line(cli, runs_dir: Path) -> None:
    result = cli("bench", "attention=scaled", "bench.mode=forward", "bench.seq_lens=[16,32]",
                 "bench.repeats=2", "bench.peak_size=64", "bench.threads=1",
                 "bench.memory=false", f"runs_dir={runs_dir}")
    assert result.exit_code == 0, result.output
    assert "inference forward (no autograd)" in result.output
    assert "fwd ms" not in result.output and "scaled_bare" in result.output
    run = all_runs(runs_dir)[0]
    assert run.params["bench.mode"] == "forward"
    assert "scaled/time_ms" in run.metrics and "scaled/fwd_ms" not in run.metrics
    assert run.metrics["scaled/gflops"] > 0


def test_a_bad_mode_is_one_line(cli, runs_dir: Path) -> None:
    result = cli("bench", "bench.mode=backward", f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: 'bench.mode' = 'backward' is not valid: choose one of train, forward, decode"]


@pytest.fixture
def rbf(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """tests/plugin_pkg's RBF variant in the registry for one test, as its entry point would
    put it there."""
    from attnbench.attention import ATTENTION

    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    from attnbench_rbf.rbf import RBFAttention

    ATTENTION.names()  # the built-ins first
    ATTENTION.register("rbf")(RBFAttention)
    try:
        yield "rbf"
    finally:
        ATTENTION._items.pop("rbf", None)
        ATTENTION._origin.pop("rbf", None)


def test_a_plugin_variant_gets_gflops_in_every_mode(rbf: str) -> None:
    """The counter sees the plugin's SDPA on [2q, 1] and [k, −‖k‖²] (width D + 1) with values of
    width D: forward 2·B·Tq·Tk·((D + 1) + D), backward twice that; a decoding step is one query
    over the T + 1 cached keys. Its rows get GFLOP/s and % of peak in each mode."""
    from attnbench.bench.measure import run_cases
    from attnbench.bench.plan import BenchPlan

    b, t, d = 2, 24, 16
    node = {"name": rbf, "temperature": 0.0, "dropout": 0.0}
    forward = 2 * b * t * t * ((d + 1) + d)
    for mode, flops in (("train", 3 * forward), ("forward", forward),
                        ("decode", 2 * b * (t + 1) * ((d + 1) + d))):
        s = BenchSettings(batch=b, dim=d, seq_lens=[t], mode=mode, causal=mode == "decode",
                          repeats=1, warmup=1, peak_size=64, threads=1, memory=False)
        result = run_cases(BenchPlan(settings=s, variants={rbf: node}))
        [row] = result.rows
        assert row.gflops == pytest.approx(flops / row.median_ms / 1e6), mode
        assert row.pct_peak is not None and row.pct_peak > 0, mode

"""Per-run memory (training/run_memory.py).

cost/peak_mem_mb on the CPU is the tensor memory the run needed above its weights, measured on a
probe with torch.profiler's allocation events: the same job reports the same figure to the byte
first in a process or after a memory-hungry job, and it adds up from parts computed here by hand.
cost/peak_rss_mb is the process's resident set over the run, noisier (its bounds are loose)."""

from __future__ import annotations

import sys

import pytest
import torch

from attnbench.training.loop import FitResult, fit
from attnbench.training.run_memory import MB, tensor_mb, tensor_peak_mb
from tests.training.conftest import RECALL, Recorder, case


def _with(overrides: tuple[str, ...], **values: object) -> tuple[str, ...]:
    kept = [o for o in overrides if o.split("=")[0] not in values]
    return (*kept, *(f"{k}={v}" for k, v in values.items()))


SMALL = _with(RECALL, **{"backbone.d_model": 64})
HUNGRY = _with(RECALL, **{"backbone.d_model": 192, "backbone.layers": 2})


def _fit(overrides: tuple[str, ...], **trainer: object) -> FitResult:
    c = case(overrides, **trainer)
    return fit(c.model, c.data, c.trainer, c.seed, Recorder())


# -- the measuring instrument ------------------------------------------------------------------
def test_tensor_peak_counts_allocations_minus_frees_in_order() -> None:
    def pattern() -> None:
        a = torch.ones(1024, 1024)  # 4 MiB
        b = a * 2  # 8 MiB live
        del a
        c = b + 1  # 8 MiB again: a was freed first
        del b, c
        d = torch.empty(3 * 1024 * 1024, dtype=torch.uint8)  # 3 MiB, below the peak
        del d

    assert tensor_peak_mb(pattern) == pytest.approx(8.0, abs=1e-3)


def test_tensor_peak_sees_the_backward_pass() -> None:
    """A 1024x1024 linear layer: forward output (B x 1024) and, in backward, its 4 MiB weight
    gradient; the peak holds at least the gradient and the saved activation."""
    layer = torch.nn.Linear(1024, 1024, bias=False)
    x = torch.randn(256, 1024)

    def step() -> None:
        layer(x).square().sum().backward()

    peak = tensor_peak_mb(step)
    assert peak is not None and peak >= 4.0 + 1.0  # gradient (4 MiB) + the output (1 MiB)
    assert peak < 4.0 + 4 * 1.0 + 1.0  # and not more than every buffer at once
    assert layer.weight.grad is not None


def test_tensor_peak_keeps_other_stderr_output_and_drops_the_profilers(
    capfd: pytest.CaptureFixture[str],
) -> None:
    kept = torch.ones(1000)

    def noisy() -> None:
        nonlocal kept
        del kept  # a block from before profiling, freed during it: c10 may warn about it
        print("a line of the run's own", file=sys.stderr)

    tensor_peak_mb(noisy)
    err = capfd.readouterr().err
    assert "a line of the run's own" in err
    assert "SyncActivityProfilerHandler" not in err and "unknown size" not in err


def test_tensor_mb_counts_a_tied_tensor_once() -> None:
    w = torch.zeros(256, 1024)  # 1 MiB
    state = {"a": w, "b": w, "nested": {"m": torch.zeros(512, 512), "step": torch.tensor(3.0)}}
    assert tensor_mb(state) == pytest.approx(1.0 + 1.0 + 4 / MB)


# -- the run's figures ----------------------------------------------------------------------------
JOB = dict(max_steps=4, batch_size=64, eval_batch_size=96, log_every=2, device="cpu")


def test_the_same_job_reports_the_same_peak_first_or_after_a_hungry_job() -> None:
    """Issue 13: the same job, the same figure whatever ran before it in the process (the
    resident-set figure moved 0.6-1.6x here, run_memory.py)."""
    first = _fit(SMALL, **JOB).cost
    hungry = _fit(HUNGRY, max_steps=2, batch_size=256, eval_batch_size=96, device="cpu").cost
    after = _fit(SMALL, **JOB).cost
    assert hungry["peak_mem_mb"] > 5 * first["peak_mem_mb"] > 0  # it did need more
    assert after["peak_mem_mb"] == first["peak_mem_mb"], (first, after)
    assert after["base_mem_mb"] == first["base_mem_mb"]


def test_the_peak_holds_the_optimiser_state_the_best_weights_and_the_activations() -> None:
    """base = the weights; peak >= AdamW's two moments per weight + the best-weights copy + the
    gradients, and the rest is the activations of one step or one validation batch."""
    c = case(SMALL, **JOB)
    weights = sum(t.nbytes for t in c.model.state_dict().values()) / MB
    trained = sum(p.nbytes for p in c.model.parameters() if p.requires_grad) / MB
    cost = fit(c.model, c.data, c.trainer, c.seed, Recorder()).cost
    assert cost["base_mem_mb"] == pytest.approx(weights)
    held = 2 * trained + weights  # exp_avg, exp_avg_sq; the best_state copy
    assert cost["peak_mem_mb"] > held + trained  # + gradients + activations
    assert cost["peak_mem_mb"] < held + trained + 200  # a small model: activations, not GBs


def test_bigger_batches_raise_the_peak() -> None:
    """Training batches for one, validation batches for the other: the probe follows both."""
    small = dict(JOB, batch_size=16, eval_batch_size=8)
    base = _fit(SMALL, **small).cost["peak_mem_mb"]
    assert _fit(SMALL, **(small | {"batch_size": 256})).cost["peak_mem_mb"] > base
    assert _fit(SMALL, **(small | {"eval_batch_size": 96})).cost["peak_mem_mb"] > base


@pytest.mark.skipif(sys.platform != "linux", reason="resets the peak: Linux only")
def test_the_resident_set_figures_are_reported_beside() -> None:
    """The process's resident set: the base holds torch itself; the peak moves with glibc's heap
    (repeat/first 0.85-1.13 and after a hungry job 0.82-1.6 over 15 rounds), so loose bounds
    that still catch one-time set-up (3.8x) leaking into it."""
    first = _fit(SMALL, **JOB).cost
    repeat = _fit(SMALL, **JOB).cost
    assert first["base_rss_mb"] > 50 and repeat["base_rss_mb"] > 50
    assert 0.6 <= repeat["peak_rss_mb"] / first["peak_rss_mb"] <= 1.75, (first, repeat)


def test_memory_figures_are_reported_with_the_other_costs() -> None:
    cost = _fit(RECALL, max_steps=2, batch_size=32, device="cpu").cost
    assert {"params", "train_s", "epoch_s", "samples_per_s", "peak_mem_mb", "base_mem_mb",
            "peak_rss_mb", "base_rss_mb"} <= cost.keys()
    assert cost["peak_mem_mb"] > 0 and cost["base_mem_mb"] > 0 and cost["base_rss_mb"] > 0


def test_without_allocation_events_the_cpu_figure_falls_back_to_the_resident_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A torch whose profiler reported no allocations must not give a peak of 0 + what is held."""
    from attnbench.training import run_memory

    monkeypatch.setattr(run_memory, "_cpu_allocations", lambda nodes: [])
    assert tensor_peak_mb(lambda: torch.ones(1000)) is None
    cost = _fit(RECALL, max_steps=2, batch_size=32, device="cpu").cost
    assert cost["peak_mem_mb"] == cost["peak_rss_mb"]
    assert cost["base_mem_mb"] == cost["base_rss_mb"]

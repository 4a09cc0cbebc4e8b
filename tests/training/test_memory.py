"""cost/peak_mem_mb is the run's own peak: the same job reports the same figure first in a process
or after a memory-hungry job, and cost/base_mem_mb says what the process held at its start."""

from __future__ import annotations

import pytest

from attnbench.training.loop import FitResult, fit
from attnbench.training.memory import _status_kib
from tests.training.conftest import RECALL, Recorder, case


def _with(overrides: tuple[str, ...], **values: object) -> tuple[str, ...]:
    kept = [o for o in overrides if o.split("=")[0] not in values]
    return (*kept, *(f"{k}={v}" for k, v in values.items()))


SMALL = _with(RECALL, **{"backbone.d_model": 64})
HUNGRY = _with(RECALL, **{"backbone.d_model": 192, "backbone.layers": 2})


def _fit(overrides: tuple[str, ...], **trainer: object) -> FitResult:
    c = case(overrides, **trainer)
    return fit(c.model, c.data, c.trainer, c.seed, Recorder())


@pytest.mark.skipif(_status_kib("VmHWM") is None, reason="needs /proc (Linux)")
def test_the_same_job_reports_about_the_same_peak_first_or_after_a_hungry_job() -> None:
    """First in the process, the figure once carried the kernels' and metric libraries' one-time
    set-up (3.8x the repeat's figure). What remains is glibc's heap: freed pages it keeps
    resident and a heap fragmented by earlier jobs. Measured over 15 rounds of this test:
    repeat/first 0.85-1.13; after the hungry job / first 0.82-1.6 (median 1.04). The issue asks
    for +-5 %: not met on the CPU (memory.py says why); these bounds catch a return of the
    one-time costs without failing on the heap's noise."""
    job = dict(max_steps=24, batch_size=64, eval_batch_size=96, log_every=8, device="cpu")
    first = _fit(SMALL, **job).cost
    repeat = _fit(SMALL, **job).cost
    hungry = _fit(HUNGRY, max_steps=4, batch_size=512, eval_batch_size=96, device="cpu").cost
    after = _fit(SMALL, **job).cost
    assert hungry["peak_mem_mb"] > 10 * first["peak_mem_mb"] > 50  # it did need more
    assert 0.75 <= repeat["peak_mem_mb"] / first["peak_mem_mb"] <= 1.33, (first, repeat)
    assert 0.6 <= after["peak_mem_mb"] / first["peak_mem_mb"] <= 1.75, (first, after)
    assert first["base_mem_mb"] > 50 and after["base_mem_mb"] > 50  # torch alone is more


def test_memory_figures_are_reported_with_the_other_costs() -> None:
    cost = _fit(RECALL, max_steps=2, batch_size=32, device="cpu").cost
    assert {"params", "train_s", "epoch_s", "samples_per_s", "peak_mem_mb",
            "base_mem_mb"} <= cost.keys()
    assert cost["peak_mem_mb"] >= 0 and cost["base_mem_mb"] > 0

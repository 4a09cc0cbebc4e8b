"""Precision 16: steps the gradient scaler skips (inf/NaN gradients, no update) are counted and
logged as ``train/skipped_steps``. Precision 16 trains on CUDA and MPS; on this CPU the same code
runs with CPU float16 autocast and a CPU GradScaler (the device check is bypassed)."""

from __future__ import annotations

import functools

import pytest
import torch

from attnbench.training import loop
from attnbench.training.loop import fit
from tests.training.conftest import RECALL, Recorder, case


@pytest.fixture
def fp16_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "check_precision", lambda precision, device: None)


def _skipped(rec: Recorder) -> list[float]:
    return [m["train/skipped_steps"] for _, m in rec.logged if "train/skipped_steps" in m]


def test_every_step_skipped_by_an_overflowing_scale_is_counted_and_nothing_moves(
    fp16_on_cpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scale of 2^100 overflows float32 gradients: every step is skipped (the scale halves
    each time, far from usable within 6 steps), so the weights stay as initialised."""
    monkeypatch.setattr(torch.amp, "GradScaler",
                        functools.partial(torch.amp.GradScaler, init_scale=2.0**100))
    c = case(RECALL, max_steps=6, log_every=2, device="cpu", precision="16")
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    rec = Recorder()
    fit(c.model, c.data, c.trainer, c.seed, rec, device=torch.device("cpu"))
    assert _skipped(rec) == [2.0, 4.0, 6.0]
    trained = c.model.state_dict()
    assert all(torch.equal(before[k], trained[k]) for k in before)


def test_a_usable_scale_skips_nothing_and_the_weights_move(fp16_on_cpu: None) -> None:
    c = case(RECALL, max_steps=6, log_every=3, device="cpu", precision="16")
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    rec = Recorder()
    fit(c.model, c.data, c.trainer, c.seed, rec, device=torch.device("cpu"))
    assert _skipped(rec) == [0.0, 0.0]
    assert any(not torch.equal(before[k], v) for k, v in c.model.state_dict().items())


def test_float32_and_bf16_runs_log_no_skipped_steps() -> None:
    rec = Recorder()
    c = case(RECALL, max_steps=2, log_every=1, device="cpu", precision="bf16")
    fit(c.model, c.data, c.trainer, c.seed, rec)
    assert _skipped(rec) == [] and rec.steps_of("train/loss") == [1, 2]

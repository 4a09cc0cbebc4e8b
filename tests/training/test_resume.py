"""Resumable training: a run stopped half-way and resumed from last.pt ends bit for bit where the
uninterrupted run ends (CPU), mid-epoch included; last.pt loads with weights_only=True."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnbench.errors import ConfigError
from attnbench.training.loop import FitResult, fit
from attnbench.training.state import resume_point
from tests.training.conftest import RECALL, Recorder, case

# 512 examples / batch 48 = 11 steps per epoch (the last one short), 3 epochs = 33 steps.
TRAINER = dict(epochs=3, batch_size=48, warmup_steps=4, log_every=1, schedule="warmup_cosine")


def _run(tmp: Path, sink: Recorder, resume: bool = False, **trainer: object) -> FitResult:
    c = case(RECALL, **(TRAINER | trainer))
    last = tmp / "last.pt"
    return fit(c.model, c.data, c.trainer, c.seed, sink, last_path=last,
               resume_from=last if resume else None)


def _same(a: FitResult, b: FitResult) -> None:
    assert a.best_state.keys() == b.best_state.keys()
    for name, tensor in a.best_state.items():
        assert torch.equal(tensor, b.best_state[name]), name
    assert (a.val, a.test, a.steps, a.best_step) == (b.val, b.test, b.steps, b.best_step)


@pytest.mark.parametrize(
    ("stop_at", "trainer"),
    [
        (17, dict(checkpoint_every=5)),  # stopped mid-epoch 2, resumed from step 15 (mid-epoch)
        (14, dict()),  # stopped in epoch 2, resumed from the end of epoch 1 (a validation)
        (16, dict(eval_every=7, checkpoint_every=3)),  # validations and checkpoints interleaved
    ],
    ids=["mid-epoch", "epoch-boundary", "eval-every"],
)
def test_interrupted_and_resumed_run_ends_bit_identical(
    tmp_path: Path, stop_at: int, trainer: dict
) -> None:
    whole_sink = Recorder()
    whole = _run(tmp_path / "whole", whole_sink, **trainer)
    assert whole.steps == 33

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", Recorder(fail_at=stop_at), **trainer)
    step, _ = resume_point(tmp_path / "cut" / "last.pt")
    assert 0 < step < stop_at
    resumed_sink = Recorder()
    resumed = _run(tmp_path / "cut", resumed_sink, resume=True, **trainer)

    _same(whole, resumed)
    # the final weights (best loaded) and the full logged history after the checkpoint agree
    after = [(s, m) for s, m in whole_sink.logged if s > step]
    assert resumed_sink.logged == after


def test_last_pt_loads_weights_only_and_holds_the_position(tmp_path: Path) -> None:
    _run(tmp_path, Recorder(), max_steps=6, checkpoint_every=4)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"model", "optimizer", "schedule", "scaler", "rng", "progress"} <= state.keys()
    assert {"torch", "numpy", "python"} <= state["rng"].keys()
    prog = state["progress"]
    assert (prog["step"], prog["epoch"], prog["position"]) == (6, 1, 6)
    assert prog["best_state"] and prog["best_val"]["loss"] > 0


def test_resuming_a_finished_run_only_tests(tmp_path: Path) -> None:
    first = _run(tmp_path, Recorder(), max_steps=5)
    again_sink = Recorder()
    again = _run(tmp_path, again_sink, resume=True, max_steps=5)
    _same(first, again)
    assert again_sink.logged == []  # nothing trained, nothing validated again
    assert again.stopped_by == "max_steps"


def test_resume_refuses_a_changed_trajectory(tmp_path: Path) -> None:
    _run(tmp_path, Recorder(), max_steps=4)
    with pytest.raises(ConfigError, match=r"cannot resume: .*trainer.lr=0.003"):
        _run(tmp_path, Recorder(), resume=True, max_steps=4, lr=1e-3)

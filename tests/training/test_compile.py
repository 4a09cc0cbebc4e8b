"""trainer.compile: torch.compile trains on the CPU too (slow: inductor compiles C++ first)."""

from __future__ import annotations

import pytest
import torch

from attnbench.training.loop import fit
from tests.training.conftest import Recorder, case


@pytest.mark.slow
def test_a_compiled_model_trains_a_few_steps_on_the_cpu(tmp_path) -> None:  # noqa: ANN001
    c = case(max_steps=4, batch_size=64, log_every=2, compile=True, device="cpu")
    eager = case(max_steps=4, batch_size=64, log_every=2, device="cpu")
    sink, eager_sink = Recorder(), Recorder()
    result = fit(c.model, c.data, c.trainer, c.seed, sink, last_path=tmp_path / "last.pt")
    fit(eager.model, eager.data, eager.trainer, eager.seed, eager_sink)
    assert result.steps == 4
    losses = [m["train/loss"] for _, m in sink.logged if "train/loss" in m]
    eager_losses = [m["train/loss"] for _, m in eager_sink.logged if "train/loss" in m]
    assert losses == pytest.approx(eager_losses, rel=1e-3)  # the same model, compiled
    # the plain module's names in every state (no "_orig_mod." prefix)
    assert set(result.best_state) == set(eager.model.state_dict())
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(state["model"]) == set(eager.model.state_dict())

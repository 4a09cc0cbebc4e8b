"""A run killed half-way continues under `run --resume` from the training state it left
(checkpoints/last.pt) and ends bit-identical, on CPU, to the same run left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnbench.store.sink import RunSink
from attnbench.training.checkpoint import load_checkpoint
from tests.conftest import all_runs, tracker_for

ARGS = ("attention=dot", "trainer.max_steps=12", "trainer.checkpoint_every=2",
        "trainer.eval_every=4", "trainer.log_every=1")


def _weights(runs_dir: Path, run_id: str, tmp: Path) -> dict:
    return load_checkpoint(tracker_for(runs_dir).download_artifact(run_id, "model/weights.pt", tmp))


def test_killed_run_continues_to_the_same_weights(
    cli, runs_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = RunSink.log_metrics

    def ctrl_c_at_step_7(self: RunSink, metrics: dict, step: int) -> None:
        if step >= 7 and "train/loss" in metrics:
            raise KeyboardInterrupt
        real(self, metrics, step)

    monkeypatch.setattr(RunSink, "log_metrics", ctrl_c_at_step_7)
    assert cli("run", *ARGS).exit_code == 130
    monkeypatch.setattr(RunSink, "log_metrics", real)
    (killed,) = all_runs(runs_dir)
    assert killed.status == "KILLED"

    result = cli("run", *ARGS, "--resume")
    assert result.exit_code == 0, result.output
    assert f"from run {killed.run_id}: step 6" in result.output
    resumed = next(r for r in all_runs(runs_dir) if r.status == "FINISHED")
    assert resumed.tags["attnbench.continues"] == killed.run_id

    alone_dir = tmp_path_factory.mktemp("alone") / "runs"
    assert cli("run", *ARGS, extra=[f"runs_dir={alone_dir}"]).exit_code == 0
    (alone,) = all_runs(alone_dir)
    a = _weights(runs_dir, resumed.run_id, tmp_path / "a")
    b = _weights(alone_dir, alone.run_id, tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("test/acc", "test/loss", "val/acc"):
        assert resumed.metrics[name] == alone.metrics[name], name

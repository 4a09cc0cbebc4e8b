"""A run killed half-way continues under `run --resume` as the same MLflow run: reopened, trained
on from the state it left (checkpoints/last.pt), FINISHED with one unbroken learning curve (no
step twice), and bit-identical on CPU to the same run left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnbench.store.sink import RunSink
from attnbench.training.checkpoint import load_checkpoint
from tests.conftest import all_runs, tracker_for

ARGS = ("attention=dot", "trainer.max_steps=12", "trainer.checkpoint_every=2",
        "trainer.eval_every=4", "trainer.log_every=1")
CURVES = ("train/loss", "val/acc", "val/loss", "epoch")


def _weights(runs_dir: Path, run_id: str, tmp: Path) -> dict:
    return load_checkpoint(tracker_for(runs_dir).download_artifact(run_id, "model/weights.pt", tmp))


def history(runs_dir: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    return tracker_for(runs_dir).metric_history(run_id, key)


def ctrl_c_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The run's metric sink raises KeyboardInterrupt (what Ctrl-C does) at train step `step`."""
    real = RunSink.log_metrics

    def interrupt(self: RunSink, metrics: dict, at: int) -> None:
        if at >= step and "train/loss" in metrics:
            monkeypatch.setattr(RunSink, "log_metrics", real)
            raise KeyboardInterrupt
        real(self, metrics, at)

    monkeypatch.setattr(RunSink, "log_metrics", interrupt)


def test_killed_run_continues_as_one_run_with_one_curve(
    cli, runs_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctrl_c_at(monkeypatch, 7)
    assert cli("run", *ARGS).exit_code == 130
    (killed,) = all_runs(runs_dir)
    assert killed.status == "KILLED"
    assert [s for s, _ in history(runs_dir, killed.run_id, "train/loss")] == list(range(1, 7))

    result = cli("run", *ARGS, "--resume")
    assert result.exit_code == 0, result.output
    assert f"continue {killed.name} (run {killed.run_id}) from step 6" in result.output
    (resumed,) = all_runs(runs_dir)  # the same run, not a second one
    assert (resumed.run_id, resumed.status) == (killed.run_id, "FINISHED")
    assert resumed.tags["attnbench.resumed_at"] == "6"
    assert "attnbench.error" not in resumed.tags
    tracker = tracker_for(runs_dir)
    assert {a.path for a in tracker.client.list_artifacts(resumed.run_id, "checkpoints")} == {
        "checkpoints/best.pt"}  # the spent last.pt is gone
    assert len(tracker.client.get_run(resumed.run_id).inputs.dataset_inputs) == 1

    alone_dir = tmp_path_factory.mktemp("alone") / "runs"
    assert cli("run", *ARGS, extra=[f"runs_dir={alone_dir}"]).exit_code == 0
    (alone,) = all_runs(alone_dir)
    for key in CURVES:  # the whole curve, each step once, the values of a run never stopped
        assert history(runs_dir, resumed.run_id, key) == history(alone_dir, alone.run_id, key), key
    assert [s for s, _ in history(runs_dir, resumed.run_id, "train/loss")] == list(range(1, 13))
    a = _weights(runs_dir, resumed.run_id, tmp_path / "a")
    b = _weights(alone_dir, alone.run_id, tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("test/acc", "test/loss", "val/acc"):
        assert resumed.metrics[name] == alone.metrics[name], name

"""The Optuna preset (experiment=optuna_lr_width): Hydra's Optuna sweeper samples learning rate
and width for multi-head attention; every trial is a child run of one sweep."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import tracker_for
from tests.launchers.checks import check_sweep

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install 'attnbench[optuna]'")


def test_optuna_preset_two_trials_are_child_runs(cli, runs_dir: Path, tmp_path: Path) -> None:
    result = cli("sweep", "experiment=optuna_lr_width", "hydra.sweeper.n_trials=2")
    assert result.exit_code == 0, result.output
    tracker = tracker_for(runs_dir)
    trials = check_sweep(tracker, ["multihead", "multihead"], tmp_path / "dl")
    assert {tracker.client.get_experiment(r.experiment_id).name for r in trials} == {
        "optuna_lr_width"
    }
    for run in trials:
        lr = float(run.params["trainer.lr"])
        assert 1e-4 <= lr <= 1e-2 and not math.isclose(lr, 3e-3)  # sampled, not the default
        assert run.params["backbone.d_model"] in {"32", "64", "128"}
    assert "Best value" in result.output or "2 jobs" in result.output


def test_objective_is_validation_metric_and_worst_when_failed() -> None:
    from attnbench.run.app import objective
    from attnbench.store.names import RunResult

    done = RunResult("x", "FINISHED", "id", {"val/acc": 0.75, "test/acc": 0.5}, primary="val/acc")
    assert objective(done) == 0.75
    failed = RunResult("x", "FAILED", error="NaN loss")
    assert objective(failed) == -math.inf
    assert objective(failed, "minimize") == math.inf

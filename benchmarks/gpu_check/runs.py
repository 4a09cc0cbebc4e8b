"""The kit's own MLflow store (under its work folder), read through attnbench's store handle,
and the `attnbench` command lines it runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnbench.store import names as rec


def attnbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "attnbench", *args]


def env(repo: Path) -> dict[str, str]:
    """The environment of the kit's commands: this checkout's attnbench first on the path."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo), path) if p)}


def job_runs(runs_dir: Path, experiment: str) -> list[Any]:
    """Every training run (not a sweep's parent) in `experiment`; [] if there is none yet."""
    if not (runs_dir / "mlflow.db").exists():
        return []
    from attnbench.store.tracker import Tracker

    tracker = Tracker(None, runs_dir)
    exp_id = tracker.find_experiment(experiment)
    if exp_id is None:
        return []
    return [r for r in tracker.search([exp_id]) if r.tags.get(rec.KIND_TAG) != rec.SWEEP_KIND]


def train_loss_history(runs_dir: Path, run_id: str) -> list[tuple[int, float]]:
    from attnbench.store.tracker import Tracker

    return Tracker(None, runs_dir).metric_history(run_id, rec.TRAIN_LOSS)


def cell(run: Any, keys: Sequence[str] = (rec.ATTENTION_TAG, rec.BACKBONE_TAG, rec.TASK_TAG,
                                          rec.PRECISION_TAG)) -> tuple[str, ...]:
    """A run's place in a grid, from its tags (identity is stored as tags, never parsed)."""
    return tuple(run.tags.get(k, "") for k in keys)


def primary(run: Any) -> str:
    """The run's primary test metric, e.g. test/acc."""
    return f"test/{run.tags.get(rec.PRIMARY_METRIC_TAG, 'acc')}"


def outcome(run: Any) -> str:
    """ok, or what stopped the run in one line."""
    if run.status == "FINISHED":
        return "ok"
    return f"{run.status}: {run.tags.get(rec.ERROR_TAG, '')}".strip().rstrip(":")


def duration_s(run: Any) -> float | None:
    return (run.end_time - run.start_time) / 1000 if run.end_time else None

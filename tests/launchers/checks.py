"""What every launcher must deliver for a sweep: one parent run, its jobs as named child runs in
the same store, each with its resolved config saved as an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def check_sweep(tracker: Any, attentions: list[str], dst: Path, seed: int = 0,
                backbone: str = "transformer", task: str = "assoc_recall") -> list[Any]:
    """Assert the store behind `tracker` holds exactly one finished sweep whose children are the
    `attentions` jobs; returns the child runs."""
    exps = tracker.client.search_experiments()
    runs = tracker.search([e.experiment_id for e in exps])
    parents = [r for r in runs if r.tags.get("attnbench.kind") == "sweep"]
    assert len(parents) == 1, f"sweep parents: {[(r.name, r.tags) for r in runs]}"
    parent = parents[0]
    assert parent.status == "FINISHED", f"parent run: {parent}"
    children = [r for r in runs if r.tags.get("mlflow.parentRunId") == parent.run_id]
    assert len(children) == len(runs) - 1, "every run of the store belongs to the sweep"
    # <attention>-<backbone>-<task>-s<seed>, then any other swept keys (e.g. Optuna's lr, width)
    expected = sorted(f"{a}-{backbone}-{task}-s{seed}" for a in attentions)
    names = sorted(r.name for r in children)
    bases = sorted(next((e for e in expected if n == e or n.startswith(e + "-")), n) for n in names)
    assert bases == expected, f"child runs {names}, expected {expected}"
    for run in children:
        assert run.status == "FINISHED", f"{run.name}: {run.tags.get('attnbench.error')}"
        assert run.experiment_id == parent.experiment_id
        assert "test/acc" in run.metrics and "val/acc" in run.metrics
        saved = tracker.download_artifact(run.run_id, "config/config.yaml", dst / run.run_id)
        config = yaml.safe_load(saved.read_text())
        assert config["attention"]["name"] == run.tags["attention"]
        assert config["trainer"]["max_steps"] == 3  # trainer=smoke reached the job
    return children

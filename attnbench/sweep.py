"""Sweeps as MLflow parent runs: a Hydra callback opens the parent before the jobs start and
closes it after the last one, then prints the end-of-sweep table.

Jobs find their parent through a small JSON file in Hydra's sweep folder, which every launcher
(joblib, submitit, Ray) shares with the jobs it starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from attnbench.experiment import SweepContext

CONTEXT_FILE = "attnbench_sweep.json"
MULTI_TASK_EXPERIMENT = "attnbench"
# The sweep this (launching) process has open: `app.launch` closes it as KILLED on Ctrl-C, when
# Hydra never calls `on_multirun_end`.
ACTIVE: dict[str, Any] = {}


def read_context(sweep_dir: str) -> SweepContext | None:
    path = Path(sweep_dir) / CONTEXT_FILE
    if not path.is_file():
        return None
    return SweepContext(**json.loads(path.read_text()))


@dataclass
class SweepSummary:
    parent_run_id: str
    experiment_name: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] not in ("FINISHED", "SKIPPED")]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "SKIPPED"]


# Keys every run name already shows.
NAMED = {"attention", "backbone", "task", "seed"}


def grid_keys(config: DictConfig) -> set[str]:
    """Keys a sweeper's own `params` vary (experiment presets, Optuna search spaces)."""
    params = config.hydra.sweeper.get("params") or {}
    return {str(k) for k in params}


def swept_keys(overrides: list[str]) -> set[str]:
    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


class SweepCallback(Callback):
    """Opens and closes the sweep's parent run (Hydra instantiates it from conf/config.yaml).

    Launchers pickle their callbacks to the workers: keep only plain values on `self`.
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from attnbench.tracking import Tracker, process_tags

        overrides = list(config.hydra.overrides.task)
        if config.experiment_name:
            exp_name = str(config.experiment_name)
        elif "task" in swept_keys(overrides) | grid_keys(config):
            exp_name = MULTI_TASK_EXPERIMENT
        else:
            exp_name = str(config.task.name)
        tracker = Tracker(config.tracking.uri, config.runs_dir)
        exp_id = tracker.experiment_id(exp_name)
        report_stale(tracker.mark_stale_runs([exp_id]))  # so --resume re-runs those cells
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        sweep_dir = Path(config.hydra.sweep.dir)
        self.parent_run_id = tracker.start_run(
            exp_id,
            f"sweep-{stamp}",
            {
                "attnbench.kind": "sweep",
                "attnbench.overrides": " ".join(overrides),
                "attnbench.sweep_dir": str(sweep_dir.resolve()),
                **process_tags(),
            },
        )
        ACTIVE.update(uri=config.tracking.uri, runs_dir=str(config.runs_dir),
                      parent_run_id=self.parent_run_id)
        tracker.log_text(self.parent_run_id, OmegaConf.to_yaml(OmegaConf.create(overrides)),
                         "config/overrides.yaml")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / CONTEXT_FILE).write_text(
            json.dumps({"parent_run_id": self.parent_run_id, "experiment_name": exp_name,
                        "swept": sorted((swept_keys(overrides) | grid_keys(config)) - NAMED)})
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from attnbench.app import STATE
        from attnbench.report import print_sweep_table, sweep_rows
        from attnbench.tracking import Tracker

        if self.parent_run_id is None:
            return
        ACTIVE.clear()
        from attnbench.app import read_results

        tracker = Tracker(config.tracking.uri, config.runs_dir)
        rows = sweep_rows(tracker, self.parent_run_id)
        logged = {r["run_id"] for r in rows}
        for result in read_results(config.hydra.sweep.dir):  # jobs that made no child run
            if result.run_id not in logged:
                attention, backbone, task, seed = result.name.split("-")[:4]
                rows.append({"run_id": result.run_id, "attention": attention, "backbone": backbone,
                             "task": task, "seed": seed.removeprefix("s"), "status": result.status,
                             "metric": "", "test": None, "val": None, "params": None,
                             "train_s": None, "error": result.error or ""})
        summary = SweepSummary(self.parent_run_id, "", rows)
        status = "FAILED" if summary.failed else "FINISHED"
        tracker.end_run(self.parent_run_id, status)
        print_sweep_table(summary)
        STATE.sweep = summary


def report_stale(run_ids: list[str]) -> None:
    if run_ids:
        from attnbench.console import console

        console.print(
            f"marked {len(run_ids)} stale RUNNING run(s) FAILED (their process is gone): "
            + ", ".join(r[:8] for r in run_ids),
            highlight=False,
        )


def interrupt_active_sweep(reason: str = "interrupted (Ctrl-C)") -> str | None:
    """Close the sweep this process has open as KILLED, with its still-RUNNING jobs.

    Called on Ctrl-C (Hydra then never reaches `on_multirun_end`); returns the parent run id.
    Jobs that already ended keep their status; the finished ones are not lost.
    """
    import time

    from attnbench.tracking import ERROR_TAG, PID_TAG, Tracker, process_alive

    if not ACTIVE:
        return None
    info = dict(ACTIVE)
    ACTIVE.clear()
    tracker = Tracker(info["uri"], info["runs_dir"])
    parent = info["parent_run_id"]
    deadline = time.monotonic() + 10  # a worker still alive is closing its own run: let it
    while time.monotonic() < deadline and any(
        r.status == "RUNNING" and process_alive(int(r.tags.get(PID_TAG, "0") or 0))
        for r in tracker.children(parent)
    ):
        time.sleep(0.2)
    for child in tracker.children(parent):
        if child.status == "RUNNING":  # e.g. a joblib worker stopped before it could close it
            tracker.set_tags(child.run_id, {ERROR_TAG: reason})
            tracker.keep_last_checkpoint(child)
            tracker.end_run(child.run_id, "KILLED")
    tracker.set_tags(parent, {ERROR_TAG: reason})
    tracker.end_run(parent, "KILLED")
    return parent

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
        return [r for r in self.rows if r["status"] != "FINISHED"]


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
        from attnbench.tracking import Tracker

        overrides = list(config.hydra.overrides.task)
        if config.experiment_name:
            exp_name = str(config.experiment_name)
        elif "task" in swept_keys(overrides):
            exp_name = MULTI_TASK_EXPERIMENT
        else:
            exp_name = str(config.task.name)
        tracker = Tracker(config.tracking.uri, config.runs_dir)
        exp_id = tracker.experiment_id(exp_name)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        sweep_dir = Path(config.hydra.sweep.dir)
        self.parent_run_id = tracker.start_run(
            exp_id,
            f"sweep-{stamp}",
            {
                "attnbench.kind": "sweep",
                "attnbench.overrides": " ".join(overrides),
                "attnbench.sweep_dir": str(sweep_dir.resolve()),
            },
        )
        tracker.log_text(
            self.parent_run_id, OmegaConf.to_yaml(OmegaConf.create(overrides)), "config/overrides.yaml"
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / CONTEXT_FILE).write_text(
            json.dumps({"parent_run_id": self.parent_run_id, "experiment_name": exp_name})
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from attnbench.app import STATE
        from attnbench.report import print_sweep_table, sweep_rows
        from attnbench.tracking import Tracker

        if self.parent_run_id is None:
            return
        tracker = Tracker(config.tracking.uri, config.runs_dir)
        rows = sweep_rows(tracker, self.parent_run_id)
        summary = SweepSummary(self.parent_run_id, "", rows)
        status = "FAILED" if summary.failed else "FINISHED"
        tracker.end_run(self.parent_run_id, status)
        print_sweep_table(summary)
        STATE.sweep = summary

"""Sweeps as MLflow parent runs: a Hydra callback opens the parent before the jobs start and
closes it after the last one, then prints the end-of-sweep table.

Jobs find their parent through a small JSON file in Hydra's sweep folder, which every launcher
(joblib, submitit, Ray) shares with the jobs it starts; each job leaves its `RunResult` there too
(`RESULT_FILE`), so the table also shows jobs that made no run. The launching process finds the
sweep it opened in the store (tagged with its pid): nothing is passed through module globals.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from attnbench.run.experiment import SweepContext
from attnbench.store import names as record
from attnbench.store.names import RunResult

CONTEXT_FILE = "attnbench_sweep.json"
RESULT_FILE = "attnbench_result.json"
MULTI_TASK_EXPERIMENT = "attnbench"
# Keys every run name already shows.
NAMED = {"attention", "backbone", "task", "seed"}
LABELS_ENV = "ATTNBENCH_SWEEP_LABELS"  # `launch` hands the callback `SweepLabels` (JSON) here
NAME = re.compile(record.SWEEP_NAME)
TAG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./ -]{0,249}")  # MLflow's tag key characters
MAX_TEXT = 5000  # characters of a tag value or note (MLflow keeps 8000)


@dataclass(frozen=True)
class SweepLabels:
    """`sweep --name NAME --tag k=v --note TEXT`: MLflow tags on the sweep's parent run and on
    its jobs' runs (`attnbench.sweep_name`, the user's own keys, `mlflow.note.content`, the
    description the MLflow UI shows); the parent is also named NAME, and `compare --sweep NAME`
    finds it (`store.run_ids`)."""

    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    note: str | None = None

    @classmethod
    def parse(cls, name: str | None, tags: list[str] | tuple[str, ...] = (),
              note: str | None = None) -> SweepLabels:
        """From the command line; ConfigError naming the first bad value and the rule."""
        from attnbench.errors import ConfigError

        if name is not None and not NAME.fullmatch(name):
            raise ConfigError(f"--name {name!r}: a sweep name is 1-64 letters, digits and "
                              "_ . + - (starting with a letter or digit)")
        found: dict[str, str] = {}
        for tag in tags:
            key, eq, value = tag.partition("=")
            if not eq or not TAG_KEY.fullmatch(key.strip()):
                raise ConfigError(f"--tag {tag!r}: give KEY=VALUE, the key of letters, digits "
                                  "and _ . / - or spaces (e.g. --tag project=glue)")
            key = key.strip()
            if key.startswith(("mlflow.", "attnbench.")) or key in record.IDENTITY_TAGS:
                raise ConfigError(f"--tag {tag!r}: '{key}' is a tag MLflow or attnbench sets "
                                  "itself; choose another key (e.g. --tag project=glue)")
            found[key] = value
        for what, text in (("--note", note), *((f"--tag {k}", v) for k, v in found.items())):
            if text is not None and len(text) > MAX_TEXT:
                raise ConfigError(f"{what}: {len(text)} characters, at most {MAX_TEXT}")
        return cls(name, found, note or None)

    def run_tags(self) -> dict[str, str]:
        """The tags the parent and every job's run get."""
        return {**self.tags, **({record.SWEEP_NAME_TAG: self.name} if self.name else {}),
                **({record.NOTE_TAG: self.note} if self.note else {})}

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> SweepLabels:
        text = os.environ.get(LABELS_ENV)
        return cls(**json.loads(text)) if text else cls()


def read_context(sweep_dir: str | Path) -> SweepContext | None:
    path = Path(sweep_dir) / CONTEXT_FILE
    if not path.is_file():
        return None
    return SweepContext(**json.loads(path.read_text()))


def write_result(job_dir: Path, result: RunResult) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / RESULT_FILE).write_text(json.dumps(asdict(result)))


def read_results(sweep_dir: str | Path) -> list[RunResult]:
    """Every job result written under a sweep folder, in job order."""
    found = sorted(Path(sweep_dir).glob(f"*/{RESULT_FILE}"),
                   key=lambda p: (len(p.parent.name), p.parent.name))
    return [RunResult(**json.loads(p.read_text())) for p in found]


def grid_keys(config: DictConfig) -> set[str]:
    """Keys a sweeper's own `params` vary (experiment presets, Optuna search spaces)."""
    params = config.hydra.sweeper.get("params") or {}
    return {str(k) for k in params}


def swept_keys(overrides: list[str]) -> set[str]:
    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def sweep_experiment(experiment_name: str | None, varied: set[str], task: str) -> str:
    """The experiment a sweep logs into: `experiment_name`, else one shared by every task when
    the sweep varies the task (`varied`: the keys its grid varies), else the task's own."""
    if experiment_name:
        return str(experiment_name)
    return MULTI_TASK_EXPERIMENT if "task" in varied else str(task)


class SweepCallback(Callback):
    """Opens and closes the sweep's parent run (Hydra instantiates it from conf/config.yaml).

    A tuned sweep (run.tune) runs Hydra once per stage and sets the callback's parameters:
    `stage` (tune | final) tags the jobs' runs, `parent` makes a later stage's jobs children of
    the sweep the first stage opened, `keep_open` leaves the parent open for the next stage.
    Launchers pickle their callbacks to the workers: keep only plain values on `self`.
    """

    def __init__(self, stage: str | None = None, parent: str | None = None,
                 keep_open: bool = False) -> None:
        self.parent_run_id: str | None = None
        self.stage, self.join, self.keep_open = stage, parent, bool(keep_open)
        self.continued = False  # `--resume` reopened the same grid's earlier parent run

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from attnbench.store.liveness import process_tags
        from attnbench.store.tracker import Tracker

        if "optuna" in str(config.hydra.sweeper.get("_target_", "")).lower():
            from attnbench.console import optuna_through_root

            optuna_through_root()  # its log follows Hydra's logging config (quiet unless -v)
        if self.join:
            self._join(config)
            return
        labels = SweepLabels.from_env()
        overrides = list(config.hydra.overrides.task)
        exp_name = sweep_experiment(config.experiment_name,
                                    swept_keys(overrides) | grid_keys(config), config.task.name)
        tracker = Tracker(config.tracking.uri, config.runs_dir)
        exp_id = tracker.experiment_id(exp_name)
        report_stale(tracker.mark_stale_runs([exp_id]))  # so --resume re-runs those cells
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        sweep_dir = Path(config.hydra.sweep.dir)
        varied = sorted(key.replace("/", ".") for key in swept_keys(overrides) | grid_keys(config))
        continued = _continued_parent(tracker, exp_id, overrides, sweep_dir, config)
        self.continued = continued is not None
        self.parent_run_id = continued or tracker.start_run(
            exp_id,
            labels.name or f"sweep-{stamp}",
            {
                **labels.run_tags(),
                record.KIND_TAG: record.SWEEP_KIND,
                record.OVERRIDES_TAG: " ".join(overrides),
                record.SWEEP_DIR_TAG: str(sweep_dir.resolve()),
                record.SWEEP_KEYS_TAG: json.dumps(varied),
                record.SWEEPER_TAG: str(config.hydra.sweeper.get("_target_", "")),
                **process_tags(),  # the launching process: it closes the sweep on Ctrl-C
            },
        )
        if not self.continued:
            tracker.log_text(self.parent_run_id, OmegaConf.to_yaml(OmegaConf.create(overrides)),
                             record.OVERRIDES_ARTIFACT)
        elif labels.run_tags():  # a resumed sweep given labels: the reopened parent gets them
            named = {record.RUN_NAME_TAG: labels.name} if labels.name else {}
            tracker.set_tags(self.parent_run_id, {**labels.run_tags(), **named})
        self._write_context(sweep_dir, exp_name,
                            sorted((swept_keys(overrides) | grid_keys(config)) - NAMED),
                            labels.run_tags())

    def _join(self, config: DictConfig) -> None:
        """A later stage of a tuned sweep: its jobs are children of the sweep `self.join`, in its
        experiment, named and tagged by the keys that sweep varies."""
        from attnbench.store.tracker import Tracker

        tracker = Tracker(config.tracking.uri, config.runs_dir)
        parent = tracker.get_run(self.join)
        varied = json.loads(parent.tags.get(record.SWEEP_KEYS_TAG) or "[]")
        exp_name = tracker.experiments().get(parent.experiment_id, parent.experiment_id)
        self.parent_run_id = parent.run_id
        self._write_context(Path(config.hydra.sweep.dir), exp_name,
                            sorted(set(varied) - NAMED), SweepLabels.from_env().run_tags())

    def _write_context(self, sweep_dir: Path, exp_name: str, swept: list[str],
                       tags: dict[str, str]) -> None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / CONTEXT_FILE).write_text(
            json.dumps({"parent_run_id": self.parent_run_id, "experiment_name": exp_name,
                        "swept": swept, "stage": self.stage, "tags": tags})
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from attnbench.store.tracker import Tracker

        if self.parent_run_id is None or self.keep_open:
            return
        tracker = Tracker(config.tracking.uri, config.runs_dir)
        finish_sweep(tracker, self.parent_run_id, [config.hydra.sweep.dir], self.continued)


def finish_sweep(tracker: Any, parent_run_id: str, sweep_dirs: list[str | Path],
                 continued: bool = False) -> None:
    """Close the sweep's parent run (FAILED if a job failed) and print the end-of-sweep table:
    its child runs, the runs it reused, and the jobs of `sweep_dirs` that made no run. A sweep
    `--resume` continued (`continued`) shows each cell once, as this session left it."""
    from attnbench.analysis.sweep_table import (
        SweepSummary,
        print_sweep_table,
        result_row,
        sweep_rows,
    )

    rows = sweep_rows(tracker, parent_run_id)
    results = [result for folder in sweep_dirs for result in read_results(folder)]
    if continued:
        from attnbench.run.resume import session_rows

        rows = session_rows(rows, results)
    logged = {r["run_id"] for r in rows}
    rows += [result_row(result) for result in results
             if result.run_id not in logged]  # jobs that made no child run
    summary = SweepSummary(parent_run_id, "", rows)
    tracker.end_run(parent_run_id, "FAILED" if summary.failed else "FINISHED")
    print_sweep_table(summary)


def _continued_parent(
    tracker: Any, exp_id: str, overrides: list[str], sweep_dir: Path, config: DictConfig
) -> str | None:
    """`sweep --resume`: the same grid's earlier parent run, reopened (`run.resume`), or None."""
    if not config.get("resume"):
        return None
    from attnbench.run.resume import sweep_to_continue
    from attnbench.store.liveness import process_tags

    session = {record.SWEEP_DIR_TAG: str(sweep_dir.resolve()), **process_tags()}
    return sweep_to_continue(tracker, exp_id, overrides, session)


def report_stale(run_ids: list[str]) -> None:
    if run_ids:
        from attnbench.console import console

        console.print(
            f"marked {len(run_ids)} stale RUNNING run(s) FAILED (their process is gone): "
            + ", ".join(r[:8] for r in run_ids),
            highlight=False,
        )


def sweeps_of_this_process(tracker: Any) -> list[Any]:
    """The sweep parent runs this process opened in the store, newest first."""
    experiments = list(tracker.experiments())
    if not experiments:
        return []
    return tracker.search(
        experiments,
        f"tags.`{record.KIND_TAG}` = '{record.SWEEP_KIND}' and "
        f"tags.`{record.PID_TAG}` = '{os.getpid()}'",
        order_by=["attributes.start_time DESC"],
    )


def interrupt_sweeps(tracker: Any, reason: str = "interrupted (Ctrl-C)",
                     status: str = "KILLED") -> str | None:
    """Close the sweep this process still has RUNNING as KILLED (or `status`), with its
    still-RUNNING jobs.

    Called on Ctrl-C (Hydra then never reaches `on_multirun_end`); returns the parent run id.
    Jobs that already ended keep their status; the finished ones are not lost.
    """
    from attnbench.store.liveness import process_alive

    running = [s for s in sweeps_of_this_process(tracker) if s.status == "RUNNING"]
    if not running:
        return None
    parent = running[0].run_id
    deadline = time.monotonic() + 10  # a worker still alive is closing its own run: let it
    while time.monotonic() < deadline and any(
        r.status == "RUNNING" and process_alive(int(r.tags.get(record.PID_TAG, "0") or 0))
        for r in tracker.children(parent)
    ):
        time.sleep(0.2)
    for child in tracker.children(parent):
        if child.status == "RUNNING":  # e.g. a joblib worker stopped before it could close it
            tracker.set_tags(child.run_id, {record.ERROR_TAG: reason})
            tracker.keep_last_checkpoint(child)
            tracker.end_run(child.run_id, "KILLED")
    tracker.set_tags(parent, {record.ERROR_TAG: reason})
    tracker.end_run(parent, status)
    return parent

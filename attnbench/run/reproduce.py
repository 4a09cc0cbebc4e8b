"""`attnbench reproduce RUN_ID`: re-run a run from its saved config and diff the final metrics.

The run's ``config/config.yaml`` artifact (the resolved config) goes straight to
``run_experiment``; Hydra does not compose it again, so later changes to conf/ cannot leak in. The
new run lands in the same experiment and store, tagged ``reproduces=RUN_ID``. Every final metric
(test/*, val/*, train/loss, attn/*, cost/params, ...) must match within ``tol`` (absolute);
timings and memory (cost/train_s, cost/epoch_s, cost/samples_per_s, cost/peak_mem_mb) are shown
but not compared. CPU runs are deterministic, so the default tolerance is 0.

Thread count can change floating-point sums, so the re-run uses the original's thread count
(tag ``attnbench.threads``) when ``trainer.threads`` was 0 (= cores / parallel jobs) and this
machine can give it.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnbench.errors import ConfigError
from attnbench.store import names as record

NOT_COMPARED = record.TIMING_METRICS


@dataclass
class MetricDiff:
    name: str
    original: float | None
    new: float | None
    compared: bool

    @property
    def diff(self) -> float | None:
        if self.original is None or self.new is None:
            return None
        return abs(self.new - self.original)

    def matches(self, tol: float) -> bool:
        if self.original is None or self.new is None:
            return False
        if math.isnan(self.original) and math.isnan(self.new):
            return True
        return self.original == self.new or (self.diff is not None and self.diff <= tol)


def diff_metrics(original: dict[str, float], new: dict[str, float]) -> list[MetricDiff]:
    """Every final metric of either run, compared ones first, in name order. Compared: the
    original's metrics except timings (a metric only the new run has, e.g. from a newer
    attnbench, is shown but not held against the reproduction)."""

    def compared(name: str) -> bool:
        return name in original and name not in NOT_COMPARED

    names = sorted(set(original) | set(new), key=lambda n: (not compared(n), n))
    return [MetricDiff(n, original.get(n), new.get(n), compared(n)) for n in names]


def saved_config(tracker: Any, run_id: str) -> tuple[dict[str, Any], list[str]]:
    """The resolved config and overrides a run saved as artifacts."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        try:
            cfg = yaml.safe_load(
                tracker.download_artifact(run_id, record.CONFIG_ARTIFACT, tmp).read_text()
            )
        except Exception as err:  # noqa: BLE001 - MlflowException / OSError: no such artifact
            raise ConfigError(
                f"Run {run_id} has no saved config (config/config.yaml): only runs made by "
                "attnbench run/sweep can be reproduced"
            ) from err
        try:
            path = tracker.download_artifact(run_id, record.OVERRIDES_ARTIFACT, tmp)
            overrides = list(yaml.safe_load(path.read_text()) or [])
        except Exception:  # noqa: BLE001 - overrides are informative only
            overrides = []
    if not isinstance(cfg, dict) or not {"attention", "backbone", "task", "trainer"} <= set(cfg):
        raise ConfigError(f"Run {run_id}'s config/config.yaml is not an attnbench config")
    return cfg, overrides


def parallel_jobs_for(threads: int) -> int | None:
    """The `parallel_jobs` that makes set_threads(0, parallel_jobs) pick `threads`, if any."""
    from attnbench.training.seeding import available_cores

    cores = available_cores()
    for jobs in range(1, cores + 1):
        if max(1, cores // jobs) == threads:
            return jobs
    return None


def reproduce(
    run_id: str,
    *,
    tol: float = 0.0,
    runs_dir: str | Path = "runs",
    tracking_uri: str | None = None,
) -> int:
    """Re-run `run_id`, print the side-by-side metrics; 0 when they match, 1 otherwise."""
    from attnbench.config.validate import validate
    from attnbench.console import console
    from attnbench.run.experiment import run_experiment
    from attnbench.store.queries import open_store

    tracker = open_store(runs_dir, tracking_uri)
    original = tracker.get_run(run_id)  # a unique prefix works; one line for an unknown id
    run_id = original.run_id
    if original.tags.get(record.KIND_TAG) == record.SWEEP_KIND:
        raise ConfigError(f"Run {run_id} is a sweep's parent run: reproduce one of its job runs")
    if original.status != "FINISHED":
        raise ConfigError(
            f"Run {run_id} is {original.status}: only FINISHED runs have final metrics to reproduce"
        )
    cfg, overrides = saved_config(tracker, run_id)
    cfg["runs_dir"] = str(tracker.runs_dir)
    cfg["tracking"] = {**(cfg.get("tracking") or {}), "uri": tracking_uri}
    cfg["experiment_name"] = tracker.experiments().get(
        original.experiment_id, cfg.get("experiment_name")
    )
    cfg["resume"] = False
    config = validate(cfg)
    notes = []
    jobs = 1
    threads = int(original.tags.get(record.THREADS_TAG, 0) or 0)
    if threads and not config.trainer.threads:
        found = parallel_jobs_for(threads)
        if found is None:
            notes.append(
                f"the original used {threads} torch threads, which this machine cannot give"
            )
        jobs = found or 1
    console.print(
        f"reproducing {original.name} ({run_id}) from its saved config",
        highlight=False, markup=False,
    )
    result = run_experiment(
        config,
        overrides=overrides,
        show_progress=True,
        parallel_jobs=jobs,
        tags={record.REPRODUCES_TAG: run_id, record.KIND_TAG: record.REPRODUCE_KIND},
    )
    new = tracker.get_run(str(result.run_id))
    for tag, what in (
        (record.VERSION_TAG, "package version"),
        (record.DATA_FINGERPRINT_TAG, "data fingerprint"),
    ):
        if original.tags.get(tag) != new.tags.get(tag):
            notes.append(f"{what} differs: {original.tags.get(tag)} -> {new.tags.get(tag)}")
    diffs = diff_metrics(original.metrics, new.metrics)
    compared = [d for d in diffs if d.compared]
    bad = [d for d in compared if not d.matches(tol)]
    console.print(diff_table(original.run_id, new.run_id, diffs, tol))
    for note in notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    exact = "identical" if tol == 0 else f"within {tol:g}"
    if bad:
        console.print(
            f"[bold red]MISMATCH[/]: {len(bad)} of {len(compared)} metrics differ "
            f"({', '.join(d.name for d in bad)}); new run {new.run_id}"
        )
        return 1
    console.print(
        f"[bold green]MATCH[/]: all {len(compared)} compared metrics {exact}; new run {new.run_id}"
    )
    return 0


def diff_table(original_id: str, new_id: str, diffs: list[MetricDiff], tol: float) -> Any:
    from rich.table import Table

    table = Table(
        title=f"final metrics: {original_id[:8]} (original) vs {new_id[:8]} (reproduced)",
        title_justify="left",
    )
    for col in ("metric", "original", "reproduced", "|diff|", "match"):
        table.add_column(col, justify="left" if col in ("metric", "match") else "right")
    for d in diffs:
        if not d.compared:
            why = "timing" if d.name in NOT_COMPARED else "not in the original"
            verdict = f"[dim]not compared ({why})[/]"
        elif d.matches(tol):
            verdict = "[green]yes[/]"
        else:
            verdict = "[bold red]NO[/]"
        table.add_row(d.name, _show(d.original), _show(d.new), _show(d.diff), verdict)
    return table


def _show(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"

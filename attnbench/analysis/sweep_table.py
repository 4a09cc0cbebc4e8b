"""The end-of-sweep table: one row per cell of a sweep, read back from the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from attnbench.store.handle import RunInfo, Tracker
from attnbench.store.queries import resumed_runs
from attnbench.store.schema import (
    BEST_VAL,
    COST_PARAMS,
    COST_TRAIN_S,
    ERROR_TAG,
    PRIMARY_METRIC_TAG,
    SEED_TAG,
    RunIdentity,
    RunResult,
    split_metric,
)


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


def sweep_rows(tracker: Tracker, parent_run_id: str) -> list[dict[str, Any]]:
    """One row per cell of a sweep: runs reused by `--resume` (status SKIPPED, `resumed`), then
    the sweep's child runs in start order."""
    parent = tracker.get_run(parent_run_id)
    reused = [
        run_row(r)
        | {"status": "SKIPPED", "resumed": True, "error": f"already finished (run {r.run_id[:8]})"}
        for r in resumed_runs(tracker, parent)
    ]
    return reused + [run_row(r) for r in tracker.children(parent)]


def run_row(run: RunInfo) -> dict[str, Any]:
    metric = run.tags.get(PRIMARY_METRIC_TAG, "acc")
    return identity_row(run.tags) | {
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "metric": metric,
        "test": run.metrics.get(split_metric("test", metric)),
        # the best-validation checkpoint's (val/* is the last validation): older runs lack it
        "val": run.metrics.get(split_metric(BEST_VAL, metric),
                               run.metrics.get(split_metric("val", metric))),
        "params": run.metrics.get(COST_PARAMS),
        "train_s": run.metrics.get(COST_TRAIN_S),
        "error": run.tags.get(ERROR_TAG, ""),
    }


def identity_row(tags: Mapping[str, str]) -> dict[str, Any]:
    """The identity columns of a row, read from a run's tags (never from its name)."""
    ident = RunIdentity.from_tags(tags)
    return {"attention": ident.attention, "backbone": ident.backbone, "task": ident.task,
            "seed": tags.get(SEED_TAG, "?"), "cell": ident.cell}


def result_row(result: RunResult) -> dict[str, Any]:
    """A row for a job that made no run of its own (invalid config, skipped cell)."""
    return identity_row(result.identity) | {
        "run_id": result.run_id, "name": result.name, "status": result.status, "metric": "",
        "test": None, "val": None, "params": None, "train_s": None, "error": result.error or "",
    }


def print_sweep_table(summary: SweepSummary) -> None:
    from attnbench.console import console, results_table

    rows = summary.rows
    metrics = {r["metric"] for r in rows if r["metric"]}
    m = metrics.pop() if len(metrics) == 1 else "primary"
    columns = [
        "attention",
        "backbone",
        "task",
        "seed",
        f"test/{m}",
        f"{BEST_VAL}/{m}",
        "params",
        "train s",
        "status",
    ]
    table_rows = [
        [
            r["attention"],
            r["backbone"],
            r["task"],
            r["seed"],
            r["test"],
            r["val"],
            r["params"],
            r["train_s"],
            r["status"] if r["status"] == "FINISHED" else f"{r['status']}: {r['error']}",
        ]
        for r in rows
    ]
    best: dict[int, int] = {}
    for col, key in ((4, "test"), (5, "val")):
        scored = [(r[key], i) for i, r in enumerate(rows) if r[key] is not None]
        if scored:
            best[col] = max(scored)[1]
    title = f"sweep {summary.parent_run_id[:8]}: {len(rows)} jobs, {len(summary.failed)} failed"
    resumed = [r for r in rows if r.get("resumed")]
    if resumed:
        title += f", skipped {len(resumed)} of {len(rows)} cells (already finished)"
    if len(summary.skipped) > len(resumed):
        title += f", {len(summary.skipped) - len(resumed)} skipped"
    cells = [r.get("cell", "") for r in rows]
    if any(cells):  # the sweep varies more than attention/backbone/task/seed: show what
        columns.insert(4, "cell")
        for row, cell in zip(table_rows, cells, strict=True):
            row.insert(4, cell)
        best = {col + (col >= 4): i for col, i in best.items()}
    console.print(results_table(title, columns, table_rows, best))

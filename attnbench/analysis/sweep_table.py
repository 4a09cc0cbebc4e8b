"""The end-of-sweep table: one row per cell of a sweep, read back from the store, under columns
declared once (`sweep_columns`) and fitted to the terminal (`layout`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from attnbench.analysis.columns import NAME, TEXT, Column, Table, metric_style, round_names
from attnbench.store.names import (
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
from attnbench.store.queries import resumed_runs
from attnbench.store.tracker import RunInfo, Tracker


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


def sweep_columns(rows: list[dict[str, Any]]) -> list[Column[dict[str, Any]]]:
    """The end-of-sweep table's columns, declared once: attention, backbone and task (those that
    differ between the rows: `shared` values go in the title), seed, the cell (what else the
    sweep varies), the test and best-validation primary metric (in the metric's number style,
    the best in bold), parameters, train seconds and the status (with a failed job's error,
    wrapped, never cut)."""
    metrics = {r["metric"] for r in rows if r["metric"]}
    cells = round_names([str(r.get("cell") or "") for r in rows])

    def score(split: str, key: str) -> Column[dict[str, Any]]:
        if len(metrics) == 1:
            name = split_metric(split, next(iter(metrics)))
            return Column(name, lambda r: r[key], metric_style(name), best="max")

        def mixed(row: dict[str, Any]) -> str:  # several tasks: each row in its own style
            return metric_style(split_metric(split, row["metric"] or "primary"))(row[key])

        return Column(split_metric(split, "primary"), lambda r: r, mixed)

    return [
        *(Column(k, lambda r, k=k: r[k], kind=NAME) for k in IDENTITY if k not in shared(rows)),
        Column("seed", lambda r: r["seed"]),
        *([Column("cell", lambda r: cells[str(r.get("cell") or "")], kind=NAME)]
          if any(r.get("cell") for r in rows) else []),
        score("test", "test"),
        score(BEST_VAL, "val"),
        Column("params", lambda r: r["params"], metric_style(COST_PARAMS)),
        Column("train s", lambda r: r["train_s"], metric_style(COST_TRAIN_S)),
        Column("status", lambda r: r["status"] if r["status"] == "FINISHED"
               else f"{r['status']}: {r['error']}", kind=TEXT),
    ]


IDENTITY = ("attention", "backbone", "task")


def shared(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The backbone and task every row of a sweep of several jobs shares (said in the title)."""
    if len(rows) < 2:
        return {}
    return {k: rows[0][k] for k in IDENTITY[1:] if len({r[k] for r in rows}) == 1}


def sweep_title(summary: SweepSummary) -> str:
    rows = summary.rows
    title = f"sweep {summary.parent_run_id[:8]}: {len(rows)} jobs, {len(summary.failed)} failed"
    resumed = [r for r in rows if r.get("resumed")]
    if resumed:
        title += f", skipped {len(resumed)} of {len(rows)} cells (already finished)"
    if len(summary.skipped) > len(resumed):
        title += f", {len(summary.skipped) - len(resumed)} skipped"
    common = shared(rows)
    return title + (f" ({', '.join(f'{k} {v}' for k, v in common.items())})" if common else "")


def print_sweep_table(summary: SweepSummary) -> None:
    from attnbench.analysis.layout import print_tables
    from attnbench.console import console

    print_tables([Table(sweep_title(summary), sweep_columns(summary.rows), summary.rows)], console)

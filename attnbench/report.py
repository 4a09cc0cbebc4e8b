"""Turning runs into tables: the end-of-sweep table (and `attnbench compare`)."""

from __future__ import annotations

from typing import Any

from attnbench.tracking import RunInfo, Tracker


def sweep_rows(tracker: Tracker, parent_run_id: str) -> list[dict[str, Any]]:
    """One row per child run of a sweep, in start order."""
    return [run_row(r) for r in tracker.children(parent_run_id)]


def run_row(run: RunInfo) -> dict[str, Any]:
    metric = run.tags.get("attnbench.primary_metric", "acc")
    return {
        "run_id": run.run_id,
        "attention": run.tags.get("attention", "?"),
        "backbone": run.tags.get("backbone", "?"),
        "task": run.tags.get("task", "?"),
        "seed": run.tags.get("seed", "?"),
        "status": run.status,
        "metric": metric,
        "test": run.metrics.get(f"test/{metric}"),
        "val": run.metrics.get(f"val/{metric}"),
        "params": run.metrics.get("cost/params"),
        "train_s": run.metrics.get("cost/train_s"),
        "error": run.tags.get("attnbench.error", ""),
    }


def print_sweep_table(summary: Any) -> None:
    from attnbench.console import console, results_table

    rows = summary.rows
    metrics = {r["metric"] for r in rows}
    m = metrics.pop() if len(metrics) == 1 else "primary"
    columns = ["attention", "backbone", "task", "seed", f"test/{m}", f"val/{m}", "params", "train s", "status"]
    table_rows = [
        [r["attention"], r["backbone"], r["task"], r["seed"], r["test"], r["val"], r["params"],
         r["train_s"], r["status"] if r["status"] == "FINISHED" else f"{r['status']}: {r['error']}"]
        for r in rows
    ]
    best: dict[int, int] = {}
    for col, key in ((4, "test"), (5, "val")):
        scored = [(r[key], i) for i, r in enumerate(rows) if r[key] is not None]
        if scored:
            best[col] = max(scored)[1]
    title = f"sweep {summary.parent_run_id[:8]}: {len(rows)} jobs, {len(summary.failed)} failed"
    console.print(results_table(title, columns, table_rows, best))

"""`attnbench runs` (alias `sweeps`): the recent sweeps of a store, newest first — id, name,
experiment, jobs by status, status, start — each with the command that compares it. Reads only
(`store.queries.recent_sweeps`), on the local store or a tracking server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug, RunsDir, TrackingUri

SHORT_ID = 8  # as attnbench prints run ids; any unique prefix of 6+ characters is taken back
COMPARE_FROM = 100  # terminal columns from which each row shows its compare command


def jobs_cell(statuses: dict[str, int]) -> str:
    """'12' when every job finished, else the total with the others counted: '12 (1 failed,
    2 running)' (KILLED counts as failed)."""
    total = sum(statuses.values())
    failed = statuses.get("FAILED", 0) + statuses.get("KILLED", 0)
    parts = [f"{count} {label}" for count, label in ((failed, "failed"),
                                                      (statuses.get("RUNNING", 0), "running"),
                                                      (statuses.get("SCHEDULED", 0), "scheduled"))
             if count]
    return f"{total} ({', '.join(parts)})" if parts else str(total)


def sweeps_table(listing: list[Any], width: int = 100) -> Any:
    """The rich table of `store.queries.SweepListing`s; narrower than `COMPARE_FROM` columns,
    the compare command is said once below the table instead of on every row."""
    from datetime import datetime

    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    wide = width >= COMPARE_FROM
    if not wide:
        table.caption = "compare one: attnbench compare --sweep SWEEP"
        table.caption_justify = "left"
    table.add_column("sweep", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=4)
    table.add_column("experiment", overflow="fold", min_width=6)
    table.add_column("jobs", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    if wide:
        table.add_column("compare with", no_wrap=True)
    for sweep in listing:
        short = sweep.parent.run_id[:SHORT_ID]
        started = datetime.fromtimestamp(sweep.parent.start_time / 1000).strftime("%Y-%m-%d %H:%M")
        table.add_row(short, sweep.name or "-", sweep.experiment, jobs_cell(sweep.statuses),
                      sweep.parent.status, started,
                      *([f"attnbench compare --sweep {short}"] if wide else []))
    return table


def list_sweeps(runs_dir: Path, tracking_uri: str | None, limit: int, experiment: str | None
                ) -> int:
    from attnbench.console import console
    from attnbench.errors import ConfigError
    from attnbench.store.queries import open_store, recent_sweeps

    if limit < 1:
        raise ConfigError(f"--limit {limit}: give a number of sweeps >= 1")
    listing = recent_sweeps(open_store(runs_dir, tracking_uri), limit, experiment)
    if not listing:
        console.print("No sweep in the store yet: attnbench sweep attention=dot,scaled "
                      "trainer=smoke", highlight=False, markup=False)
        return 0
    console.print(sweeps_table(listing, console.width))
    return 0


def runs(
    limit: int = typer.Option(20, "--limit", "-n", help="How many sweeps to list, newest first."),
    experiment: str = typer.Option(
        None, "--experiment", "-e", help="Only the sweeps of this MLflow experiment."
    ),
    runs_dir: RunsDir = Path("runs"),
    tracking_uri: TrackingUri = None,
    debug: Debug = False,
) -> None:
    """List the recent sweeps: id, name (sweep --name), experiment, jobs, status, start, and
    the command that compares each.

    Example: attnbench runs -n 5
    """
    exit_with(lambda: list_sweeps(runs_dir, tracking_uri, limit, experiment), debug)

"""`attnbench evaluate RUN_ID [task.KEY=VALUE ...]`: score a run's model again, on its own test
split or on another file (the work is in `attnbench.run.evaluate`)."""

from __future__ import annotations

from pathlib import Path

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug, RunsDir, TrackingUri

OVERRIDES = typer.Argument(
    None, metavar="[task.KEY=VALUE]...",
    help="Another test file and its columns, e.g. task.test_path=dev.tsv.", show_default=False,
)


def evaluate(
    run_id: str = typer.Argument(
        ..., metavar="RUN_ID", help="The run's id, or a unique prefix of 6+ characters of it."
    ),
    overrides: list[str] | None = OVERRIDES,
    runs_dir: RunsDir = Path("runs"),
    tracking_uri: TrackingUri = None,
    debug: Debug = False,
) -> None:
    """Score RUN_ID's best weights on its test split, or on task.test_path=FILE.

    The result is logged as a child run of RUN_ID. Needs neither the training file nor pickle.
    """
    from attnbench.run.evaluate import evaluate_run

    def go() -> int:
        evaluate_run(run_id, overrides or [], runs_dir=runs_dir, tracking_uri=tracking_uri)
        return 0

    exit_with(go, debug)

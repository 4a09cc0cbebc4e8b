"""`attnbench reproduce RUN_ID`: re-run a run from its saved config and diff the final metrics
(the work is in `attnbench.run.reproduce`)."""

from __future__ import annotations

from pathlib import Path

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug, RunsDir, TrackingUri


def _tolerance(value: float) -> float:
    """--tol is a finite number >= 0 (nan would match nothing, inf everything, silently)."""
    import math

    if not math.isfinite(value) or value < 0:
        raise typer.BadParameter(f"{value!r} is not a finite number >= 0 (e.g. --tol 1e-6)")
    return value


def reproduce(
    run_id: str = typer.Argument(
        ..., metavar="RUN_ID", help="The run's id, or a unique prefix of 6+ characters of it."
    ),
    tol: float = typer.Option(
        0.0, "--tol", callback=_tolerance,
        help="Largest absolute difference still counted as a match (a finite number >= 0)."
    ),
    runs_dir: RunsDir = Path("runs"),
    tracking_uri: TrackingUri = None,
    debug: Debug = False,
) -> None:
    """Re-run RUN_ID from its saved config as a new run tagged reproduces=RUN_ID.

    Exits 0 when the final metrics match (identical on CPU; --tol for looser checks), 1 otherwise.
    """
    from attnbench.run.reproduce import reproduce as run_reproduce

    exit_with(
        lambda: run_reproduce(run_id, tol=tol, runs_dir=runs_dir, tracking_uri=tracking_uri),
        debug,
    )

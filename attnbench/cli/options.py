"""The options several commands share, declared once in Typer's `Annotated` style.

A command takes them as ``runs_dir: RunsDir = Path("runs")``, ``tracking_uri: TrackingUri =
None``, ``debug: Debug = False``, ``verbose: Verbose = False``: the name, the flags and the help
live here, the default in the signature (as Typer's docs recommend). Nothing heavy is imported
(`attnbench --help` stays instant).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunsDir = Annotated[
    Path,
    typer.Option("--runs-dir", help="The runs folder of the local store (mlflow.db, artifacts/)."),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="An MLflow tracking URI (http://HOST:5000, postgresql://...) instead of the local "
        "store.",
        show_default=False,
    ),
]
Debug = Annotated[
    bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
]
Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v",
        help="Also show the log lines of Hydra and the libraries (MLflow, Optuna, the UI "
        "server); a job's log file keeps them either way.",
    ),
]

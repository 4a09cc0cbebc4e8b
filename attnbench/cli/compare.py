"""`attnbench compare`: mean ± CI per group over seeds, paired tests against the best, cost
columns, plots (all the work is in `attnbench.analysis.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug, RunsDir, TrackingUri

FORMAT_HELP = (
    "table (the terminal's, default), markdown, csv, json or latex (booktabs); -o FILE infers it "
    "from the suffix (.md, .csv, .json, .tex)."
)
OUTPUT = typer.Option(None, "--output", "-o", help="Also write the table to this file.")
FILTER = Annotated[list[str] | None, typer.Option(
    "--filter",
    help="Compare only the runs with key=value (keys as --by takes them: a tag or a config "
    "param). Repeat it or join with commas; a bare value after a comma is another value of "
    "the key before: --filter backbone=rnn --filter attention=dot,scaled.",
)]


def compare(
    experiment: str = typer.Option(
        None, "--experiment", "-e", help="Compare every FINISHED run of this MLflow experiment."
    ),
    sweep: str = typer.Option(
        None, "--sweep", help="Compare the runs of this sweep (its parent run id)."
    ),
    by: str = typer.Option(
        None,
        "--by",
        help="Comma-separated config keys to group by (tags or params), exactly these. Default: "
        "the keys the sweep varied (less the seed); for --experiment, attention plus backbone "
        "and task when they differ between the runs.",
    ),
    metric: str = typer.Option(
        None, "--metric", "-m", help="Metric to compare (default: test/<primary metric>)."
    ),
    fmt: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    output: Path = OUTPUT,
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the three plots."),
    correction: str = typer.Option(
        "none", "--correction",
        help="Multiple-comparison correction of the p-values vs the best: none or holm.",
    ),
    baseline: str = typer.Option(
        None,
        "--baseline",
        help="Test every group against this one instead of the best: key=value pairs of the "
        "--by keys, e.g. attention=none or attention=none,backbone=rnn.",
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Refuse (exit 2) when a group pools runs that differ in a config key other than "
        "the seed.",
    ),
    margin: float = typer.Option(
        None,
        "--margin",
        help="Equivalence margin in the metric's units: a group is tied with the reference only "
        "when the 95 % CI of their difference lies within ± margin, else inconclusive. Default: "
        "2 % of the metric's range (0.02 for accuracy, 2 for BLEU).",
    ),
    reruns: bool = typer.Option(
        False,
        "--reruns",
        help="Also list the evaluate / reproduce runs, which are never counted as seeds.",
    ),
    across: str = typer.Option(
        None,
        "--across",
        help="Summarise across this key's values (e.g. task): a variant x task table, average "
        "ranks, Friedman test, Nemenyi post-hoc, critical-difference diagram.",
    ),
    filters: FILTER = None,
    wide: bool = typer.Option(
        False,
        "--wide",
        help="One terminal table with every column (std, min, max, test, cost) instead of the "
        "answer and a cost table below it.",
    ),
    runs_dir: RunsDir = Path("runs"),
    tracking_uri: TrackingUri = None,
    debug: Debug = False,
) -> None:
    """Compare attention variants (default: the latest sweep) with statistics over seeds.

    Example: attnbench compare -e reverse --by attention,backbone --metric test/exact_match

    Across tasks: attnbench compare --across task
    """
    from attnbench.analysis.compare import compare as run_compare

    exit_with(
        lambda: run_compare(
            experiment=experiment,
            sweep=sweep,
            by=by.split(",") if by else None,
            metric=metric,
            fmt=fmt,
            output=output,
            plots=plots,
            runs_dir=runs_dir,
            tracking_uri=tracking_uri,
            correction=correction,
            baseline=baseline,
            strict=strict,
            margin=margin,
            reruns=reruns,
            across=across,
            filters=filters or (),
            wide=wide,
        ),
        debug,
    )

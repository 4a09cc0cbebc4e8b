"""`attnbench run` and `attnbench sweep`: arguments go to Hydra (overrides, --cfg, --info, ...)."""

from __future__ import annotations

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug, Verbose

HYDRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _complete(incomplete: str) -> list[str]:
    from attnbench.config.completion import complete_override

    return complete_override(incomplete)


OVERRIDES = typer.Argument(
    None, help="Hydra overrides (key=value) and Hydra flags.", autocompletion=_complete,
    show_default=False,
)


RESUME = typer.Option(
    False, "--resume",
    help="Skip a config that already has a FINISHED run; continue an interrupted one from its "
    "last checkpoint.",
)


def run(ctx: typer.Context, overrides: list[str] | None = OVERRIDES, resume: bool = RESUME,
        verbose: Verbose = False, debug: Debug = False) -> None:
    """Train one experiment.

    Arguments are Hydra overrides, e.g. attention=additive trainer.lr=1e-3.

    Hydra's own flags work too: --cfg job prints the composed config, --info shows the search path.
    """
    from attnbench.run.launch import launch

    args = [*(overrides or []), *ctx.args, *(["resume=true"] if resume else [])]
    exit_with(lambda: launch(args, multirun=False, debug=debug, verbose=verbose), debug)


TUNE = typer.Option(
    None, "--tune", metavar="KEY=V1,V2,...",
    help="Tune KEY per group on validation first (repeatable), e.g. --tune trainer.lr=1e-3,3e-3: "
    "every value on the tuning seed(s), then each group's best on every seed.",
    show_default=False,
)
TUNE_SEEDS = typer.Option(
    None, "--tune-seeds", metavar="S1,S2,...",
    help="Seeds the tuning stage trains (default: the sweep's first seed).", show_default=False,
)
NAME = typer.Option(
    None, "--name", metavar="NAME",
    help="Name the sweep (its parent run; tagged on its jobs too): attnbench compare --sweep "
    "NAME finds it.", show_default=False,
)
TAG = typer.Option(
    None, "--tag", metavar="KEY=VALUE",
    help="An MLflow tag on the sweep and its jobs' runs (repeatable), e.g. --tag project=glue.",
    show_default=False,
)
NOTE = typer.Option(
    None, "--note", metavar="TEXT",
    help="A description of the sweep (MLflow's note: shown in the UI on the sweep and its jobs).",
    show_default=False,
)
DRY_RUN = typer.Option(
    False, "--dry-run",
    help="Check the command line and print the jobs it would launch (with --resume: the cells "
    "it would skip); train nothing, write nothing.",
)


def sweep(
    ctx: typer.Context,
    overrides: list[str] | None = OVERRIDES,
    resume: bool = RESUME,
    tune: list[str] | None = TUNE,
    tune_seeds: str | None = TUNE_SEEDS,
    name: str | None = NAME,
    tag: list[str] | None = TAG,
    note: str | None = NOTE,
    dry_run: bool = DRY_RUN,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Run a grid of experiments (Hydra multirun).

    Example: attention=none,dot,scaled,additive,multihead seed=0,1,2

    Tuned: add --tune trainer.lr=1e-3,3e-3,1e-2 (each variant at its best lr on validation).

    Launchers: hydra/launcher=joblib hydra.launcher.n_jobs=2 (local), submitit_slurm, ray.

    Find it later: --name NAME --tag KEY=VALUE --note TEXT, then attnbench runs.
    """
    from attnbench.run.launch import launch
    from attnbench.run.sweep import SweepLabels

    args = [*(overrides or []), *ctx.args, *(["resume=true"] if resume else [])]
    exit_with(lambda: launch(args, multirun=True, debug=debug, tune=tune or (),
                             tune_seeds=tune_seeds, verbose=verbose, dry_run=dry_run,
                             labels=SweepLabels.parse(name, tag or (), note)), debug)

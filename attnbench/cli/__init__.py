"""The `attnbench` command line: one file per command, each a thin wrapper over a plain function.

Heavy imports (torch, mlflow, hydra) happen inside command bodies so `attnbench --help` is instant.
"""

from __future__ import annotations

import typer

from attnbench.cli import (
    bench,
    compare,
    completion,
    evaluate,
    listing,
    reproduce,
    runs,
    train,
    ui,
)
from attnbench.cli._errors import OneLineUsageErrors

completion.answer_requests()

app = typer.Typer(
    name="attnbench",
    cls=OneLineUsageErrors,
    help="Which attention mechanism works best, at what cost, on this task?",
    no_args_is_help=True,
    add_completion=False,  # attnbench's own --install-completion (cli/completion.py)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich help rendering alone costs ~0.1 s of start-up
)

def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from attnbench import __version__

        def of(dist: str) -> str:
            try:
                return version(dist)
            except PackageNotFoundError:
                return "not installed"

        deps = ", ".join(f"{d} {of(d)}" for d in ("torch", "hydra-core", "mlflow"))
        typer.echo(f"attnbench {__version__} ({deps})")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version of attnbench and its engines."),
    install_completion: bool = completion.INSTALL,
    show_completion: bool = completion.SHOW,
) -> None:
    """Which attention mechanism works best, at what cost, on this task?"""
    if install_completion or show_completion:  # answered before parsing when given first
        raise typer.BadParameter("give it first: attnbench --install-completion [bash|zsh|fish]")


app.command("list")(listing.list_components)
app.command("run", context_settings=train.HYDRA_ARGS)(train.run)
app.command("sweep", context_settings=train.HYDRA_ARGS)(train.sweep)
app.command("compare")(compare.compare)
app.command("runs")(runs.runs)
app.command("sweeps", hidden=True)(runs.runs)  # the same list under the other name people try
app.command("reproduce")(reproduce.reproduce)
app.command("evaluate")(evaluate.evaluate)
app.command("ui")(ui.ui)
app.command("bench", context_settings=bench.HYDRA_ARGS)(bench.bench)

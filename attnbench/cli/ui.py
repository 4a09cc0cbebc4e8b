"""`attnbench ui`: the MLflow UI on the configured store, bound to 127.0.0.1 unless --host says.

The UI is MLflow's own server (`mlflow server`, started through attnbench.store.server): runs appear
under their experiments, sweep jobs nested under their parent run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from attnbench.cli._errors import exit_with

ALL_INTERFACES = ("0.0.0.0", "::", "[::]")
RUNS_DIR = typer.Option(
    Path("runs"), "--runs-dir", help="The runs folder holding the local store (mlflow.db)."
)


@dataclass
class UiPlan:
    """What `attnbench ui` will start (or, for a store that is already a server, just show)."""

    url: str
    command: list[str] | None  # None: the store is an MLflow server with its own UI
    warnings: list[str]


def ui_plan(
    runs_dir: str | Path = "runs",
    tracking_uri: str | None = None,
    host: str = "127.0.0.1",
    port: int = 5000,
    allowed_hosts: str | None = None,
) -> UiPlan:
    """The server command for a store; a one-line error for a store or port that cannot be used."""
    from attnbench.config.validate import check_uri
    from attnbench.errors import ConfigError, TrackingError
    from attnbench.store.server import bind_problem, local_store_uri, server_command

    warnings: list[str] = []
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return UiPlan(tracking_uri.rstrip("/"), None, warnings)
    if tracking_uri:
        problems = check_uri(tracking_uri)
        if problems:
            raise ConfigError(problems[0], problems)
    runs = Path(runs_dir).resolve()
    if tracking_uri is None:
        db = runs / "mlflow.db"
        if not db.is_file():
            raise TrackingError(
                f"No attnbench store at {db}: train something first (attnbench run ...) "
                "or point --runs-dir at a runs folder"
            )
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is out of range: must be in 1..65535")
    problem = bind_problem(host.strip("[]"), port)
    if problem:
        raise ConfigError(problem)
    if host in ALL_INTERFACES:
        warnings.append(
            f"--host {host} exposes the UI (and the write API, with no login) to every machine "
            "that can reach this one; prefer 127.0.0.1 and an SSH tunnel"
        )
    command = server_command(
        tracking_uri or local_store_uri(runs),
        runs / "artifacts",
        host=host.strip("[]"),
        port=port,
        workers=1,
        allowed_hosts=allowed_hosts,
    )
    shown = "127.0.0.1" if host in ALL_INTERFACES else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return UiPlan(f"http://{shown}:{port}", command, warnings)


def start_ui(plan: UiPlan) -> int:
    """Start the planned server in the foreground until Ctrl-C; returns its exit code."""
    from rich.markup import escape

    from attnbench.console import console, err_console
    from attnbench.store.server import serve

    for warning in plan.warnings:
        err_console.print(
            f"[bold yellow]warning:[/] {escape(warning)}", markup=True, highlight=False
        )
    if plan.command is None:
        console.print(
            f"The store is an MLflow server; its UI is at {plan.url}", highlight=False, markup=False
        )
        return 0

    def ready() -> None:
        console.print(f"MLflow UI: {plan.url}  (Ctrl-C to stop)", highlight=False, markup=False)
        console.print(
            f"Training runs: {plan.url}/#/experiments?workflowType=machine_learning "
            "(open an experiment; expand a sweep's parent run with its + button)",
            highlight=False,
        )

    return serve(plan.command, plan.url, on_ready=ready)


def ui(
    port: int = typer.Option(5000, "--port", help="Port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the UI to the network."
    ),
    runs_dir: Path = RUNS_DIR,
    tracking_uri: str = typer.Option(
        None, "--tracking-uri",
        help="Another backend store (postgresql://...) instead of the local one; an http(s) URI "
        "is a server that already has its UI.",
    ),
    allowed_hosts: str = typer.Option(
        None, "--allowed-hosts",
        help="Host headers MLflow accepts (e.g. 'myhost.lab:5000') when serving beyond localhost.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
) -> None:
    """Start the MLflow UI on the local store (127.0.0.1:5000 by default) and print its URL.

    Runs appear under their experiments; a sweep's jobs are nested under its parent run.
    """
    exit_with(
        lambda: start_ui(ui_plan(runs_dir, tracking_uri, host, port, allowed_hosts)), debug
    )

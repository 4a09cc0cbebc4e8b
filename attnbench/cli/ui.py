"""`attnbench ui`: the MLflow UI on the configured store, bound to 127.0.0.1 unless --host says.

The UI is MLflow's own server (`mlflow server`, started through attnbench.store.server): runs appear
under their experiments, sweep jobs nested under their parent run. The URL it prints opens the
runs of the latest sweep's experiment (or `--experiment NAME`). A local store is checked first:
a missing, empty or broken one is refused in one line and left untouched, and one whose runs keep
artifacts outside its folder is refused naming them (`store.confine`), so the server never serves
a file from elsewhere. The server's request log is off unless `-v`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug, RunsDir, TrackingUri, Verbose

ALL_INTERFACES = ("0.0.0.0", "::", "[::]")
TRAINING_RUNS = "#/experiments?workflowType=machine_learning"  # MLflow's list, training view


@dataclass
class UiPlan:
    """What `attnbench ui` will start (or, for a store that is already a server, just show)."""

    url: str
    command: list[str] | None  # None: the store is an MLflow server with its own UI
    warnings: list[str]
    opens: str = ""  # the page the printed URL opens, e.g. "experiment 'reverse' (latest sweep)"
    base: str = ""  # the server's own URL (what /health is polled on)
    quiet: bool = True  # the server's own output hidden (`-v` shows it, request log included)


def ui_plan(
    runs_dir: str | Path = "runs",
    tracking_uri: str | None = None,
    host: str = "127.0.0.1",
    port: int = 5000,
    allowed_hosts: str | None = None,
    experiment: str | None = None,
    verbose: bool = False,
) -> UiPlan:
    """The server command for a store; a one-line error for a store or port that cannot be used."""
    from attnbench.config.validate import check_uri
    from attnbench.errors import ConfigError
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
        check_local_store(runs / "mlflow.db")
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
    page, opens = landing_page(runs, tracking_uri, experiment)
    command = server_command(
        tracking_uri or local_store_uri(runs),
        runs / "artifacts",
        host=host.strip("[]"),
        port=port,
        workers=1,
        allowed_hosts=allowed_hosts,
        quiet=not verbose,
    )
    shown = "127.0.0.1" if host in ALL_INTERFACES else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}"
    return UiPlan(f"{base}/{page}", command, warnings, opens, base, quiet=not verbose)


def check_local_store(db: Path) -> None:
    """A local store the UI can show: it exists, holds MLflow's tables at this MLflow's schema
    (what `run` checks), else one line naming the file and the fix. Nothing is written: MLflow's
    server would otherwise create or migrate the file in place."""
    from attnbench.errors import TrackingError
    from attnbench.store import sqlite_file

    if not db.is_file() and not db.is_symlink():
        raise TrackingError(
            f"No attnbench store at {db}: train something first (attnbench run ...) "
            "or point --runs-dir at a runs folder"
        )
    sqlite_file.check(db, None)  # a folder, not SQLite, half-migrated: without importing MLflow
    if sqlite_file.is_fresh(db):
        raise TrackingError(
            f"The MLflow store {db} is empty (no MLflow tables): train something first "
            "(attnbench run ...) or point --runs-dir at a runs folder"
        )
    sqlite_file.check(db, sqlite_file.schema_head())


def landing_page(runs: Path, tracking_uri: str | None, experiment: str | None
                 ) -> tuple[str, str]:
    """The UI page to open (a URL fragment) and what it shows: the runs of `experiment`, or of
    the latest sweep's experiment. Opening the store also refuses one whose runs keep their
    artifacts outside it, through a symbolic link included (`store.confine`)."""
    from attnbench.errors import ConfigError
    from attnbench.store.queries import latest_experiment
    from attnbench.store.tracker import Tracker

    tracker = Tracker(tracking_uri, runs)
    tracker.connect()
    if tracker.local:  # the server reads artifacts itself: no symbolic link out of the store
        from attnbench.store.confine import confine

        confine(runs / "mlflow.db", runs, follow_links=True)
    if experiment:
        exp_id = tracker.find_experiment(experiment)
        if exp_id is None:
            names = ", ".join(sorted(tracker.experiments().values())) or "none"
            raise ConfigError(f"Unknown experiment '{experiment}'. Experiments in the store: "
                              f"{names}")
        found: tuple[str, str] | None = (exp_id, experiment)
        why = ""
    else:
        found, why = latest_experiment(tracker), ", the latest sweep's"
    if found is None:
        return TRAINING_RUNS, "the training runs"
    return (f"#/experiments/{found[0]}/runs?workflowType=machine_learning",
            f"the runs of experiment '{found[1]}'{why}")


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
        console.print(f"  opens {plan.opens}; a sweep's jobs unfold under its parent run's + "
                      f"button; every experiment: {plan.base}/{TRAINING_RUNS}",
                      highlight=False, markup=False)
        console.file.flush()  # shown now, also in a pipe or a log file (block-buffered there)

    return serve(plan.command, plan.base or plan.url, on_ready=ready, quiet=plan.quiet)


def ui(
    port: int = typer.Option(5000, "--port", help="Port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the UI to the network."
    ),
    runs_dir: RunsDir = Path("runs"),
    tracking_uri: TrackingUri = None,
    allowed_hosts: str = typer.Option(
        None, "--allowed-hosts",
        help="Host headers MLflow accepts (e.g. 'myhost.lab:5000') when serving beyond localhost.",
    ),
    experiment: str = typer.Option(
        None, "--experiment", "-e",
        help="The experiment whose runs the URL opens (default: the latest sweep's).",
    ),
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Start the MLflow UI on the local store (127.0.0.1:5000 by default) and print its URL.

    The URL opens the runs of the latest sweep's experiment (or --experiment); a sweep's jobs are
    nested under its parent run. Ctrl-C, SIGTERM or closing the terminal stops the server.
    --tracking-uri http(s)://... is a server that already has its UI (its URL is printed);
    postgresql://... is served like the local store. -v shows the server's request log.
    """
    exit_with(lambda: start_ui(ui_plan(runs_dir, tracking_uri, host, port, allowed_hosts,
                                       experiment, verbose)), debug)

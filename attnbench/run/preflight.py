"""Pre-flight: compose every job a command line describes and validate it, before anything
trains, so a typo is one line naming the valid choices (and every problem of a sweep is in one
message). The result is the jobs' typed `RunConfig`s; Hydra then runs them.

What it validated and loaded is handed to the jobs Hydra runs in this process (`Prepared`): such
a job validates nothing again and loads no data again; it builds its model. A launcher's worker
process (joblib, submitit, Ray) receives none of it and does its one pass itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attnbench.config.compose import compose_reporting, hydra_compose, parse_hydra_args
from attnbench.config.grid import expand_overrides
from attnbench.config.guard import check_config, whence_finder
from attnbench.config.run_config import RunConfig
from attnbench.config.validate import Checked, check_uri, validate_and_load
from attnbench.errors import ConfigError, IncompatibleError
from attnbench.run.sources import (
    master_problems,
    option_problems,
    output_problems,
    preset_grid,
    source_problems,
    sources,
    typed_problems,
    unsampled_intervals,
)


class Prepared:
    """What the pre-flight proved for each job, found by the job's composed config (`take`): its
    typed config, and its data when it was loaded with the job's seed (a sweep loads each task's
    data once, with the first seed that needs it).

    It serves the jobs Hydra runs in this process. Pickled to a launcher's worker it arrives
    empty: the worker validates and loads for itself, and no job's data crosses with it.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Checked] = {}

    def add(self, plain: Mapping[str, Any], checked: Checked) -> None:
        self._jobs[_key(plain)] = checked

    def take(self, plain: Mapping[str, Any]) -> Checked | None:
        """The job's `Checked`, once (its data is then the job's to let go); None for a config
        the pre-flight did not see (a value an optimising sweeper samples, a remote worker's
        absolute folders)."""
        return self._jobs.pop(_key(plain), None)

    def __len__(self) -> int:
        return len(self._jobs)

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (Prepared, ())


def _key(plain: Mapping[str, Any]) -> str:
    """A composed config (its `hydra` node aside) as text: equal configs, equal keys."""
    return json.dumps({k: v for k, v in plain.items() if k != "hydra"}, sort_keys=True,
                      default=repr)


@dataclass
class Preflight:
    """The validated jobs of a command line, notes on the sweep cells it will skip, and what it
    proved for the jobs this process runs."""

    jobs: list[RunConfig] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prepared: Prepared = field(default_factory=Prepared)
    # The composed `hydra.launcher` and `hydra.sweeper` nodes (resolved; the first job's)
    launcher: dict[str, Any] = field(default_factory=dict)
    sweeper: dict[str, Any] = field(default_factory=dict)


class _Problems(list):
    """Problem lines in order, each once."""

    def add(self, lines: Sequence[str]) -> None:
        self.extend(p for p in lines if p not in self)


def check_overrides(args: Sequence[str], multirun: bool = False, *, create_store: bool = True
                    ) -> Preflight:
    """Compose and validate every job the overrides describe; raise ConfigError with all problems.

    In a sweep, cells whose backbone cannot run the task are skipped (returned as notes), unless
    every cell is such a cell. `create_store=False` (`sweep --dry-run`): a sweep's local store
    is checked without MLflow, so a missing one is not created.
    """
    jobs = precheck_overrides(args, multirun, master=multirun)
    hargs = parse_hydra_args(args)
    cli = list(hargs.overrides)
    if not multirun:
        jobs = [cli]  # a run's one config: the command line as typed (not re-serialised)
    problems = _Problems()
    out = Preflight()
    incompatible = 0
    servers: dict[str, str] = {}  # tracking server URI -> runs_dir, contacted once below
    local_stores: list[str] = []  # runs_dir of each local store, checked once below
    data_cache: dict[str, Any] = {}  # task node -> (seed, data): each task's data loaded once
    first_tree: dict[str, Any] = {}  # the first job's resolved config: Hydra's output folder
    with hydra_compose(**sources(hargs)) as compose:
        for job in jobs:
            cfg, compose_problems = compose_reporting(compose, job, hargs.config_name,
                                                      return_hydra_config=True)
            problems.add(compose_problems)
            if cfg is None:
                continue
            whence = whence_finder(hargs.config_name, job, cli, multirun,
                                   hargs.config_path is not None)
            found, resolved = check_config(cfg, typed=cli, multirun=multirun, whence=whence)
            first_tree = first_tree or resolved.tree
            plain = {k: v for k, v in resolved.tree.items() if k != "hydra"}
            found += [f"'{k}' needs a value: set it on the command line ({k}=...)"
                      for k in _missing(plain)]
            if found:
                problems.add(found)
                continue
            tracking = plain.get("tracking")
            uri = tracking.get("uri") if isinstance(tracking, dict) else None
            if isinstance(uri, str) and not check_uri(uri):
                servers.setdefault(uri, str(plain.get("runs_dir") or "runs"))
            runs_dir = plain.get("runs_dir")
            if uri is None and isinstance(runs_dir, str) and runs_dir not in local_stores:
                local_stores.append(runs_dir)
            try:
                checked = validate_and_load(plain, data_cache)
            except IncompatibleError as err:
                if not multirun:
                    problems.add(err.problems)
                elif err.one_line() not in out.notes:
                    out.notes.append(err.one_line())
                incompatible += 1
            except ConfigError as err:
                problems.add(err.problems)
            else:
                out.jobs.append(checked.cfg)
                out.prepared.add(plain, checked if checked.loaded.seed == checked.cfg.seed
                                 else Checked(checked.cfg, None))
    problems.add(_device_problems(out.jobs))
    problems.add(_unreachable(servers))
    if not problems:  # Hydra's folder, a broken local store: one line now, not inside Hydra
        problems.add(output_problems(first_tree, multirun))
    if not problems:
        problems.add(_unusable_stores(local_stores, full=multirun and create_store))
    if incompatible and incompatible == len(jobs):
        problems.add(out.notes)
    if problems:
        raise ConfigError(problems[0], list(problems))
    hydra_node = first_tree.get("hydra") if isinstance(first_tree.get("hydra"), dict) else {}
    out.launcher = dict(hydra_node.get("launcher") or {})
    out.sweeper = dict(hydra_node.get("sweeper") or {})
    return out


def precheck_overrides(args: Sequence[str], multirun: bool, *, master: bool = True
                       ) -> list[list[str]]:
    """The checks before any job is validated: Hydra's flags, the config sources, syntax,
    `_target_`, a sweep given to `run`, the grid's size, unknown or missing group options, then
    (`master`) `config.guard` on what Hydra's app itself composes: a sweep's master config, or
    the config --cfg/--info shows. Returns the jobs (override lists); raises ConfigError."""
    hargs = parse_hydra_args(args)
    cli = list(hargs.overrides)
    problems = source_problems(hargs) + typed_problems(args, cli, multirun)
    if multirun and not problems:
        problems += unsampled_intervals(cli)
    if problems:
        raise ConfigError(problems[0], problems)
    grid = [*preset_grid(cli, hargs), *cli] if multirun else cli
    jobs = expand_overrides(grid)
    if hargs.shows:
        one_job_to_show(args, jobs)
    problems = option_problems(hargs, jobs)
    if problems:
        raise ConfigError(problems[0], problems)
    if master or hargs.shows:
        problems = master_problems(hargs, multirun=multirun, shows=hargs.shows,
                                   resolve_values="--resolve" in args, grid=grid, checked=jobs)
    if problems:
        raise ConfigError(problems[0], problems)
    return jobs


def one_job_to_show(args: Sequence[str], jobs: Sequence[Sequence[str]]) -> None:
    """--cfg/--info show one job's config: a sweep of several jobs gets a one-line error."""
    shows_config = any(a.split("=")[0] in ("--cfg", "-c", "--info", "-i") for a in args)
    if shows_config and len(jobs) > 1:
        raise ConfigError(
            f"--cfg/--info show one job's config, and these overrides make {len(jobs)} jobs: "
            f"give each swept key one value to see that job, e.g. {' '.join(jobs[0])}"
        )


def _missing(node: Any, path: str = "") -> list[str]:
    """Keys of a resolved config whose value is Hydra's "???" (must be given)."""
    if isinstance(node, dict):
        return [k for key, value in node.items()
                for k in _missing(value, f"{path}.{key}" if path else str(key))]
    return [path] if node == "???" else []


def _unusable_stores(runs_dirs: Sequence[str], full: bool = False) -> list[str]:
    """A local store that exists but cannot be used (a folder, not SQLite, half-migrated): one
    line each. A run checks with sqlite3 alone (no MLflow import on the way to the first step;
    a schema behind MLflow's is reported when the job connects); a sweep connects, which also
    compares the schema with MLflow's and creates a missing store, as its parent run would next
    (a failure there would only be a Hydra callback warning)."""
    from attnbench.errors import TrackingError
    from attnbench.store.tracker import Tracker

    found = []
    for runs_dir in runs_dirs:
        try:
            tracker = Tracker(None, runs_dir)
            tracker.connect() if full else tracker.check_local()
        except TrackingError as err:
            found.append(err.one_line())
    return found


def _device_problems(jobs: list[RunConfig]) -> list[str]:
    """A device this machine does not have, or a precision it cannot run there: one line each,
    before anything trains (`training.device`)."""
    from attnbench.training.device import resolve

    found: list[str] = []
    for trainer in {job.trainer for job in jobs}:
        try:
            resolve(trainer)
        except ConfigError as err:
            found.extend(p for p in err.problems if p not in found)
    return found


def _unreachable(servers: dict[str, str]) -> list[str]:
    """Contact each tracking server once, before anything trains (fail fast)."""
    from attnbench.errors import TrackingError
    from attnbench.store.tracker import Tracker

    found = []
    for uri, runs_dir in servers.items():
        try:
            Tracker(uri, runs_dir).preflight()
        except TrackingError as err:
            found.append(err.one_line())
    return found

"""Pre-flight: compose every job a command line describes and validate it, before anything
trains, so a typo is one line naming the valid choices (and every problem of a sweep is in one
message). The result is the jobs' typed `RunConfig`s; Hydra then runs them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf, open_dict

from attnbench.config.compose import (
    HydraArgs,
    compose_multirun,
    compose_reporting,
    expand_overrides,
    hydra_compose,
    parse_hydra_args,
    primary_search_path,
    sweep_args,
)
from attnbench.config.groups import GROUPS, group_options
from attnbench.config.hooks import HOOK_KEYS, config_problems, searchpath_problems
from attnbench.config.schema import RunConfig
from attnbench.config.validate import check_uri, validate
from attnbench.errors import ConfigError, IncompatibleError

# Groups a run cannot do without (`experiment` is optional: null = no preset).
REQUIRED_GROUPS = ("attention", "backbone", "task", "trainer", "tracking")
# Configs an optimising sweeper's choices can bring in, composed for the object-hook check.
MAX_SWEEPER_CONFIGS = 32


@dataclass
class Preflight:
    """The validated jobs of a command line, and notes on the sweep cells it will skip."""

    jobs: list[RunConfig] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_overrides(args: Sequence[str], multirun: bool = False) -> Preflight:
    """Compose and validate every job the overrides describe; raise ConfigError with all problems.

    In a sweep, cells whose backbone cannot run the task are skipped (returned as notes), unless
    every cell is such a cell.
    """
    # A sweep's master config is checked for object hooks in `precheck_overrides`; a run's one
    # config is the job composed below, from the command line as typed (not re-serialised).
    jobs = precheck_overrides(args, multirun, hooks=multirun)
    hargs = parse_hydra_args(args)
    if not multirun:
        jobs = [list(hargs.overrides)]
    problems: list[str] = []
    out = Preflight()
    incompatible = 0
    servers: dict[str, str] = {}  # tracking server URI -> runs_dir, contacted once below
    local_stores: list[str] = []  # runs_dir of each local store, checked once below
    data_cache: dict[str, Any] = {}
    with hydra_compose(**_sources(hargs)) as compose:
        for job in jobs:
            cfg, compose_problems = compose_reporting(compose, job, hargs.config_name,
                                                      return_hydra_config=True)
            problems.extend(p for p in compose_problems if p not in problems)
            if cfg is None:
                continue
            hooks = config_problems(cfg)  # the job's hydra node: its logging, callbacks
            if hooks:
                problems.extend(p for p in hooks if p not in problems)
                continue
            with open_dict(cfg):
                del cfg["hydra"]
            missing = [f"'{k}' needs a value: set it on the command line ({k}=...)"
                       for k in sorted(OmegaConf.missing_keys(cfg))]
            if missing:
                problems.extend(p for p in missing if p not in problems)
                continue
            plain = OmegaConf.to_container(cfg, resolve=True)
            tracking = plain.get("tracking")
            uri = tracking.get("uri") if isinstance(tracking, dict) else None
            if isinstance(uri, str) and not check_uri(uri):
                servers.setdefault(uri, str(plain.get("runs_dir") or "runs"))
            runs_dir = plain.get("runs_dir")
            if uri is None and isinstance(runs_dir, str) and runs_dir not in local_stores:
                local_stores.append(runs_dir)
            try:
                out.jobs.append(validate(plain, load=True, data_cache=data_cache))
            except IncompatibleError as err:
                if not multirun:
                    problems.extend(p for p in err.problems if p not in problems)
                elif err.one_line() not in out.notes:
                    out.notes.append(err.one_line())
                incompatible += 1
            except ConfigError as err:
                problems.extend(p for p in err.problems if p not in problems)
    problems.extend(p for p in _device_problems(out.jobs) if p not in problems)
    problems.extend(_unreachable(servers))
    if not problems:  # a broken local store: one line now, not a failure inside Hydra
        problems.extend(_unusable_stores(local_stores, full=multirun))
    if incompatible and incompatible == len(jobs):
        problems.extend(out.notes)
    if problems:
        raise ConfigError(problems[0], problems)
    return out


def precheck_overrides(args: Sequence[str], multirun: bool, *, hooks: bool = True
                       ) -> list[list[str]]:
    """The checks before any job is validated: Hydra's flags, syntax, `_target_`, a sweep given
    to `run`, unknown or missing group options, then the object hooks of the config Hydra's app
    will compose (every config source, hydra node included: also for --cfg/--info). Returns the
    jobs (override lists); raises ConfigError."""
    hargs = parse_hydra_args(args)
    cli = list(hargs.overrides)
    problems = _source_problems(hargs)
    problems += [
        f"'{a}': _target_ cannot be set from the command line or a config; attnbench builds only "
        "its registered components (choose them by name, e.g. attention=additive)"
        for a in cli if _sets_target(a)
    ]
    if not multirun:
        problems += [
            f"'{a}' lists several values: that is a sweep (attnbench sweep {a}); `run` takes one "
            "value per key (quote a value that contains a comma)"
            for a in sweep_args(cli)
        ]
    if any(a in ("-sc", "--shell-completion") or a.startswith("--shell-completion=")
           for a in args):
        problems.append(
            "Hydra's --shell-completion completes Hydra apps, not attnbench: run "
            "`attnbench --install-completion` (commands, options and overrides)"
        )
    if multirun and not problems:
        problems += _unsampled_intervals(cli)
    if problems:
        raise ConfigError(problems[0], problems)
    jobs = expand_overrides([*_preset_grid(cli, hargs), *cli] if multirun else cli)
    for group in GROUPS:  # unknown options first: the clearest message
        options = group_options(group)
        valid = f"Valid options: {', '.join(options)}" if options else f"conf/{group}/ has none yet"
        for job in jobs:
            for ov in job:
                key, _, value = ov.lstrip("+~").partition("=")
                if key != group:
                    continue
                if value in ("", "null"):
                    msg = f"'{ov}': {group} cannot be empty. {valid}"
                    msg = msg if group in REQUIRED_GROUPS else ""
                elif value not in options:
                    msg = f"Unknown {group} '{value}'. {valid}"
                else:
                    msg = ""
                if msg and msg not in problems:
                    problems.append(msg)
    if problems:
        raise ConfigError(problems[0], problems)
    problems = hook_problems(hargs, multirun and not hargs.shows, compose_master=hooks)
    if problems:
        raise ConfigError(problems[0], problems)
    return jobs


def _sources(hargs: HydraArgs) -> dict[str, Any]:
    """`hydra_compose` arguments for the config sources Hydra's app will read."""
    return {"config_dir": hargs.config_dir, "config_path": hargs.config_path}


def _source_problems(hargs: HydraArgs) -> list[str]:
    """Flags that would make Hydra load code rather than configs: checked before composing."""
    problems = []
    if hargs.rerun is not None:
        problems.append(
            f"--experimental-rerun {hargs.rerun!r} loads a pickled config, and unpickling runs "
            "code: attnbench does not allow it (re-run a run with attnbench reproduce <run-id>)"
        )
    if hargs.config_path is not None:
        problems += searchpath_problems([hargs.config_path], "--config-path")
    for override in hargs.overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.strip() == "hydra.searchpath":
            problems += searchpath_problems(_list_value(override), "hydra.searchpath")
    return problems


def _list_value(override: str) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        value = OverridesParser.create().parse_override(override).value()
    except HydraException:
        return []  # reported as a syntax error
    return list(value) if isinstance(value, list) else [value]


def hook_problems(hargs: HydraArgs, multirun: bool, compose_master: bool = True
                  ) -> list[str]:
    """Object hooks (`config.hooks`) in what Hydra's app will compose for this command line:
    first `pkg://` search paths in the primary config (composing would import them), then, with
    `compose_master`, the run's config, or a sweep's master config (what its callbacks and
    logging are built from) and the configs an optimising sweeper's own `params` choose. Configs
    that fail to compose are left to the per-job checks (or to Hydra, for --cfg/--info)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cli = list(hargs.overrides)
    with hydra_compose(**_sources(hargs)) as compose:
        name = hargs.config_name
        problems = searchpath_problems(primary_search_path(name),
                                       f"hydra.searchpath in the primary config {name!r}")
        if problems or not compose_master:  # composing would import the package
            return problems
        try:
            master = (compose_multirun(name, cli) if multirun
                      else compose(name, overrides=cli, return_hydra_config=True))
        except Exception:  # noqa: BLE001 - reported by the per-job checks
            return []
        problems = config_problems(master)
        if problems or not multirun:
            return problems
        sweeper = master.hydra.sweeper
        params = sweeper.get("params") or {}
        if "BasicSweeper" in str(sweeper.get("_target_", "")) or not params:
            return []  # the basic sweeper's grid is expanded into the jobs (`_preset_grid`)
        # An optimising sweeper picks values at run time: compose every config its discrete
        # choices of config groups, and of values that are mappings, can bring in.
        try:
            parsed = OverridesParser.create().parse_overrides(
                [f"{k}={v}" for k, v in params.items()])
        except Exception:  # noqa: BLE001 - the sweeper reports its own syntax
            return []
        grid = [o.input_line for o in parsed
                if "." not in o.get_key_element().lstrip("+~") or "{" in o.input_line]
        jobs = {tuple(job) for job in expand_overrides([*grid, *cli])}
        for job in sorted(jobs)[:MAX_SWEEPER_CONFIGS]:
            try:
                cfg = compose(name, overrides=list(job), return_hydra_config=True)
            except Exception:  # noqa: BLE001 - the job fails on its own when the sweeper runs it
                continue
            problems.extend(p for p in config_problems(cfg) if p not in problems)
        return problems


def one_job_to_show(args: Sequence[str], jobs: Sequence[Sequence[str]]) -> None:
    """--cfg/--info show one job's config: a sweep of several jobs gets a one-line error."""
    shows_config = any(a.split("=")[0] in ("--cfg", "-c", "--info", "-i") for a in args)
    if shows_config and len(jobs) > 1:
        raise ConfigError(
            f"--cfg/--info show one job's config, and these overrides make {len(jobs)} jobs: "
            f"give each swept key one value to see that job, e.g. {' '.join(jobs[0])}"
        )


def _preset_grid(cli: list[str], hargs: HydraArgs | None = None) -> list[str]:
    """The grid an experiment preset declares in `hydra.sweeper.params` (Hydra's basic sweeper
    runs it), minus the keys the command line sets itself: those win, as in Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(cli)
    except HydraException:
        return []  # reported by expand_overrides
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    if not any(o.key_or_group in ("experiment", "hydra/sweeper") for o in parsed):
        return []
    try:
        hargs = hargs or HydraArgs()
        with hydra_compose(**_sources(hargs)) as compose:
            sweeper = compose(hargs.config_name, overrides=fixed,
                              return_hydra_config=True).hydra.sweeper
    except Exception:  # noqa: BLE001 - composition problems are reported by check_overrides
        return []
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper") or not sweeper.get("params"):
        return []
    given = {o.get_key_element().lstrip("+~") for o in parsed}
    return [f"{k}={v}" for k, v in sweeper.params.items() if k not in given]


def _unsampled_intervals(cli: list[str]) -> list[str]:
    """`interval(...)` sweeps need a sweeper that samples (Optuna); Hydra's basic sweeper would
    fail once the sweep has started."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(cli)
    except HydraException:
        return []  # reported by expand_overrides
    intervals = [o.input_line for o in parsed if o.is_interval_sweep()]
    if not intervals:
        return []
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    try:
        with hydra_compose() as compose:
            target = str(compose("config", overrides=fixed,
                                 return_hydra_config=True).hydra.sweeper.get("_target_", ""))
    except Exception:  # noqa: BLE001 - composition problems are reported by check_overrides
        return []
    if not target.endswith("BasicSweeper"):
        return []
    return [f"'{line}': an interval is sampled, not enumerated: it needs a sampling sweeper "
            "(hydra/sweeper=optuna with pip install 'attnbench[optuna]', or "
            "experiment=optuna_lr_width); the grid sweeper takes lists such as "
            "trainer.lr=1e-3,3e-3 or range(...)" for line in intervals]


def _sets_target(override: str) -> bool:
    """`+x._target_=...` or a dict value `+x={_target_: ...}` (any spacing or quoting): would
    make Hydra import a name. A cheap first check; `hook_problems` sees the composed config."""
    key, _, value = override.lstrip("+~").partition("=")
    if any(part.strip(" \t\n'\"") in HOOK_KEYS for part in key.split(".")):
        return True
    return bool(_HOOK_IN_VALUE.search(value))


_HOOK_IN_VALUE = re.compile(r"[{,]\s*['\"]?\s*(" + "|".join(HOOK_KEYS) + r")\s*['\"]?\s*:")


def _unusable_stores(runs_dirs: Sequence[str], full: bool = False) -> list[str]:
    """A local store that exists but cannot be used (a folder, not SQLite, half-migrated): one
    line each. A run checks with sqlite3 alone (no MLflow import on the way to the first step;
    a schema behind MLflow's is reported when the job connects); a sweep connects, which also
    compares the schema with MLflow's and creates a missing store, as its parent run would next
    (a failure there would only be a Hydra callback warning)."""
    from attnbench.errors import TrackingError
    from attnbench.store.handle import Tracker

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
    from attnbench.store.handle import Tracker

    found = []
    for uri, runs_dir in servers.items():
        try:
            Tracker(uri, runs_dir).preflight()
        except TrackingError as err:
            found.append(err.one_line())
    return found

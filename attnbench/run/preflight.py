"""Pre-flight: compose every job a command line describes and validate it, before anything
trains, so a typo is one line naming the valid choices (and every problem of a sweep is in one
message). The result is the jobs' typed `RunConfig`s; Hydra then runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from attnbench.config.compose import (
    compose_reporting,
    expand_overrides,
    hydra_compose,
    override_args,
    sweep_args,
)
from attnbench.config.groups import GROUPS, group_options
from attnbench.config.schema import RunConfig
from attnbench.config.validate import check_uri, validate
from attnbench.errors import ConfigError, IncompatibleError

# Groups a run cannot do without (`experiment` is optional: null = no preset).
REQUIRED_GROUPS = ("attention", "backbone", "task", "trainer", "tracking")


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
    jobs = precheck_overrides(args, multirun)
    problems: list[str] = []
    out = Preflight()
    incompatible = 0
    servers: dict[str, str] = {}  # tracking server URI -> runs_dir, contacted once below
    data_cache: dict[str, Any] = {}
    with hydra_compose() as compose:
        for job in jobs:
            cfg, compose_problems = compose_reporting(compose, job)
            problems.extend(p for p in compose_problems if p not in problems)
            if cfg is None:
                continue
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
    problems.extend(_unreachable(servers))
    if incompatible and incompatible == len(jobs):
        problems.extend(out.notes)
    if problems:
        raise ConfigError(problems[0], problems)
    return out


def precheck_overrides(args: Sequence[str], multirun: bool) -> list[list[str]]:
    """The checks that need no composition: syntax, `_target_`, a sweep given to `run`, unknown
    or missing group options. Returns the jobs (override lists); raises ConfigError."""
    problems = [
        f"'{a}': _target_ cannot be set from the command line or a config; attnbench builds only "
        "its registered components (choose them by name, e.g. attention=additive)"
        for a in override_args(args) if _sets_target(a)
    ]
    if not multirun:
        problems += [
            f"'{a}' lists several values: that is a sweep (attnbench sweep {a}); `run` takes one "
            "value per key (quote a value that contains a comma)"
            for a in sweep_args(override_args(args))
        ]
    if problems:
        raise ConfigError(problems[0], problems)
    cli = override_args(args)
    jobs = expand_overrides([*_preset_grid(cli), *cli] if multirun else cli)
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
    return jobs


def one_job_to_show(args: Sequence[str], jobs: Sequence[Sequence[str]]) -> None:
    """--cfg/--info show one job's config: a sweep of several jobs gets a one-line error."""
    shows_config = any(a.split("=")[0] in ("--cfg", "-c", "--info", "-i") for a in args)
    if shows_config and len(jobs) > 1:
        raise ConfigError(
            f"--cfg/--info show one job's config, and these overrides make {len(jobs)} jobs: "
            f"give each swept key one value to see that job, e.g. {' '.join(jobs[0])}"
        )


def _preset_grid(cli: list[str]) -> list[str]:
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
        with hydra_compose() as compose:
            sweeper = compose("config", overrides=fixed, return_hydra_config=True).hydra.sweeper
    except Exception:  # noqa: BLE001 - composition problems are reported by check_overrides
        return []
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper") or not sweeper.get("params"):
        return []
    given = {o.get_key_element().lstrip("+~") for o in parsed}
    return [f"{k}={v}" for k, v in sweeper.params.items() if k not in given]


def _sets_target(override: str) -> bool:
    """`+x._target_=...` or a dict value `+x={_target_: ...}`: would make Hydra import a name."""
    key, _, value = override.lstrip("+~").partition("=")
    return "_target_" in key.split(".") or "_target_:" in value.replace(" ", "")


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

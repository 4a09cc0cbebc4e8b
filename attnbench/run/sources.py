"""The pre-flight's checks of a command line before any job is validated: the config sources it
names (-cd, -cp, search paths, a pickled rerun), the overrides as typed, the option names (the
user's own presets from -cd/search paths included), the sweep's master config and the configs
an optimising sweeper can pick (each through `config.guard`), and Hydra's output folders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from attnbench.config.compose import (
    HydraArgs,
    compose_multirun,
    compose_reporting,
    hydra_compose,
    primary_search_path,
    sweep_args,
)
from attnbench.config.grid import MAX_CHECKED_JOBS, check_grid, coverage_jobs, expand_overrides
from attnbench.config.guard import check_config, whence_finder
from attnbench.config.hooks import HOOK_KEYS, searchpath_problems
from attnbench.config.validate import folder_problem, shown, space_problem

# Groups a run cannot do without (`experiment` is optional: null = no preset).
REQUIRED_GROUPS = ("attention", "backbone", "task", "trainer", "tracking")
# Configs an optimising sweeper's choices can bring in, composed for the allow-list check.
MAX_SWEEPER_CONFIGS = 32


def sources(hargs: HydraArgs) -> dict[str, Any]:
    """`hydra_compose` arguments for the config sources Hydra's app will read."""
    return {"config_dir": hargs.config_dir, "config_path": hargs.config_path}


def source_problems(hargs: HydraArgs) -> list[str]:
    """Flags and search paths that would make Hydra load code rather than configs, or that name
    folders that do not exist: checked before anything is composed."""
    problems = []
    if hargs.rerun is not None:
        problems.append(
            f"--experimental-rerun {hargs.rerun!r} loads a pickled config, and unpickling runs "
            "code: attnbench does not allow it (re-run a run with attnbench reproduce <run-id>)"
        )
    if hargs.config_path is not None:
        problems += searchpath_problems([hargs.config_path], "--config-path")
    for override in hargs.overrides:
        key = override.lstrip("+~").partition("=")[0]
        if key.strip() == "hydra.searchpath":
            problems += searchpath_problems(_list_value(override), "hydra.searchpath")
    if problems:
        return problems
    with hydra_compose(**sources(hargs)):  # refuses a -cd folder that does not exist
        name = hargs.config_name
        return searchpath_problems(primary_search_path(name),
                                   f"hydra.searchpath in the primary config {name!r}")


def typed_problems(args: Sequence[str], cli: Sequence[str], multirun: bool) -> list[str]:
    """What the typed overrides alone show: an object hook, a sweep given to `run`, Hydra's shell
    completion."""
    problems = [
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
    return problems


def option_problems(hargs: HydraArgs, jobs: Sequence[Sequence[str]]) -> list[str]:
    """Unknown or empty options of attnbench's groups, named with the valid ones: the options of
    every config source Hydra's app reads (conf/, plugins, -cd, -cp, search paths; Hydra lists
    those only when an option is not one of conf/'s or the plugins')."""
    from attnbench.config.groups import GROUPS, group_options

    listing: dict[str, list[str]] = {}

    def options(group: str, value: str | None = None) -> list[str]:
        known = group_options(group)
        if (value is None or value in known) and not listing:
            return known
        if not listing:
            listing.update(group_listing(hargs))
        return sorted({*known, *listing[group]})

    problems: list[str] = []
    for group in GROUPS:
        for job in jobs:
            for ov in job:
                key, _, value = ov.lstrip("+~").partition("=")
                if key != group:
                    continue
                found = options(group, value if value not in ("", "null") else None)
                valid = (f"Valid options: {', '.join(found)}" if found
                         else f"conf/{group}/ has none yet")
                msg = ""
                if value in ("", "null"):
                    msg = f"'{ov}': {group} cannot be empty. {valid}"
                    msg = msg if group in REQUIRED_GROUPS else ""
                elif value not in found:
                    msg = f"Unknown {group} '{value}'. {valid}"
                if msg and msg not in problems:
                    problems.append(msg)
    return problems


def group_listing(hargs: HydraArgs) -> dict[str, list[str]]:
    """{group: options} as Hydra's app sees them for this command line."""
    from hydra.core.global_hydra import GlobalHydra

    from attnbench.config.groups import GROUPS

    searchpath = [o for o in hargs.overrides
                  if o.lstrip("+~").partition("=")[0].strip() == "hydra.searchpath"]
    with hydra_compose(**sources(hargs)):
        loader = GlobalHydra.instance().hydra.config_loader  # type: ignore[union-attr]
        try:  # the primary config's search path counts too
            return {group: sorted(set(loader.get_group_options(
                        group, config_name=hargs.config_name, overrides=searchpath)))
                    for group in GROUPS}
        except Exception:  # noqa: BLE001 - a broken primary config: composing reports it
            return {group: sorted(set(loader.get_group_options(group))) for group in GROUPS}


def master_problems(hargs: HydraArgs, *, multirun: bool, shows: bool,
                    resolve_values: bool = False, grid: Sequence[str] = (),
                    checked: Sequence[Sequence[str]] = ()) -> list[str]:
    """`config.guard` on what Hydra's app itself builds from the command line: a sweep's master
    config (its callbacks, launcher, sweeper, logging), the configs its optimising sweeper's
    choices can bring in, and, for a grid (`grid`: its overrides) larger than the jobs the
    pre-flight validates (`checked`), one job per option of each swept config group and per
    value of each swept hydra.* key; for --cfg/--info the one config shown (a config that does
    not compose is one line here: Hydra would print a traceback)."""
    cli = list(hargs.overrides)
    name = hargs.config_name
    with hydra_compose(**sources(hargs)) as compose:
        whence = whence_finder(name, cli, cli, multirun and not shows,
                               hargs.config_path is not None)
        if shows:
            cfg, problems = compose_reporting(compose, cli, name, return_hydra_config=True)
            if cfg is None:
                return problems
            return problems + check_config(cfg, typed=cli, whence=whence,
                                           job_values=resolve_values)[0]
        if not multirun:
            return []
        try:
            master = compose_multirun(name, cli)
        except Exception:  # noqa: BLE001 - reported by the per-job checks
            return []
        problems = check_config(master, typed=cli, multirun=True, whence=whence,
                                job_values=False)[0]
        if problems:
            return problems
        seen = {tuple(job) for job in checked}
        extra = [job for job in _coverage(grid, hargs) if tuple(job) not in seen]
        for job in [*_sweeper_choices(master.hydra.sweeper, cli), *extra]:
            try:
                cfg = compose(name, overrides=list(job), return_hydra_config=True)
            except Exception:  # noqa: BLE001 - the job fails on its own when the sweeper runs it
                continue
            whence = whence_finder(name, job, cli, True, hargs.config_path is not None)
            found = check_config(cfg, typed=cli, multirun=True, whence=whence)[0]
            problems.extend(p for p in found if p not in problems)
        return problems


def _coverage(grid: Sequence[str], hargs: HydraArgs) -> list[list[str]]:
    """`coverage_jobs` of the grid: swept hydra.* keys and config groups (any config source's).
    Call inside `hydra_compose`."""
    from hydra.core.global_hydra import GlobalHydra

    if not grid or check_grid(grid) <= MAX_CHECKED_JOBS:
        return []
    loader = GlobalHydra.instance().hydra.config_loader  # type: ignore[union-attr]
    searchpath = [o for o in hargs.overrides
                  if o.lstrip("+~").partition("=")[0].strip() == "hydra.searchpath"]

    def varies(key: str) -> bool:
        if key.startswith("hydra") or "/" in key:
            return True
        try:
            return bool(loader.get_group_options(key, config_name=hargs.config_name,
                                                 overrides=searchpath))
        except Exception:  # noqa: BLE001 - not a group Hydra can list
            return False

    return coverage_jobs(grid, varies)


def _sweeper_choices(sweeper: Any, cli: list[str]) -> list[tuple[str, ...]]:
    """The jobs whose configs an optimising sweeper's discrete choices of config groups, and of
    values that are mappings, can bring in (the basic sweeper's grid is expanded into the jobs
    by `preset_grid` instead)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = sweeper.get("params") or {}
    if "BasicSweeper" in str(sweeper.get("_target_", "")) or not params:
        return []
    try:
        parsed = OverridesParser.create().parse_overrides(
            [f"{k}={v}" for k, v in params.items()])
    except Exception:  # noqa: BLE001 - the sweeper reports its own syntax
        return []
    grid = [o.input_line for o in parsed
            if "." not in o.get_key_element().lstrip("+~") or "{" in o.input_line]
    return sorted({tuple(job) for job in expand_overrides([*grid, *cli])})[:MAX_SWEEPER_CONFIGS]


def output_problems(tree: Mapping[str, Any], multirun: bool) -> list[str]:
    """Hydra's output folder of this command (hydra.run.dir, or hydra.sweep.dir for a sweep):
    one that cannot be created or written, or whose disk is full, is one line now (Hydra would
    fail with a traceback, a sweep after its parent run exists)."""
    hydra = tree.get("hydra")
    if not isinstance(hydra, Mapping):
        return []
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    node = hydra.get("sweep" if multirun else "run")
    folder = node.get("dir") if isinstance(node, Mapping) else None
    if not isinstance(folder, str):
        return []
    reason = folder_problem(folder) or space_problem(folder)
    return [f"'{key}' = {shown(folder)} {reason}"] if reason else []


def preset_grid(cli: list[str], hargs: HydraArgs) -> list[str]:
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
        with hydra_compose(**sources(hargs)) as compose:
            sweeper = compose(hargs.config_name, overrides=fixed,
                              return_hydra_config=True).hydra.sweeper
    except Exception:  # noqa: BLE001 - composition problems are reported by check_overrides
        return []
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper") or not sweeper.get("params"):
        return []
    given = {o.get_key_element().lstrip("+~") for o in parsed}
    return [f"{k}={v}" for k, v in sweeper.params.items() if k not in given]


def unsampled_intervals(cli: list[str]) -> list[str]:
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


def _list_value(override: str) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        value = OverridesParser.create().parse_override(override).value()
    except HydraException:
        return []  # reported as a syntax error
    return list(value) if isinstance(value, list) else [value]


def _sets_target(override: str) -> bool:
    """`+x._target_=...` or a dict value `+x={_target_: ...}` (any spacing or quoting): would
    make Hydra import a name. A cheap first check; `config.guard` sees the composed config."""
    key, _, value = override.lstrip("+~").partition("=")
    if any(part.strip(" \t\n'\"") in HOOK_KEYS for part in key.split(".")):
        return True
    return bool(_HOOK_IN_VALUE.search(value))


_HOOK_IN_VALUE = re.compile(r"[{,]\s*['\"]?\s*(" + "|".join(HOOK_KEYS) + r")\s*['\"]?\s*:")

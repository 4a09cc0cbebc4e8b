"""The tuned protocol: `attnbench sweep GRID --tune KEY=V1,V2,... [--tune-seeds S,...]`, equal
for every variant, selected on validation only.

Stage 1 trains every cell of the grid at every combination of tuned values on the tuning seeds
(default: the sweep's first seed). Per group (a cell less its seed) `analysis.tuning.choose`
picks the combination with the best mean `best_val/<primary metric>`, ties broken by the lower
`best_val/loss`. Stage 2 trains each group's choice on the sweep's other seeds. A stage-1 run at
the chosen value on a tuning seed that is also a sweep seed is that seed's final run: it is the
same config and seed (retraining gives the same numbers), and choosing it read validation only.
Every group gets the same trials (values x tuning seeds) and the same trainer budget.

Both stages go through Hydra's app (`run_stage`: one multirun per stage-1 grid and per stage-2
grid: groups that chose one value and form a grid share one) under one sweep parent run: the
first stage opens it (`SweepCallback(stage=tune, keep_open)`), the later ones join it, and
`finish_sweep` closes it. Runs are tagged `attnbench.stage=tune|final`; the parent carries the
protocol (`attnbench.tune`), from which `compare` finds the final runs. `--resume` skips every
finished cell of both stages (same config hash), so a killed tuned sweep trains only what is
missing. A preset sets the protocol in its `tune:` node (conf/experiment/default_tuned.yaml).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench.errors import AttnbenchError, ConfigError
from attnbench.run.preflight import Preflight, check_overrides

# Keys a tuned value cannot be: what a run is, or what a sweep is made of.
NOT_TUNABLE = ("seed", "attention", "backbone", "task", "experiment", "trainer", "tracking",
               "tune", "hydra", "runs_dir", "resume", "experiment_name")
CALLBACK = "++hydra.callbacks.attnbench_sweep"
STAGE_DIRS = ("tune", "final")


@dataclass
class TunePlan:
    """What a tuned sweep runs: the grid's overrides (less the seed and the tuned keys), the
    tuned values (as Hydra reads them, and as override text), the seeds and where it writes."""

    overrides: list[str]  # the command line's overrides less `seed` and the tuned keys
    flags: list[str]  # Hydra's flags (--config-dir ...): after the overrides
    params: dict[str, list[Any]]  # tuned key -> values, typed as the config holds them
    texts: dict[str, list[str]]  # the same values as override text
    tune_seeds: list[int]
    seeds: list[int]
    base_dir: str  # the sweep folder: stage folders go under it
    hydra_overrides: list[str] = field(default_factory=list)  # hydra.* (launcher, ...)

    @property
    def final_seeds(self) -> list[int]:
        """The sweep's seeds stage 2 trains (a tuning seed's final run is its stage-1 run)."""
        return [s for s in self.seeds if s not in self.tune_seeds]

    def stage1(self) -> list[str]:
        """Every group x every tuned value x the tuning seeds (the callback's parameters aside)."""
        return [*self.overrides, _choice("seed", self.tune_seeds),
                *(_choice(k, v) for k, v in self.texts.items())]

    def preflight(self) -> Preflight:
        """Validate every job of both stages first (stage 2 at the first value: a value's
        validity is checked by stage 1's jobs, a seed's by these)."""
        checked = check_overrides([*self.stage1(), *self.hydra_overrides, *self.flags],
                                  multirun=True)
        if self.final_seeds:
            first = [_choice(k, v[:1]) for k, v in self.texts.items()]
            more = check_overrides([*self.overrides, _choice("seed", self.final_seeds), *first,
                                    *self.hydra_overrides, *self.flags], multirun=True)
            checked.jobs += more.jobs
            checked.notes += [n for n in more.notes if n not in checked.notes]
        return checked


def _choice(key: str, values: Sequence[Any]) -> str:
    """`key=choice(a,b)`: a sweep even with one value, so the key is tagged as swept."""
    return f"{key}=choice({','.join(str(v) for v in values)})"


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _text(value: Any) -> str:
    """A preset's typed value as override text."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return text if text.replace("_", "").replace("-", "").replace(".", "").isalnum() \
        else _quoted(text)


def parse_flag(flag: str) -> tuple[str, list[Any], list[str]]:
    """`trainer.lr=1e-3,3e-3` -> ("trainer.lr", [0.001, 0.003], ["0.001", "0.003"])."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    example = "e.g. --tune trainer.lr=1e-3,3e-3,1e-2"
    if "=" not in flag:
        raise ConfigError(f"--tune {flag!r}: expected KEY=V1,V2,... ({example})")
    try:
        o = OverridesParser.create().parse_override(flag)
        if not o.is_sweep_override():
            return o.get_key_element(), [o.value()], [o.get_value_element_as_str()]
        if not o.is_discrete_sweep():
            raise ConfigError(f"--tune {flag!r}: give the values as a list ({example})")
        return o.get_key_element(), list(o.sweep_iterator()), list(o.sweep_string_iterator())
    except HydraException as err:
        reason = str(err).strip().splitlines()[0]
        raise ConfigError(f"--tune {flag!r}: {reason} ({example})") from None


def parse_seeds(text: str, where: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).replace(" ", "").strip("[]").split(",") if s]
    except ValueError:
        seeds = []
    if not seeds:
        raise ConfigError(f"{where} {text!r}: expected seeds separated by commas, e.g. 0,1")
    return list(dict.fromkeys(seeds))


def _may_tune(overrides: Sequence[str], flags: Sequence[str], args: Sequence[str]) -> bool:
    """Whether the command line can ask for tuning: --tune, a preset, a `tune` key, or another
    primary config (worth composing the master config to find out)."""
    keys = {o.lstrip("+~").partition("=")[0].split(".")[0] for o in overrides}
    other_config = any(a.startswith(("-cd", "--config-dir", "-cn", "--config-name", "-cp",
                                     "--config-path")) for a in args)
    return bool(flags) or bool(keys & {"experiment", "tune"}) or other_config


def plan(args: Sequence[str], flags: Sequence[str] = (), seeds: str | None = None
         ) -> TunePlan | None:
    """The tuned sweep the command line asks for (--tune flags, or a preset's `tune:` node), or
    None for a plain sweep. ConfigError for a protocol that cannot run."""
    from omegaconf import OmegaConf

    from attnbench.config.compose import compose_multirun, hydra_compose, parse_hydra_args

    hargs = parse_hydra_args(args)
    if not _may_tune(hargs.overrides, flags, args):
        return None
    try:
        with hydra_compose(config_dir=hargs.config_dir, config_path=hargs.config_path):
            master = compose_multirun(hargs.config_name, list(hargs.overrides))
    except Exception:  # noqa: BLE001 - the pre-flight names the problem
        if flags:
            check_overrides(args, multirun=True)
            raise ConfigError("--tune: the sweep's config does not compose") from None
        return None
    node = OmegaConf.to_container(master.get("tune") or {}, resolve=True) or {}
    params: dict[str, list[Any]] = {}
    texts: dict[str, list[str]] = {}
    for key, values in (node.get("params") or {}).items():
        values = list(values) if isinstance(values, list) else [values]
        params[str(key)], texts[str(key)] = values, [_text(v) for v in values]
    for flag in flags:
        key, typed, shown = parse_flag(flag)
        params[key], texts[key] = typed, shown
    if not params:
        if seeds is not None:
            raise ConfigError("--tune-seeds needs --tune KEY=V1,V2,... (or a preset's tune:)")
        return None
    grid = _grid(hargs.overrides, master)
    _check_protocol(params, grid, master)
    sweep_seeds = _sweep_seeds(hargs.overrides, master)
    preset_seeds = node.get("seeds")
    if seeds is not None:
        tune_seeds = parse_seeds(seeds, "--tune-seeds")
    elif preset_seeds is not None:
        listed = preset_seeds if isinstance(preset_seeds, list) else [preset_seeds]
        tune_seeds = parse_seeds(",".join(map(str, listed)), "tune.seeds")
    else:
        tune_seeds = sweep_seeds[:1]
    kept, hydra_side = [], []
    for o in hargs.overrides:
        key = o.lstrip("+~").partition("=")[0]
        if key == "hydra.sweep.dir" or key == "seed" or key in params:
            continue
        (hydra_side if key.startswith("hydra") else kept).append(o)
    return TunePlan(kept, _flags(hargs), params, texts, tune_seeds, sweep_seeds,
                    str(master.hydra.sweep.dir), hydra_side)


def _flags(hargs: Any) -> list[str]:
    out = [] if hargs.config_name == "config" else ["--config-name", hargs.config_name]
    if hargs.config_path is not None:
        out += ["--config-path", hargs.config_path]
    if hargs.config_dir is not None:
        out += ["--config-dir", hargs.config_dir]
    return out


def _grid(overrides: Sequence[str], master: Any) -> dict[str, list[str]]:
    """The keys of the sweep's grid (command line over preset) -> their values as text; a
    sweep Hydra expands only while composing (`glob(*)`) -> its text and `...` (two values)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    params = dict(master.hydra.sweeper.get("params") or {})
    lines = [f"{k}={v}" for k, v in params.items()]
    out: dict[str, list[str]] = {}
    try:
        parsed = OverridesParser.create().parse_overrides([*lines, *overrides])
    except HydraException:
        return out  # a syntax error: the pre-flight names it
    for o in parsed:
        key = o.get_key_element().lstrip("+~")
        if not o.is_sweep_override():
            out[key] = [o.get_value_element_as_str()]
            continue
        try:
            out[key] = list(o.sweep_string_iterator())
        except HydraException:
            out[key] = [o.input_line.partition("=")[2], "..."]
    return out


def _check_protocol(params: Mapping[str, list[Any]], grid: Mapping[str, list[str]],
                    master: Any) -> None:
    from omegaconf import OmegaConf

    problems = []
    target = str(master.hydra.sweeper.get("_target_", ""))
    if not target.endswith("BasicSweeper"):
        problems.append(f"--tune runs grids with Hydra's basic sweeper, not {target}: an "
                        "optimising sweeper searches on its own (compare reads it on validation)")
    missing = object()
    for key, values in params.items():
        node = OmegaConf.select(master, key, default=missing)
        if key in NOT_TUNABLE or key.split(".")[0] in ("hydra", "tune", "tracking"):
            problems.append(f"--tune {key}: not a hyper-parameter (what a run is or where it "
                            "goes); tune a value such as trainer.lr or backbone.d_model")
        elif node is missing or OmegaConf.is_config(node):
            problems.append(f"--tune {key}: no such config value (a group or a typo?); tune a "
                            "value such as trainer.lr, trainer.weight_decay, backbone.d_model")
        elif len(values) < 2:
            problems.append(f"--tune {key}: give at least two values to choose from")
        elif len(grid.get(key, [])) > 1:
            problems.append(f"{key} is both swept ({key}={','.join(grid[key])}) and tuned: give "
                            "its values once, with --tune")
    if problems:
        raise ConfigError(problems[0], problems)


def _sweep_seeds(overrides: Sequence[str], master: Any) -> list[int]:
    """The sweep's seeds: the command line's `seed=`, else the preset's, else the config's."""
    values = _grid(overrides, master).get("seed")
    if values is None:
        return [int(master.seed)]
    return parse_seeds(",".join(values), "seed=")


# -- running it ------------------------------------------------------------------------------
def run(plan: TunePlan, run_stage: Callable[[list[str]], None], tracker: Any) -> None:
    """Stage 1, the choice, stage 2, then close the sweep (see the module docstring)."""
    from attnbench.analysis.select import select_runs
    from attnbench.analysis.tuning import Protocol, choose
    from attnbench.run.sweep import finish_sweep, read_context, read_results
    from attnbench.store.names import FINAL_STAGE, TUNE_STAGE, TUNE_TAG

    base = Path(plan.base_dir)
    first = base / STAGE_DIRS[0]
    run_stage(_stage_args(plan, plan.stage1(), first, TUNE_STAGE))
    context = read_context(first)
    if context is None:
        raise AttnbenchError(f"the tuning stage opened no sweep run (no context in {first})")
    parent = context.parent_run_id
    protocol = Protocol(plan.params, plan.tune_seeds, plan.seeds)
    tracker.set_tags(parent, {TUNE_TAG: protocol.to_tag()})
    choices = choose(select_runs(tracker, sweep=parent).runs, protocol)
    print_choices(plan, protocol, choices)
    folders = [first]
    if plan.final_seeds:
        jobs = {r.run_id: r.overrides for r in read_results(first) if r.run_id}
        for i, grid in enumerate(stage2_grids(plan, protocol, choices, jobs)):
            folder = base / f"{STAGE_DIRS[1]}-{i}"
            run_stage(_stage_args(plan, grid, folder, FINAL_STAGE, parent))
            folders.append(folder)
    finish_sweep(tracker, parent, folders)


def _stage_args(plan: TunePlan, overrides: list[str], folder: Path, stage: str,
                parent: str | None = None) -> list[str]:
    return [*overrides, *plan.hydra_overrides,
            f"hydra.sweep.dir={_quoted(str(folder))}",
            f"{CALLBACK}.stage={stage}", f"{CALLBACK}.keep_open=true",
            *([f"{CALLBACK}.parent={_quoted(parent)}"] if parent else []), *plan.flags]


def stage2_grids(plan: TunePlan, protocol: Any, choices: Sequence[Any],
                 jobs: Mapping[str, list[str]]) -> list[list[str]]:
    """Stage 2 as Hydra grids: per chosen combination, its groups' cells (each group's stage-1
    overrides less the seed and the tuned keys), one grid when they form one, else one each."""
    texts = list(itertools.product(*plan.texts.values()))
    buckets: dict[int, list[dict[str, str]]] = {}
    for choice in choices:
        if choice.combo is None:
            continue
        known = [jobs[r.run_id] for r in choice.trial_runs.values() if r.run_id in jobs]
        if not known:
            raise AttnbenchError(f"no stage-1 job record for {choice.label}: cannot train its "
                                 "final seeds")
        cell = {}
        for o in known[0]:
            key, _, value = o.partition("=")
            if key.lstrip("+~") != "seed" and key.lstrip("+~") not in plan.params:
                cell[key] = value
        buckets.setdefault(protocol.combos.index(choice.combo), []).append(cell)
    seeds = _choice("seed", plan.final_seeds)
    grids = []
    for index, cells in buckets.items():
        chosen = [_choice(k, [t]) for k, t in zip(plan.texts, texts[index], strict=True)]
        for block in _blocks(cells):
            grids.append([*block, *chosen, seeds])
    return grids


def _blocks(cells: list[dict[str, str]]) -> list[list[str]]:
    """The cells as one grid (`key=choice(...)` per key) when they are its full product, else
    one single-cell grid each."""
    keys = list(dict.fromkeys(k for c in cells for k in c))
    values = {k: list(dict.fromkeys(c.get(k, "") for c in cells)) for k in keys}
    full = math.prod(len(v) for v in values.values()) == len(cells) and all(
        len(c) == len(keys) for c in cells)
    if full:
        return [[f"{k}={v[0]}" if len(v) == 1 else _choice(k, v) for k, v in values.items()]]
    return [[f"{k}={v}" for k, v in c.items()] for c in cells]


def print_choices(plan: TunePlan, protocol: Any, choices: Sequence[Any]) -> None:
    """The stage-1 verdict: per group, the chosen values and how clearly they won."""
    from attnbench.console import console, results_table

    seeds = ",".join(map(str, plan.tune_seeds))
    rows = [[c.label, protocol.show(c.combo), c.score, f"{c.votes}/{c.seeds}", c.trials]
            for c in choices]
    title = (f"tuned on validation (best_val, tuning seed(s) {seeds}); final seeds: "
             f"{','.join(map(str, plan.seeds))}")
    console.print(results_table(title, ["group", "chosen", "best_val (mean)", "chosen by",
                                        "trials"], rows))

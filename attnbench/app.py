"""The Hydra application behind `attnbench run` and `attnbench sweep`.

The CLI hands its arguments to Hydra's own ``@hydra.main`` (a sweep is Hydra multirun), so the
whole override grammar, ``--cfg``, ``--info``, launchers and sweepers behave as Hydra users
expect. Before that, ``check_overrides`` composes every job of the sweep with Hydra's Compose
API and validates it, so a typo is reported in one line before anything trains.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from attnbench.config import GROUPS, conf_dir, group_options
from attnbench.errors import AttnbenchError, ConfigError
from attnbench.experiment import RunResult, SweepContext, job_name, run_experiment

DEBUG_ENV = "ATTNBENCH_DEBUG"
# Hydra flags that print something instead of running jobs: nothing to validate first.
HYDRA_INFO_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--help", "-h", "--shell-completion", "-sc")
MAX_CHECKED_JOBS = 256


@dataclass
class AppState:
    """What the last Hydra invocation in this process produced (read by the CLI)."""

    results: list[RunResult] = field(default_factory=list)
    error: AttnbenchError | None = None
    sweep: Any = None  # attnbench.sweep.SweepSummary after a multirun

    def reset(self) -> None:
        self.results.clear()
        self.error = None
        self.sweep = None


STATE = AppState()


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, Any]:
    return asdict(run_job(cfg))


def run_job(cfg: DictConfig) -> RunResult:
    """One Hydra job: never raises in a sweep (a failed job must not stop the others)."""
    from attnbench.sweep import read_context

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    plain = OmegaConf.to_container(cfg, resolve=True)
    sweep: SweepContext | None = read_context(hc.sweep.dir) if multirun else None
    n_jobs = int(hc.launcher.get("n_jobs", 1) or 1) if multirun else 1
    if n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    try:
        result = run_experiment(
            plain,
            overrides=list(hc.overrides.task),
            sweep=sweep,
            show_progress=n_jobs == 1,
            parallel_jobs=n_jobs,
        )
    except KeyboardInterrupt:
        raise
    except Exception as err:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        wrapped = err if isinstance(err, AttnbenchError) else AttnbenchError(f"{type(err).__name__}: {err}")
        result = RunResult(job_name(plain), "FAILED", error=wrapped.one_line())
        if not multirun:
            STATE.error = wrapped
        elif sweep is not None and isinstance(err, ConfigError):
            _record_invalid_job(plain, sweep, wrapped.one_line())
    STATE.results.append(result)
    return result


def _record_invalid_job(cfg: dict[str, Any], sweep: SweepContext, reason: str) -> None:
    """A sweep job whose config is invalid still shows in the sweep, as a FAILED run with why."""
    from attnbench.tracking import Tracker

    tracker = Tracker(cfg["tracking"]["uri"], cfg["runs_dir"])
    run_id = tracker.start_run(
        tracker.experiment_id(sweep.experiment_name), job_name(cfg),
        {"attention": cfg["attention"]["name"], "backbone": cfg["backbone"]["name"],
         "task": cfg["task"]["name"], "seed": cfg["seed"], "attnbench.error": reason},
        sweep.parent_run_id,
    )
    tracker.end_run(run_id, "FAILED")


# -- launching -------------------------------------------------------------------------------
def launch(args: Sequence[str], multirun: bool, debug: bool = False) -> int:
    """Run Hydra with `args`; returns the exit code. Raises ConfigError for invalid overrides."""
    args = list(args)
    if debug:
        os.environ[DEBUG_ENV] = "1"
    if not any(a.split("=")[0] in HYDRA_INFO_FLAGS for a in args):
        check_overrides(args)
    STATE.reset()
    argv = sys.argv
    sys.argv = ["attnbench", *(["--multirun"] if multirun else []), *args]
    try:
        main()
    finally:
        sys.argv = argv
    if STATE.error is not None:
        raise STATE.error
    if STATE.sweep is not None and STATE.sweep.failed:
        return 1
    return 0


def expand_overrides(args: Sequence[str]) -> list[list[str]]:
    """The jobs a sweep will run, as override lists (for validation only; Hydra runs them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except HydraException as err:
        raise ConfigError(f"Cannot parse override: {str(err).strip().splitlines()[0]}") from err
    per_key: list[list[str]] = []
    for o in overrides:
        key = o.get_key_element()
        if o.is_delete():
            per_key.append([key])
        elif not o.is_sweep_override():
            per_key.append([f"{key}={o.get_value_element_as_str()}"])
        elif isinstance(o.value(), Glob):
            group = o.key_or_group.split("/")[-1]
            per_key.append([f"{key}={v}" for v in o.value().filter(group_options(group))])
        elif o.is_discrete_sweep():
            per_key.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        # interval sweeps (Optuna) cannot be enumerated: the sweeper samples them.
    return [list(job) for job in itertools.islice(itertools.product(*per_key), MAX_CHECKED_JOBS)]


def check_overrides(args: Sequence[str]) -> None:
    """Compose and validate every job the overrides describe; raise ConfigError with all problems."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from attnbench.training.build import build

    jobs = expand_overrides(args)
    problems: list[str] = []
    for group in GROUPS:  # unknown options first: the clearest message
        for job in jobs:
            for ov in job:
                key, _, value = ov.lstrip("+~").partition("=")
                if key == group and value and value != "null" and value not in group_options(group):
                    msg = f"Unknown {group} '{value}'. Valid options: {', '.join(group_options(group))}"
                    if msg not in problems:
                        problems.append(msg)
    if problems:
        raise ConfigError(problems[0], problems)
    GlobalHydra.instance().clear()
    data_cache: dict[str, Any] = {}
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for job in jobs:
            try:
                cfg = compose("config", overrides=job)
            except Exception as err:  # noqa: BLE001 - Hydra/OmegaConf composition errors
                msg = _compose_message(err)
                if msg not in problems:
                    problems.append(msg)
                continue
            plain = OmegaConf.to_container(cfg, resolve=True)
            key = repr(plain.get("task"))  # data problems do not depend on the seed: load once
            try:
                data_cache[key] = build(plain, data=data_cache.get(key)).data
            except ConfigError as err:
                problems.extend(p for p in err.problems if p not in problems)
    GlobalHydra.instance().clear()
    if problems:
        raise ConfigError(problems[0], problems)


def _compose_message(err: Exception) -> str:
    """Hydra's multi-line composition errors as one line naming the valid choices."""
    import re

    text = " ".join(str(err).split())

    m = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Could not append to config\. An item is already at '([^']+)'", text
    )
    if m and ("not in struct" in text or "Could not override" in text):
        parent = m.group(1).rpartition(".")[0]
        where = f" in {parent}" if parent else ""
        return f"Unknown key '{m.group(1)}'. Valid keys{where}: {_valid_keys(parent)}"
    m = re.search(r"Could not load '([^']+)'", text)
    if m:
        group = m.group(1).split("/")[0]
        return f"Unknown {group} '{m.group(1).split('/')[-1]}'. Valid options: {', '.join(group_options(group))}"
    return text[:300]


def _valid_keys(parent: str) -> str:
    from hydra import compose

    try:
        node = compose("config")
        for part in filter(None, parent.split(".")):
            node = node[part]
        return ", ".join(sorted(k for k in node if k != "hydra"))
    except Exception:  # noqa: BLE001
        return "see attnbench run --cfg job"


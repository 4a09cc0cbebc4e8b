"""The Hydra application behind `attnbench run` and `attnbench sweep`.

The CLI hands its arguments to Hydra's own ``@hydra.main`` (a sweep is Hydra multirun), so the
whole override grammar, ``--cfg``, ``--info``, launchers and sweepers behave as Hydra users
expect. Before that, ``check_overrides`` composes every job of the sweep with Hydra's Compose
API and validates it, so a typo is reported in one line before anything trains.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from attnbench.config import GROUPS, check_uri, conf_dir, group_options
from attnbench.errors import AttnbenchError, ConfigError, IncompatibleError, Interrupted
from attnbench.experiment import RunResult, SweepContext, job_name, run_experiment
from attnbench.plugin_path import register_search_path

DEBUG_ENV = "ATTNBENCH_DEBUG"
# Hydra flags that print something instead of running jobs: nothing to validate first.
HYDRA_INFO_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--help", "-h",
                    "--shell-completion", "-sc")
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


register_search_path()  # plugin packages' config groups: attention=<plugin variant> composes


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, Any] | float:
    result = run_job(cfg)
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN and "BasicSweeper" not in str(hc.sweeper.get("_target_")):
        # Optuna (like any optimising Hydra sweeper) needs each job to return one number.
        return objective(result, str(hc.sweeper.get("direction", "maximize")))
    return asdict(result)


def objective(result: RunResult, direction: str = "maximize") -> float:
    """The job's validation primary metric (tuning never looks at the test split). A job that did
    not finish scores the worst value for `direction`, so the sweeper moves away from it and the
    sweep goes on (Optuna refuses NaN)."""
    value = result.metrics.get(result.primary or "")
    if result.status in ("FINISHED", "SKIPPED") and value is not None and value == value:
        return float(value)
    return float("inf") if direction.lower().startswith("min") else float("-inf")


def jobs_sharing_this_machine(launcher: Any) -> int:
    """How many jobs of the sweep run at once on the machine running this one, so that
    `trainer.threads: 0` gives each cores / that many torch threads. joblib: `n_jobs` (-1 = one
    per core); Ray: the machine's cores / the CPUs Ray reserves per job (`ray.remote.num_cpus`,
    Ray's default 1), so a job uses the CPUs it was given; other launchers: one job per machine."""
    cores = os.cpu_count() or 1
    if "RayLauncher" in str(launcher.get("_target_", "")):
        ray = launcher.get("ray") or {}
        cpus = float((ray.get("remote") or {}).get("num_cpus") or 1)
        return max(1, int(cores // max(cpus, 1e-9)))
    n_jobs = int(launcher.get("n_jobs", 1) or 1)
    return cores if n_jobs < 0 else n_jobs


def run_job(cfg: DictConfig) -> RunResult:
    """One Hydra job: never raises in a sweep (a failed job must not stop the others)."""
    from attnbench.sweep import read_context

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    plain = OmegaConf.to_container(cfg, resolve=True)
    sweep_dir, job_dir = Path(hc.sweep.dir), Path(hc.runtime.output_dir)
    if Path.cwd() != Path(hc.runtime.cwd):  # a remote worker (Ray) runs elsewhere: same folders
        plain["runs_dir"] = to_absolute_path(str(plain["runs_dir"]))
        sweep_dir = Path(to_absolute_path(hc.sweep.dir))
        job_dir = sweep_dir / str(hc.sweep.subdir)
    sweep: SweepContext | None = read_context(str(sweep_dir)) if multirun else None
    n_jobs = jobs_sharing_this_machine(hc.launcher) if multirun else 1
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
    except IncompatibleError as err:
        if not multirun:
            STATE.error = err
        result = RunResult(job_name(plain), "SKIPPED", error=err.one_line())
    except Exception as err:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        wrapped = (err if isinstance(err, AttnbenchError)
                   else AttnbenchError(f"{type(err).__name__}: {err}"))
        run_id = getattr(err, "attnbench_run_id", None)  # set once the run exists in the store
        result = RunResult(job_name(plain), "FAILED", run_id, error=wrapped.one_line())
        if not multirun:
            STATE.error = wrapped
        elif sweep is not None and isinstance(err, ConfigError):
            result.run_id = _record_invalid_job(plain, sweep, wrapped.one_line())
    STATE.results.append(result)
    if multirun:  # the end-of-sweep table reads these, whichever process ran the job
        write_result(job_dir, result)
    return result


RESULT_FILE = "attnbench_result.json"


def write_result(job_dir: Path, result: RunResult) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / RESULT_FILE).write_text(json.dumps(asdict(result)))


def read_results(sweep_dir: str | Path) -> list[RunResult]:
    """Every job result written under a sweep folder, in job order."""
    found = sorted(Path(sweep_dir).glob(f"*/{RESULT_FILE}"),
                   key=lambda p: (len(p.parent.name), p.parent.name))
    return [RunResult(**json.loads(p.read_text())) for p in found]


def _record_invalid_job(cfg: dict[str, Any], sweep: SweepContext, reason: str) -> str | None:
    """A sweep job whose config is invalid still shows in the sweep, as a FAILED run with why
    (its run id; None if even that cannot be written: the job's result file still says why)."""
    from attnbench.tracking import Tracker

    try:
        tracker = Tracker(cfg["tracking"]["uri"], cfg["runs_dir"])
        run_id = tracker.start_run(
            tracker.experiment_id(sweep.experiment_name), job_name(cfg),
            {"attention": cfg["attention"]["name"], "backbone": cfg["backbone"]["name"],
             "task": cfg["task"]["name"], "seed": cfg["seed"], "attnbench.error": reason},
            sweep.parent_run_id,
        )
        tracker.end_run(run_id, "FAILED")
    except Exception:  # noqa: BLE001 - run_job must not raise in a sweep
        return None
    return run_id


# -- launching -------------------------------------------------------------------------------
def launch(args: Sequence[str], multirun: bool, debug: bool = False) -> int:
    """Run Hydra with `args`; returns the exit code. Raises ConfigError for invalid overrides,
    Interrupted on Ctrl-C (after closing the running job and the sweep as KILLED)."""
    args = list(args)
    with sigint_guard():
        try:
            if any(a.split("=")[0] in HYDRA_INFO_FLAGS for a in args):
                jobs = precheck_overrides(args, multirun)  # only what Hydra would choke on
                _one_job_to_show(args, jobs)
            else:
                check_overrides(args, multirun=multirun)
            STATE.reset()
            _run_hydra(args, multirun, debug)
        except KeyboardInterrupt:
            from attnbench.sweep import interrupt_active_sweep

            try:
                parent = interrupt_active_sweep()
            except Exception:  # noqa: BLE001 - the store is unusable: the next sweep finds it stale
                parent = None
            where = f"; sweep {parent[:8]} marked KILLED" if parent else ""
            raise Interrupted(
                "interrupted (Ctrl-C): an unfinished run is marked KILLED with its metrics so far "
                f"and checkpoints/last.pt; finished runs are kept{where}"
            ) from None
    if STATE.error is not None:
        raise STATE.error
    if STATE.sweep is not None and STATE.sweep.failed:
        return 1
    if multirun and STATE.sweep is None and any(r.status == "FAILED" for r in STATE.results):
        return 1  # the sweep callback failed (Hydra only warns): still report the failed jobs
    return 0


def _one_job_to_show(args: Sequence[str], jobs: Sequence[Sequence[str]]) -> None:
    """--cfg/--info show one job's config: a sweep of several jobs gets a one-line error."""
    shows_config = any(a.split("=")[0] in ("--cfg", "-c", "--info", "-i") for a in args)
    if shows_config and len(jobs) > 1:
        raise ConfigError(
            f"--cfg/--info show one job's config, and these overrides make {len(jobs)} jobs: "
            f"give each swept key one value to see that job, e.g. {' '.join(jobs[0])}"
        )


def _run_hydra(args: list[str], multirun: bool, debug: bool) -> None:
    argv, debug_env = sys.argv, os.environ.get(DEBUG_ENV)
    # --cfg/--info print instead of running; Hydra refuses them next to --multirun.
    info = any(a.split("=")[0] in HYDRA_INFO_FLAGS for a in args)
    sys.argv = ["attnbench", *(["--multirun"] if multirun and not info else []), *args]
    if debug:
        os.environ[DEBUG_ENV] = "1"
    try:
        main()
    finally:
        sys.argv = argv
        if debug_env is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = debug_env


@contextmanager
def sigint_guard() -> Iterator[None]:
    """First Ctrl-C raises KeyboardInterrupt (the job and the sweep are closed as KILLED);
    a second one, while that cleanup runs, exits at once with 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: Any) -> None:
        os._exit(130)

    def first(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, exit_now)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def expand_overrides(args: Sequence[str]) -> list[list[str]]:
    """The jobs a sweep will run, as override lists (for validation only; Hydra runs them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in args if not a.startswith("-")]
        )
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


def check_overrides(args: Sequence[str], multirun: bool = False) -> list[str]:
    """Compose and validate every job the overrides describe; raise ConfigError with all problems.

    In a sweep, cells whose backbone cannot run the task are skipped (returned as notes), unless
    every cell is such a cell.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from attnbench.training.build import build

    jobs = precheck_overrides(args, multirun)
    problems: list[str] = []
    notes: list[str] = []
    incompatible = 0
    servers: dict[str, str] = {}  # tracking server URI -> runs_dir, contacted once below
    GlobalHydra.instance().clear()
    data_cache: dict[str, Any] = {}
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for job in jobs:
            cfg, compose_problems = _compose_reporting(compose, job)
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
            key = repr(plain.get("task"))  # data problems do not depend on the seed: load once
            try:
                data_cache[key] = build(plain, data=data_cache.get(key)).data
            except IncompatibleError as err:
                if not multirun:
                    problems.extend(p for p in err.problems if p not in problems)
                elif err.one_line() not in notes:
                    notes.append(err.one_line())
                incompatible += 1
            except ConfigError as err:
                problems.extend(p for p in err.problems if p not in problems)
    GlobalHydra.instance().clear()
    problems.extend(_unreachable(servers))
    if incompatible and incompatible == len(jobs):
        problems.extend(notes)
    if problems:
        raise ConfigError(problems[0], problems)
    return notes


# Groups a run cannot do without (`experiment` is optional: null = no preset).
REQUIRED_GROUPS = ("attention", "backbone", "task", "trainer", "tracking")


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
            for a in _sweep_args(override_args(args))
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


def _preset_grid(cli: list[str]) -> list[str]:
    """The grid an experiment preset declares in `hydra.sweeper.params` (Hydra's basic sweeper
    runs it), minus the keys the command line sets itself: those win, as in Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(cli)
    except HydraException:
        return []  # reported by expand_overrides
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    if not any(o.key_or_group in ("experiment", "hydra/sweeper") for o in parsed):
        return []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            sweeper = compose("config", overrides=fixed, return_hydra_config=True).hydra.sweeper
    except Exception:  # noqa: BLE001 - composition problems are reported by check_overrides
        return []
    finally:
        GlobalHydra.instance().clear()
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper") or not sweeper.get("params"):
        return []
    given = {o.get_key_element().lstrip("+~") for o in parsed}
    return [f"{k}={v}" for k, v in sweeper.params.items() if k not in given]


# Hydra flags followed by a value (`--cfg job`, `-cn name`); `--info` takes an optional topic.
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--experimental-rerun")
INFO_TOPICS = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def override_args(args: Sequence[str]) -> list[str]:
    """`args` without Hydra's flags and their values: the overrides."""
    out: list[str] = []
    it = iter(enumerate(args))
    for i, a in it:
        if not a.startswith("-"):
            out.append(a)
        elif "=" not in a and (
            a in VALUE_FLAGS
            or (a in ("--info", "-i") and i + 1 < len(args) and args[i + 1] in INFO_TOPICS)
        ):
            next(it, None)  # skip the flag's value
    return out


def _sets_target(override: str) -> bool:
    """`+x._target_=...` or a dict value `+x={_target_: ...}`: would make Hydra import a name."""
    key, _, value = override.lstrip("+~").partition("=")
    return "_target_" in key.split(".") or "_target_:" in value.replace(" ", "")


def _sweep_args(args: Sequence[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    found = []
    for a in args:
        if a.startswith("-"):
            continue
        try:
            if parser.parse_override(a).is_sweep_override():
                found.append(a)
        except HydraException:
            pass  # reported by expand_overrides
    return found


def _compose_reporting(compose: Any, job: list[str]) -> tuple[DictConfig | None, list[str]]:
    """Compose `job`; on an unknown key, report it and compose again without that override, so
    the rest of the job is still validated (every problem in one message)."""
    problems: list[str] = []
    remaining = list(job)
    while True:
        try:
            return compose("config", overrides=remaining), problems
        except Exception as err:  # noqa: BLE001 - Hydra/OmegaConf composition errors
            problems.append(_compose_message(err))
            culprit = _culprit(err, remaining)
            if culprit is None:
                return None, problems
            remaining.remove(culprit)


def _culprit(err: Exception, overrides: list[str]) -> str | None:
    """The override a composition error is about (named by its key in Hydra's message)."""
    import re

    text = " ".join(str(err).split())
    verbs = "Could not override|An item is already at|Could not load|Could not find"
    m = re.search(rf"(?:{verbs}) '([^']+)'", text)
    if not m:
        return None
    key = m.group(1)
    for ov in overrides:
        ov_key = ov.lstrip("+~").partition("=")[0]
        if ov_key == key or key.startswith(ov_key.replace(".", "/") + "/"):
            return ov
    return None


def _unreachable(servers: dict[str, str]) -> list[str]:
    """Contact each tracking server once, before anything trains (fail fast)."""
    from attnbench.errors import TrackingError
    from attnbench.tracking import Tracker

    found = []
    for uri, runs_dir in servers.items():
        try:
            Tracker(uri, runs_dir).preflight()
        except TrackingError as err:
            found.append(err.one_line())
    return found


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
        options = ", ".join(group_options(group))
        return f"Unknown {group} '{m.group(1).split('/')[-1]}'. Valid options: {options}"
    not_found = r"Could not find '([^']+)/([^'/]*)' Available options in '[^']+': (.*?) Conf"
    m = re.search(not_found, text)
    if m:  # e.g. hydra/launcher=nope
        options = ", ".join(m.group(3).split())
        return f"Unknown {m.group(1)} '{m.group(2)}'. Valid options: {options}"
    return text.split(" Config search path")[0][:300]


def _valid_keys(parent: str) -> str:
    from hydra import compose

    try:
        node = compose("config", return_hydra_config=parent.startswith("hydra"))
        for part in filter(None, parent.split(".")):
            node = node[part]
        keys = sorted(k for k in node if k != "hydra" and not k.startswith("_"))
        return ", ".join(keys) or "(none)"
    except Exception:  # noqa: BLE001
        return "see attnbench run --cfg job"


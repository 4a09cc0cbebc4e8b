"""The Hydra application behind `attnbench run` and `attnbench sweep`: one job.

`launch` hands the command line to Hydra's own ``@hydra.main`` (a sweep is Hydra multirun), so the
whole override grammar, ``--cfg``, ``--info``, launchers and sweepers behave as Hydra users
expect. A job run in the launching process takes what the pre-flight validated and loaded for
its config (`preflight.Prepared`); any other (a worker process, a value an optimising sweeper
samples) validates its composed config into a `RunConfig` itself. Either runs `run_experiment`.
A job never raises in a sweep: a failed job must not stop the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from attnbench.config.groups import conf_dir
from attnbench.config.run_config import RunConfig
from attnbench.config.validate import validate
from attnbench.errors import AttnbenchError, ConfigError, IncompatibleError
from attnbench.run.experiment import SweepContext, run_experiment
from attnbench.run.preflight import Prepared
from attnbench.run.sweep import read_context, write_result
from attnbench.store.names import STAGE_TAG, RunIdentity, RunResult

DEBUG_ENV = "ATTNBENCH_DEBUG"


@dataclass
class Outcome:
    """What the jobs run in this process produced (read by `launch` once Hydra returns)."""

    results: list[RunResult] = field(default_factory=list)
    error: AttnbenchError | None = None  # a `run` that failed: its one-line error


def hydra_app(outcome: Outcome, prepared: Prepared | None = None) -> Callable[[], Any]:
    """attnbench's Hydra app: `@hydra.main` on conf/, whose jobs record into `outcome` and take
    what the pre-flight `prepared` for them.

    Launchers pickle the task function (with its `outcome`; `prepared` arrives empty) to their
    workers; results that must reach the launching process go through the sweep folder
    (`write_result`) instead.
    """
    prepared = prepared if prepared is not None else Prepared()

    def task(cfg: DictConfig) -> dict[str, Any] | float:
        result = run_job(cfg, outcome, prepared)
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN and "BasicSweeper" not in str(hc.sweeper.get("_target_")):
            # Optuna (like any optimising Hydra sweeper) needs each job to return one number.
            return objective(result, str(hc.sweeper.get("direction", "maximize")))
        return asdict(result)

    from attnbench.plugin_path import register_search_path

    register_search_path()  # plugin packages' config groups: attention=<plugin variant> composes
    return hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(task)


def objective(result: RunResult, direction: str = "maximize") -> float:
    """The job's validation primary metric (tuning never looks at the test split). A job that did
    not finish scores the worst value for `direction`, so the sweeper moves away from it and the
    sweep goes on (Optuna refuses NaN)."""
    value = result.metrics.get(result.primary or "")
    if result.status in ("FINISHED", "SKIPPED") and value is not None and value == value:
        return float(value)
    return float("inf") if direction.lower().startswith("min") else float("-inf")


JOBLIB = "JoblibLauncher"
AUTO_WORKERS = -1  # joblib's n_jobs default: attnbench chooses the workers (`local_workers`)
JOBS_PER_GPU = 1  # default workers per GPU: a job's time and memory figures stay its own


def jobs_sharing_this_machine(launcher: Any) -> int:
    """How many jobs of the sweep run at once on the machine running this one (`trainer.threads:
    0` gives each cores / that many torch threads; more than one: no progress bar, one GPU each).
    joblib: `n_jobs` (`launch` sets it from `local_workers`; another negative n is joblib's
    cores + 1 + n); Ray: the machine's cores / the CPUs Ray reserves per job
    (`ray.remote.num_cpus`, Ray's default 1), so a job uses the CPUs it was given; other
    launchers: one job per machine."""
    cores = os.cpu_count() or 1
    if "RayLauncher" in str(launcher.get("_target_", "")):
        ray = launcher.get("ray") or {}
        cpus = float((ray.get("remote") or {}).get("num_cpus") or 1)
        return max(1, int(cores // max(cpus, 1e-9)))
    if JOBLIB not in str(launcher.get("_target_", "")):
        return 1
    n_jobs = int(launcher.get("n_jobs", 1) or 1)
    return max(1, cores + 1 + n_jobs) if n_jobs < 0 else n_jobs


def local_workers(jobs: Sequence[RunConfig], *, parallel_sweeper: bool = False,
                  cores: int | None = None, gpus: int | None = None) -> int:
    """The workers of the default launcher (joblib, `n_jobs: -1`), from the machine and the jobs.

    CPU jobs: one worker per `trainer.threads` cores (the largest of the sweep; `0` counts as 1,
    as joblib's one job per core), so the workers' torch threads fill the cores without
    oversubscribing them. Jobs on a GPU (`cuda`, `cuda:N`, or `auto` where CUDA exists; `mps`
    counts as one GPU): JOBS_PER_GPU per GPU, so a job's time and memory figures are its own
    (several small jobs may share a GPU: `hydra.launcher.n_jobs=K` places K jobs round-robin on
    the GPUs; the numbers stay the same, the timings become shared). Never more workers than
    jobs (a one-job sweep runs in this process, as joblib does with one worker), except with
    an optimising sweeper (`parallel_sweeper`), whose trials the pre-flight does not count.
    """
    from attnbench.training.device import resolve_device
    from attnbench.training.seeding import available_cores

    cores = available_cores() if cores is None else cores
    threads = max((job.trainer.threads for job in jobs), default=1) or 1
    workers = max(1, cores // threads)
    devices = {resolve_device(job.trainer.device).type for job in jobs}
    if "cuda" in devices:
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count()
        workers = min(workers, max(1, gpus) * JOBS_PER_GPU)
    elif "mps" in devices:
        workers = min(workers, JOBS_PER_GPU)
    return workers if parallel_sweeper else max(1, min(workers, len(jobs)))


def workers_override(launcher: Any, sweeper: Any, jobs: Sequence[RunConfig]) -> list[str]:
    """The Hydra override `launch` adds to a sweep on joblib with `n_jobs: -1` (the default):
    `hydra.launcher.n_jobs=<local_workers(...)>`; nothing for any other launcher or count."""
    if not jobs or not isinstance(launcher, dict) or JOBLIB not in str(launcher.get("_target_")):
        return []
    if launcher.get("n_jobs") != AUTO_WORKERS:
        return []
    target = str((sweeper or {}).get("_target_", "")) if isinstance(sweeper, dict) else ""
    workers = local_workers(jobs, parallel_sweeper=bool(target) and "BasicSweeper" not in target)
    return [f"hydra.launcher.n_jobs={workers}"]


def with_job_device(cfg: RunConfig, hc: Any, parallel_jobs: int) -> RunConfig:
    """Parallel joblib workers on a machine with several GPUs get one GPU each, round-robin by
    job number, when the trainer asks for `auto` or `cuda`. SLURM and Ray jobs see only the GPUs
    they reserved (CUDA_VISIBLE_DEVICES), so `auto`/`cuda` is already theirs."""
    if parallel_jobs <= 1 or cfg.trainer.device not in ("auto", "cuda"):
        return cfg
    if JOBLIB not in str(hc.launcher.get("_target_", "")):
        return cfg
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return cfg
    device = f"cuda:{int(hc.job.num) % count}"
    return replace(cfg, trainer=replace(cfg.trainer, device=device))


def run_job(cfg: DictConfig, outcome: Outcome, prepared: Prepared | None = None) -> RunResult:
    """One Hydra job: never raises in a sweep (a failed job must not stop the others)."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    plain = OmegaConf.to_container(cfg, resolve=True)
    sweep_dir, job_dir = Path(hc.sweep.dir), Path(hc.runtime.output_dir)
    if Path.cwd() != Path(hc.runtime.cwd):  # a remote worker (Ray) runs elsewhere: same folders
        plain["runs_dir"] = to_absolute_path(str(plain["runs_dir"]))
        sweep_dir = Path(to_absolute_path(hc.sweep.dir))
        job_dir = sweep_dir / str(hc.sweep.subdir)
    sweep: SweepContext | None = read_context(sweep_dir) if multirun else None
    n_jobs = jobs_sharing_this_machine(hc.launcher) if multirun else 1
    ident = _identity(plain, sweep)
    stage = {STAGE_TAG: sweep.stage} if sweep is not None and sweep.stage else None
    checked = prepared.take(plain) if prepared is not None else None
    try:
        result = run_experiment(
            with_job_device(checked.cfg if checked else validate(plain), hc, n_jobs),
            loaded=checked.loaded if checked else None,
            overrides=list(hc.overrides.task),
            sweep=sweep,
            show_progress=n_jobs == 1,
            parallel_jobs=n_jobs,
            tags=stage,
        )
    except KeyboardInterrupt:
        raise
    except IncompatibleError as err:
        if not multirun:
            outcome.error = err
        result = RunResult(ident.run_name, "SKIPPED", error=err.one_line(), identity=ident.tags())
    except Exception as err:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        wrapped = (err if isinstance(err, AttnbenchError)
                   else AttnbenchError(f"{type(err).__name__}: {err}"))
        run_id = getattr(err, "attnbench_run_id", None)  # set once the run exists in the store
        result = RunResult(ident.run_name, "FAILED", run_id, error=wrapped.one_line(),
                           identity=ident.tags())
        if not multirun:
            outcome.error = wrapped
        elif sweep is not None and isinstance(err, ConfigError) and run_id is None:
            result.run_id = _record_invalid_job(plain, ident, sweep, wrapped.one_line())
    result.overrides = list(hc.overrides.task)
    outcome.results.append(result)
    if multirun:  # the end-of-sweep table (and a tuned sweep) reads these, whichever process ran it
        write_result(job_dir, result)
    return result


def _identity(plain: dict[str, Any], sweep: SweepContext | None) -> RunIdentity:
    """The job's identity from its composed config (before validation: for failed jobs too)."""
    from attnbench.store.names import swept_values

    def name(group: str) -> str:
        node = plain.get(group)
        return str(node.get("name", "?")) if isinstance(node, dict) else "?"

    seed = plain.get("seed")
    return RunIdentity(name("attention"), name("backbone"), name("task"),
                       seed if isinstance(seed, int) else -1,
                       swept_values(plain, sweep.swept) if sweep else {})


def _record_invalid_job(
    cfg: dict[str, Any], ident: RunIdentity, sweep: SweepContext, reason: str
) -> str | None:
    """A sweep job whose config is invalid still shows in the sweep, as a FAILED run with why
    (its run id; None if even that cannot be written: the job's result file still says why)."""
    from attnbench.store.names import ERROR_TAG
    from attnbench.store.tracker import Tracker

    try:
        tracker = Tracker(cfg["tracking"]["uri"], cfg["runs_dir"])
        run_id = tracker.start_run(
            tracker.experiment_id(sweep.experiment_name), ident.run_name,
            {**ident.tags(), ERROR_TAG: reason}, sweep.parent_run_id,
        )
        tracker.end_run(run_id, "FAILED")
    except Exception:  # noqa: BLE001 - run_job must not raise in a sweep
        return None
    return run_id

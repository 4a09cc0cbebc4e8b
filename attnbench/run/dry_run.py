"""`attnbench sweep --dry-run`: the jobs a sweep would launch, one line each with its overrides
(numbered as Hydra numbers them), and with `--resume` which cells it would skip because a FINISHED
run with the same content hash is in the store. The command line is checked exactly as a real
sweep is (`run.preflight`), then nothing runs: no job is trained, no sweep folder is made, and
nothing is written to the store (a missing local store is not created; the store is read to find
the finished cells only with `--resume`).

An optimising sweeper (Optuna) chooses its trials as it runs, so its jobs cannot be listed: the
dry run names the sampled keys and the number of trials instead. A tuned sweep (`--tune`) lists
its tuning stage; the final stage's jobs depend on what the tuning chooses.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from attnbench.config.grid import MAX_CHECKED_JOBS
from attnbench.config.run_config import RunConfig
from attnbench.run.preflight import check_overrides

LISTED = 10_000  # every job of a sweep attnbench accepts (`config.grid.MAX_JOBS`)


def show_plan(args: Sequence[str], multirun: bool, plan: Any = None) -> int:
    """Check `args` like the real command, print its jobs (and `--resume`'s skips); exit code."""
    from attnbench.config.compose import parse_hydra_args
    from attnbench.console import console

    if plan is not None:  # a tuned sweep: its tuning stage
        args = [*plan.stage1(), *plan.hydra_overrides, *plan.flags]
    checked = check_overrides(args, multirun=multirun, create_store=False)
    hargs = parse_hydra_args(args)
    master = _master(hargs)
    sweeper = str(master.hydra.sweeper.get("_target_", "")).rsplit(".", 1)[-1]
    jobs = list(_jobs(hargs)) if multirun else [list(hargs.overrides)]
    task_jobs = [[o for o in job if not _hydra_key(o) and not o.startswith("resume=")]
                 for job in jobs]  # (--resume is said below)
    settings = [o for o in hargs.overrides if _hydra_key(o) and "=" in o]
    lines = []
    resume = bool(checked.jobs) and checked.jobs[0].resume
    skipped = _skipped(checked.jobs, master, hargs) if resume else {}
    if multirun and sweeper != "BasicSweeper":
        params = ", ".join(str(k) for k in (master.hydra.sweeper.get("params") or {}))
        trials = master.hydra.sweeper.get("n_trials", "?")
        lines.append(f"dry run: {sweeper} chooses {trials} trials as it runs (sampling {params}); "
                     "each trial runs with: " + " ".join(task_jobs[0]))
    else:
        what = "tuning stage of a tuned sweep" if plan is not None else "sweep"
        lines.append(f"dry run: the {what} would launch {len(jobs)} job"
                     f"{'s' if len(jobs) != 1 else ''}; nothing is trained or written")
        # the validated jobs are the grid's first MAX_CHECKED_JOBS, in order, unless a backbone
        # cannot run a cell's task (skipped with a note): then they are named, not numbered
        paired = not checked.notes and len(checked.jobs) == min(len(jobs), MAX_CHECKED_JOBS)
        for i, job in enumerate(task_jobs):
            cfg = checked.jobs[i] if paired and i < len(checked.jobs) else None
            mark = f"   (skip: {skipped[id(cfg)]})" if cfg is not None and id(cfg) in skipped \
                else ""
            lines.append(f"  #{i} : {' '.join(job)}{mark}")
        if not paired:
            lines += [f"  skip: {name} ({why})" for name, why in _named(skipped, checked.jobs)]
    if settings:
        lines.append("  Hydra settings: " + " ".join(settings))
    lines += [f"  note: {note}" for note in checked.notes]  # cells a backbone cannot run
    if plan is not None:
        lines.append(f"  then the final stage: each group's best {', '.join(plan.params)} on "
                     f"seeds {', '.join(map(str, plan.final_seeds)) or '(none left)'}")
    if resume:
        left = len(checked.jobs) - len(skipped)
        lines.append(f"--resume would skip {len(skipped)} of {len(checked.jobs)} cells (a "
                     f"FINISHED run with the same config hash) and train or continue {left}")
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return 0


def _hydra_key(override: str) -> bool:
    return override.lstrip("+~").startswith(("hydra.", "hydra/"))


def _jobs(hargs: Any) -> Any:
    """Every job of the grid, as Hydra's basic sweeper orders them: a preset's grid first,
    then the command line's overrides (`run.sources.preset_grid`)."""
    from attnbench.config.grid import check_grid, values_per_key
    from attnbench.run.sources import preset_grid

    cli = list(hargs.overrides)
    grid = [*preset_grid(cli, hargs), *cli]
    check_grid(grid)
    return itertools.islice(itertools.product(*values_per_key(grid)), LISTED)


def _master(hargs: Any) -> Any:
    """The sweep's master config (its sweeper, its grid keys)."""
    from attnbench.config.compose import compose_multirun, hydra_compose
    from attnbench.run.sources import sources

    with hydra_compose(**sources(hargs)):
        return compose_multirun(hargs.config_name, list(hargs.overrides))


def _skipped(jobs: Sequence[RunConfig], master: Any, hargs: Any) -> dict[int, str]:
    """{id(job): why} for the validated jobs `--resume` would skip: a FINISHED run with the same
    content hash in the sweep's experiment. Read-only: a store or experiment that does not
    exist yet has nothing to skip."""
    from pathlib import Path

    from attnbench.run.sweep import grid_keys, sweep_experiment, swept_keys

    first = jobs[0]
    if first.tracking.uri is None and not (Path(first.runs_dir) / "mlflow.db").is_file():
        return {}
    from attnbench.store.queries import finished_run, open_store

    tracker = open_store(first.runs_dir, first.tracking.uri)
    varied = swept_keys(list(hargs.overrides)) | grid_keys(master)
    exp_id = tracker.find_experiment(sweep_experiment(first.experiment_name, varied,
                                                      first.task.name))
    if exp_id is None:
        return {}
    found, fingerprints = {}, {}
    for job in jobs:
        run = finished_run(tracker, exp_id, content_hash(job, fingerprints))
        if run is not None:
            found[id(job)] = f"FINISHED run {run.run_id[:8]}, same config hash"
    return found


def content_hash(cfg: RunConfig, fingerprints: dict[str, str]) -> str:
    """The job's content hash as its run computes it (`store.names.config_hash`): the config,
    the code that trains it and the fingerprint of its data (loaded to be fingerprinted, once
    per task and seed: `fingerprints`)."""
    from attnbench import __version__
    from attnbench.config.build import build_task
    from attnbench.run import provenance
    from attnbench.store.names import config_hash

    code = f"{__version__}+{provenance.code_hash(cfg)}"
    key = repr((cfg.task, cfg.seed))
    if key not in fingerprints:
        fingerprints[key] = build_task(cfg.task).load(cfg.seed).fingerprint
    return config_hash(cfg.to_dict(), code, fingerprints[key])


def _named(skipped: dict[int, str], jobs: Sequence[RunConfig]) -> list[tuple[str, str]]:
    from attnbench.run.experiment import identity

    return [(identity(job).run_name, skipped[id(job)]) for job in jobs if id(job) in skipped]

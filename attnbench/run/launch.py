"""`attnbench run` / `attnbench sweep`: pre-flight, then Hydra, then the exit code.

`launch` validates every job first (`run.preflight`), runs Hydra's app (`run.app`) with the
command line, and turns what the jobs left behind into an exit code: the `Outcome` of the jobs
run in this process, and, for a sweep, its parent run's status in the store. Ctrl-C closes the
running job and the sweep as KILLED.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from attnbench.console import VERBOSE_ENV
from attnbench.errors import AttnbenchError, Interrupted, RunFailed
from attnbench.run.app import DEBUG_ENV, Outcome, hydra_app, workers_override
from attnbench.run.preflight import Preflight, check_overrides, precheck_overrides
from attnbench.run.sweep import LABELS_ENV, SweepLabels
from attnbench.store.names import RunResult

FULL_ERROR = "HYDRA_FULL_ERROR"
# Hydra flags that print something instead of running jobs: nothing to validate first.
HYDRA_INFO_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--help", "-h",
                    "--shell-completion", "-sc")
# `-v`: Hydra's own logging configs (INFO on the terminal) instead of attnbench's quiet ones
HYDRA_LOGGING = ("hydra/job_logging=default", "hydra/hydra_logging=default")


def launch(args: Sequence[str], multirun: bool, debug: bool = False, tune: Sequence[str] = (),
           tune_seeds: str | None = None, *, verbose: bool = False,
           labels: SweepLabels | None = None, dry_run: bool = False) -> int:
    """Run Hydra with `args`; returns the exit code. Raises ConfigError for invalid overrides,
    Interrupted on Ctrl-C (after closing the running job and the sweep as KILLED).

    A sweep with `tune` flags (`KEY=V1,V2,...`) or a preset's `tune:` node runs the tuned
    protocol (`run.tune`): a tuning stage, then the chosen values on every seed. `verbose`:
    Hydra's own logging configs instead of attnbench's quiet ones (conf/hydra/*_logging), and
    the libraries' output (`console.verbose`). `labels`: the sweep's name, tags and note
    (`run.sweep.SweepLabels`). `dry_run`: print the jobs (and what `--resume` would skip) after
    the pre-flight, and run nothing (`run.dry_run`)."""
    env = {VERBOSE_ENV: "1" if verbose else None,
           LABELS_ENV: labels.to_env() if labels and multirun else None}
    with environ(env):
        return _launch(loud(args) if verbose else list(args), multirun, debug, tune,
                       tune_seeds, dry_run)


def loud(args: Sequence[str]) -> list[str]:
    """`args` with Hydra's own logging configs (INFO lines on the terminal), unless the command
    line chooses a logging config itself."""
    chosen = {a.lstrip("+~").partition("=")[0] for a in args}
    return [*(o for o in HYDRA_LOGGING if o.partition("=")[0] not in chosen), *args]


@contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (a value) or unset (None) environment variables for the block, then put them back;
    processes started meanwhile (joblib's workers) inherit them."""
    def put(settings: Mapping[str, str | None]) -> None:
        for key, value in settings.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    before = {k: os.environ.get(k) for k in values}
    try:
        put(values)
        yield
    finally:
        put(before)


def _launch(args: list[str], multirun: bool, debug: bool, tune: Sequence[str],
            tune_seeds: str | None, dry_run: bool) -> int:
    from attnbench.run import tune as tuned

    outcome = Outcome()
    checked = Preflight()
    started_ms = int(time.time() * 1000)
    with sigint_guard():
        try:
            plan = None
            if any(a.split("=")[0] in HYDRA_INFO_FLAGS for a in args):
                precheck_overrides(args, multirun)  # what Hydra would choke on, the shown config
            else:
                plan = tuned.plan(args, tune, tune_seeds) if multirun else None
                if dry_run:  # checked the same way, nothing run or written
                    from attnbench.run.dry_run import show_plan

                    return show_plan(args, multirun, plan)
                checked = plan.preflight() if plan else check_overrides(args, multirun=multirun)
            if plan is not None:
                tuned.run(plan, lambda stage: _run_hydra_reported(stage, True, debug, outcome,
                                                                  checked), _store(checked))
            else:
                _run_hydra_reported(args, multirun, debug, outcome, checked)
        except KeyboardInterrupt:
            parent = _interrupt_sweep(checked)
            where = f"; sweep {parent[:8]} marked KILLED" if parent else ""
            raise Interrupted(
                "interrupted (Ctrl-C): an unfinished run is marked KILLED with its metrics so far "
                f"and checkpoints/last.pt; finished runs are kept{where}"
            ) from None
    if outcome.error is not None:
        raise outcome.error
    if not multirun:
        for result in outcome.results:
            print_summary(result)
    if not multirun or not checked.jobs:
        return 0
    status = _sweep_status(checked, started_ms)
    if status is not None:
        return 1 if status == "FAILED" else 0
    # the sweep callback failed (Hydra only warns): still report the failed jobs
    return 1 if any(r.status == "FAILED" for r in outcome.results) else 0


def print_summary(result: RunResult) -> None:
    """What `run` prints when it ends (stdout, terminal or not): the run, its primary validation
    and test metric, its training time, and where to look next."""
    from attnbench.console import console
    from attnbench.store.names import COST_TRAIN_S

    primary = result.primary or ""
    test = "test/" + primary.partition("/")[2]
    shown = [f"{key} {result.metrics[key]:.4f}" for key in (primary, test)
             if key in result.metrics]
    if COST_TRAIN_S in result.metrics:
        shown.append(f"train {result.metrics[COST_TRAIN_S]:.1f} s")
    lines = [f"{result.status.lower()}: {result.name} (run {result.run_id})"]
    if shown:
        lines.append("  " + ", ".join(shown))
    if result.experiment:
        lines.append(f"  look: attnbench ui  |  attnbench compare -e {result.experiment}")
    for line in lines:
        console.print(line, highlight=False, markup=False)


def _store(checked: Preflight) -> Any:
    from attnbench.store.tracker import Tracker

    first = checked.jobs[0]
    return Tracker(first.tracking.uri, first.runs_dir)


def _sweep_status(checked: Preflight, since_ms: int) -> str | None:
    """The status of the sweep this launch opened (None if it opened none)."""
    from attnbench.run.sweep import sweeps_of_this_process

    try:
        sweeps = sweeps_of_this_process(_store(checked))
    except Exception:  # noqa: BLE001 - an unusable store was already reported by the jobs
        return None
    from attnbench.store.liveness import taken_ms  # a resumed sweep reopens an earlier parent

    mine = [s for s in sweeps if taken_ms(s.tags, s.start_time) >= since_ms - 1000]
    return mine[0].status if mine else None


def _interrupt_sweep(checked: Preflight) -> str | None:
    from attnbench.run.sweep import interrupt_sweeps

    if not checked.jobs:
        return None
    try:
        return interrupt_sweeps(_store(checked))
    except Exception:  # noqa: BLE001 - the store is unusable: the next sweep finds it stale
        return None


def _run_hydra_reported(args: list[str], multirun: bool, debug: bool, outcome: Outcome,
                        checked: Preflight) -> None:
    """`_run_hydra`, with a failure of Hydra itself (a launcher or a folder the pre-flight could
    not foresee) as one line, exit 1, and the sweep this process opened closed as FAILED instead
    of left RUNNING (Hydra would print its traceback and exit)."""
    if multirun:  # the default launcher's workers, chosen from the cores or GPUs (run.app)
        args = [*workers_override(checked.launcher, checked.sweeper, checked.jobs), *args]
    try:
        _run_hydra(args, multirun, debug, outcome, checked)
    except (KeyboardInterrupt, AttnbenchError):
        raise
    except Exception as err:
        if debug:
            raise
        first = (str(err).strip().splitlines() or [""])[0]
        parent = _close_sweep(checked, f"Hydra failed: {type(err).__name__}: {first}")
        where = f"; sweep {parent[:8]} marked FAILED" if parent else ""
        raise RunFailed(f"Hydra failed before the jobs could run: {type(err).__name__}: "
                        f"{first}{where}") from err


def _close_sweep(checked: Preflight, reason: str) -> str | None:
    from attnbench.run.sweep import interrupt_sweeps

    if not checked.jobs:
        return None
    try:
        return interrupt_sweeps(_store(checked), reason, status="FAILED")
    except Exception:  # noqa: BLE001 - the store is unusable: the next sweep finds it stale
        return None


def _run_hydra(args: list[str], multirun: bool, debug: bool, outcome: Outcome,
               checked: Preflight) -> None:
    argv, debug_env = sys.argv, os.environ.get(DEBUG_ENV)
    full_error = os.environ.get(FULL_ERROR)
    os.environ[FULL_ERROR] = "1"  # Hydra raises instead of printing a traceback and exiting
    # --cfg/--info print instead of running; Hydra refuses them next to --multirun.
    info = any(a.split("=")[0] in HYDRA_INFO_FLAGS for a in args)
    sys.argv = ["attnbench", *(["--multirun"] if multirun and not info else []), *args]
    if debug:
        os.environ[DEBUG_ENV] = "1"
    try:
        hydra_app(outcome, checked.prepared)()  # the jobs take what the pre-flight proved
    finally:
        sys.argv = argv
        if full_error is None:
            os.environ.pop(FULL_ERROR, None)
        else:
            os.environ[FULL_ERROR] = full_error
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



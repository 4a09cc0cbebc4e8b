"""One experiment, end to end: validate, build, train, evaluate, log to MLflow.

`run_experiment(cfg)` is the plain function behind `attnbench run` and every sweep job; tests
call it directly. Config problems raise `ConfigError` before any run exists in the store; a
failure after the run started marks it FAILED (or KILLED on Ctrl-C) with the reason as a tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench import OPENMP_WAIT, __version__
from attnbench.config import flatten
from attnbench.errors import AttnbenchError
from attnbench.naming import run_name

# Keys that do not change what is trained (where results go, how progress is shown).
HASH_EXCLUDE = ("tracking", "runs_dir", "resume", "experiment_name", "hydra")


@dataclass
class SweepContext:
    """What a sweep job needs to know about its sweep (written by the sweep callback)."""

    parent_run_id: str
    experiment_name: str
    # Keys the sweep varies besides attention/backbone/task/seed: they go into run names.
    swept: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    name: str
    status: str  # FINISHED | FAILED | KILLED | SKIPPED
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    primary: str | None = None  # e.g. "val/acc": what an optimising sweeper (Optuna) maximises


def config_hash(cfg: Mapping[str, Any], data_fingerprint: str) -> str:
    """Content hash of what is trained: resolved config + package version + data fingerprint."""
    content = {k: v for k, v in cfg.items() if k not in HASH_EXCLUDE}
    content["trainer"] = {k: v for k, v in content["trainer"].items() if k != "progress"}
    blob = json.dumps([content, __version__, data_fingerprint], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def job_name(cfg: Mapping[str, Any], swept: Sequence[str] = ()) -> str:
    """`<attention>-<backbone>-<task>-s<seed>`, plus `-<key><value>` for each other swept key
    (e.g. `multihead-transformer-assoc_recall-s0-heads4`) so the cells of a sweep differ."""
    name = run_name(
        cfg["attention"]["name"], cfg["backbone"]["name"], cfg["task"]["name"], cfg["seed"]
    )
    for key in swept:
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Mapping):
            name += f"-{key.split('.')[-1]}{node}"
    return name


def experiment_name(cfg: Mapping[str, Any]) -> str:
    return str(cfg.get("experiment_name") or cfg["task"]["name"])


def run_experiment(
    cfg: Mapping[str, Any],
    *,
    overrides: Sequence[str] = (),
    sweep: SweepContext | None = None,
    show_progress: bool = False,
    parallel_jobs: int = 1,
    tags: Mapping[str, str] | None = None,
) -> RunResult:
    """Train and evaluate one config (a plain dict without the `hydra` node)."""
    import yaml

    from attnbench.console import RichProgress
    from attnbench.diagnostics import log_diagnostics
    from attnbench.tracking import LAST_FILE_TAG, Tracker, process_tags
    from attnbench.training.build import build
    from attnbench.training.checkpoint import save_checkpoint
    from attnbench.training.loop import fit
    from attnbench.training.seeding import seed_everything, set_threads

    cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    name = job_name(cfg, sweep.swept if sweep else ())
    seed = int(cfg["seed"])
    seed_everything(seed, bool(cfg["trainer"].get("deterministic", True)))
    threads = set_threads(int(cfg["trainer"].get("threads", 0)), parallel_jobs)
    built = build(cfg)  # every config/data problem, before the store is touched
    tracker = Tracker(cfg["tracking"]["uri"], cfg["runs_dir"])
    exp_name = sweep.experiment_name if sweep else experiment_name(cfg)
    chash = config_hash(cfg, built.data.fingerprint)
    if cfg.get("resume"):
        from attnbench.resume import skip_if_finished

        parent = sweep.parent_run_id if sweep else None
        skipped = skip_if_finished(tracker, tracker.experiment_id(exp_name), chash, name, parent)
        if skipped is not None:
            return skipped
    run_tags = {
        "attention": cfg["attention"]["name"],
        "backbone": cfg["backbone"]["name"],
        "task": cfg["task"]["name"],
        "seed": seed,
        "attnbench.config_hash": chash,
        "attnbench.version": __version__,
        "attnbench.data_fingerprint": built.data.fingerprint,
        "attnbench.threads": threads,
        "attnbench.openmp_wait": OPENMP_WAIT,
        "attnbench.primary_metric": built.data.primary_metric,
        **process_tags(),  # pid + host: a run left RUNNING by a killed process is found stale
        **(tags or {}),
    }
    # The weights at the end of the latest epoch, kept locally and logged only if the run is
    # interrupted or fails (checkpoints/last.pt): Ctrl-C does not throw away finished epochs.
    scratch = tempfile.TemporaryDirectory(prefix="attnbench-")
    last = LastCheckpoint(Path(scratch.name) / "last.pt")

    def keep_last(epoch: int, best_state: dict[str, Any]) -> None:
        save_checkpoint(built.model.state_dict(), last.path)
        last.path.with_suffix(".epoch").write_text(str(epoch))
        if not last.epoch:  # say where it is: whoever closes a killed run (sweep, stale check)
            run_id = _opened(opening)  # can still keep it
            if run_id is not None:
                tracker.set_tags(run_id, {LAST_FILE_TAG: str(last.path)})
        last.epoch = epoch

    def open_run() -> str:
        run_id = tracker.start_run(
            tracker.experiment_id(exp_name), name, run_tags, sweep.parent_run_id if sweep else None
        )
        try:
            tracker.log_params(run_id, flatten(cfg))
            tracker.log_text(run_id, yaml.safe_dump(cfg, sort_keys=False), "config/config.yaml")
            tracker.log_text(run_id, yaml.safe_dump(list(overrides)), "config/overrides.yaml")
        except BaseException as err:
            _close(tracker, run_id, "FAILED", _reason(err), last)
            raise
        return run_id

    # MLflow's import and the run's creation (2-4 s of CPU, half a small run's start-up) happen
    # on a thread once training runs; metrics wait in the sink until the run exists, and the
    # first validation waits for the thread (see `fit`'s before_eval).
    opening = tracker.open_run(open_run)
    try:
        progress = RichProgress(name) if show_progress and cfg["trainer"].get("progress") else None
        result = fit(
            built.model, built.data, built.trainer, seed, tracker.sink(opening), progress,
            on_epoch_end=keep_last, before_eval=opening.result,
        )
        run_id = opening.result()
        final = {f"test/{k}": v for k, v in result.test.items()}
        final |= {f"cost/{k}": v for k, v in result.cost.items()}
        final |= log_diagnostics(built.model, built.data, built.trainer, tracker, run_id)
        tracker.log_metrics(run_id, final, result.steps)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / "best.pt"
            save_checkpoint(result.best_state, ckpt)
            tracker.log_artifact(run_id, ckpt, "checkpoints")
        tracker.set_tags(run_id, {"attnbench.best_epoch": result.best_epoch})
        tracker.end_run(run_id, "FINISHED")
        metrics = final | {f"val/{k}": v for k, v in result.val.items()}
        primary = f"val/{built.data.primary_metric}"
        return RunResult(name, "FINISHED", run_id, metrics, primary=primary)
    except KeyboardInterrupt:
        run_id = _opened(opening)
        if run_id is not None:
            _close(tracker, run_id, "KILLED", "interrupted (Ctrl-C)", last)
        raise
    except BaseException as err:
        run_id = _opened(opening)
        if run_id is None:  # the run could not be opened: nothing to close
            raise
        _close(tracker, run_id, "FAILED", _reason(err), last)
        with contextlib.suppress(AttributeError):  # the sweep table matches failure to run
            err.attnbench_run_id = run_id  # type: ignore[attr-defined]
        raise
    finally:
        scratch.cleanup()


def _reason(err: BaseException) -> str:
    return err.one_line() if isinstance(err, AttnbenchError) else f"{type(err).__name__}: {err}"


def _opened(opening: Any) -> str | None:
    """The id of a run that may still be opening (waits for it); None if it could not open
    (its own error closed whatever it had created)."""
    try:
        return opening.result()
    except Exception:  # noqa: BLE001 - reported by the caller's error
        return None


@dataclass
class LastCheckpoint:
    path: Path
    epoch: int = 0


def _close(tracker: Any, run_id: str, status: str, reason: str, last: LastCheckpoint) -> None:
    """End a run that did not finish: the reason as a tag, the last epoch's weights kept."""
    try:
        tracker.set_tags(run_id, {"attnbench.error": reason.splitlines()[0] if reason else status})
        if last.epoch and last.path.is_file():
            with contextlib.suppress(Exception):  # the status matters more than the weights
                tracker.log_artifact(run_id, last.path, "checkpoints")
                tracker.set_tags(run_id, {"attnbench.last_epoch": last.epoch})
    finally:
        tracker.end_run(run_id, status)

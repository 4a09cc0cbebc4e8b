"""One experiment, end to end: validate, build, train, evaluate, log to MLflow.

`run_experiment(cfg)` is the plain function behind `attnbench run` and every sweep job; tests
call it directly. Config problems raise `ConfigError` before any run exists in the store; a
failure after the run started marks it FAILED (or KILLED on Ctrl-C) with the reason as a tag.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench import __version__
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


@dataclass
class RunResult:
    name: str
    status: str  # FINISHED | FAILED | KILLED | SKIPPED
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def config_hash(cfg: Mapping[str, Any], data_fingerprint: str) -> str:
    """Content hash of what is trained: resolved config + package version + data fingerprint."""
    content = {k: v for k, v in cfg.items() if k not in HASH_EXCLUDE}
    content["trainer"] = {k: v for k, v in content["trainer"].items() if k != "progress"}
    blob = json.dumps([content, __version__, data_fingerprint], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def job_name(cfg: Mapping[str, Any]) -> str:
    return run_name(cfg["attention"]["name"], cfg["backbone"]["name"], cfg["task"]["name"], cfg["seed"])


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
    import torch
    import yaml

    from attnbench.console import RichProgress
    from attnbench.tracking import Tracker
    from attnbench.training.build import build
    from attnbench.training.loop import fit
    from attnbench.training.seeding import seed_everything, set_threads

    cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    name = job_name(cfg)
    seed = int(cfg["seed"])
    seed_everything(seed, bool(cfg["trainer"].get("deterministic", True)))
    threads = set_threads(int(cfg["trainer"].get("threads", 0)), parallel_jobs)
    built = build(cfg)  # every config/data problem, before the store is touched
    tracker = Tracker(cfg["tracking"]["uri"], cfg["runs_dir"])
    tracker.connect()
    exp_id = tracker.experiment_id(sweep.experiment_name if sweep else experiment_name(cfg))
    chash = config_hash(cfg, built.data.fingerprint)
    run_tags = {
        "attention": cfg["attention"]["name"],
        "backbone": cfg["backbone"]["name"],
        "task": cfg["task"]["name"],
        "seed": seed,
        "attnbench.config_hash": chash,
        "attnbench.version": __version__,
        "attnbench.data_fingerprint": built.data.fingerprint,
        "attnbench.threads": threads,
        "attnbench.primary_metric": built.data.primary_metric,
        **(tags or {}),
    }
    run_id = tracker.start_run(exp_id, name, run_tags, sweep.parent_run_id if sweep else None)
    try:
        tracker.log_params(run_id, flatten(cfg))
        tracker.log_text(run_id, yaml.safe_dump(cfg, sort_keys=False), "config/config.yaml")
        tracker.log_text(run_id, yaml.safe_dump(list(overrides)), "config/overrides.yaml")
        progress = RichProgress(name) if show_progress and cfg["trainer"].get("progress") else None
        result = fit(built.model, built.data, built.trainer, seed, tracker.sink(run_id), progress)
        final = {f"test/{k}": v for k, v in result.test.items()}
        final |= {f"cost/{k}": v for k, v in result.cost.items()}
        tracker.log_metrics(run_id, final, result.steps)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / "best.pt"
            torch.save(result.best_state, ckpt)
            tracker.log_artifact(run_id, ckpt, "checkpoints")
        tracker.set_tags(run_id, {"attnbench.best_epoch": result.best_epoch})
        tracker.end_run(run_id, "FINISHED")
        metrics = final | {f"val/{k}": v for k, v in result.val.items()}
        return RunResult(name, "FINISHED", run_id, metrics)
    except KeyboardInterrupt:
        _close(tracker, run_id, "KILLED", "interrupted (Ctrl-C)")
        raise
    except BaseException as err:
        reason = err.one_line() if isinstance(err, AttnbenchError) else f"{type(err).__name__}: {err}"
        _close(tracker, run_id, "FAILED", reason)
        raise


def _close(tracker: Any, run_id: str, status: str, reason: str) -> None:
    try:
        tracker.set_tags(run_id, {"attnbench.error": reason.splitlines()[0] if reason else status})
    finally:
        tracker.end_run(run_id, status)

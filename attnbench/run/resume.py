"""`attnbench sweep ... --resume`: skip cells that already have a FINISHED run with the same
content hash (`store.schema.config_hash`: resolved config + package version + data fingerprint).

A skipped cell makes no new run. So that the resumed sweep still shows (and `compare` still
counts) every cell of its grid, the existing run is tagged `RESUMED_BY_TAG` with the new sweep's
parent run id (a space-separated list when several resumed sweeps reuse it);
`store.queries.resumed_runs(parent)` finds them again.
"""

from __future__ import annotations

from pathlib import Path

from attnbench.store.handle import Tracker
from attnbench.store.queries import finished_run
from attnbench.store.schema import (
    BEST_VAL,
    CHECKPOINT_DIR,
    CONFIG_HASH_TAG,
    PARENT_RUN_TAG,
    PRIMARY_METRIC_TAG,
    RESUMED_BY_TAG,
    RunIdentity,
    RunResult,
    split_metric,
)


def skip_if_done(
    tracker: Tracker, experiment_id: str, config_hash: str, identity: RunIdentity,
    parent_run_id: str | None,
) -> RunResult | None:
    """`skip_if_finished`, or a SKIPPED result when another process is training the same cell
    right now (a RUNNING run with this hash whose heartbeat is fresh). Call it holding the cell's
    claim (`Tracker.claim`), so two resumed sweeps never both decide to train the cell."""
    done = skip_if_finished(tracker, experiment_id, config_hash, identity, parent_run_id)
    if done is not None:
        return done
    tracker.mark_stale_runs([experiment_id])  # a dead claim is no claim
    running = tracker.search(
        [experiment_id],
        f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}' and attributes.status = 'RUNNING'",
    )
    if not running:
        return None
    from attnbench.console import console

    other = running[0]
    console.print(f"skip {identity.run_name}: being trained by run {other.run_id} "
                  f"(same config hash {config_hash})", highlight=False, markup=False)
    return RunResult(identity.run_name, "SKIPPED", other.run_id,
                     error=f"being trained by run {other.run_id[:8]}", identity=identity.tags())


def skip_if_finished(
    tracker: Tracker, experiment_id: str, config_hash: str, identity: RunIdentity,
    parent_run_id: str | None,
) -> RunResult | None:
    """A SKIPPED result pointing at the FINISHED run to reuse instead of training, or None.

    The reused run is tagged with the resuming sweep's parent. Its metrics are the stored final
    ones, with the best-validation checkpoint's `best_val/*` (what a finished job reports, and
    what an optimising sweeper such as Optuna reads).
    """
    from attnbench.console import console

    run = finished_run(tracker, experiment_id, config_hash)
    if run is None:
        return None
    if parent_run_id and parent_run_id != run.tags.get(PARENT_RUN_TAG):
        ids = run.tags.get(RESUMED_BY_TAG, "").split()
        if parent_run_id not in ids:
            tracker.set_tags(run.run_id, {RESUMED_BY_TAG: " ".join([*ids, parent_run_id])})
    name = identity.run_name
    console.print(
        f"skip {name}: already FINISHED as run {run.run_id} (same config hash {config_hash})",
        highlight=False,
        markup=False,
    )
    metrics = dict(run.metrics)
    metric = run.tags.get(PRIMARY_METRIC_TAG, "acc")
    primary = split_metric(BEST_VAL, metric)
    if primary not in metrics:  # a run from before best_val/*: its best validation history
        history = [v for _, v in tracker.metric_history(run.run_id, split_metric("val", metric))]
        if history:
            metrics[primary] = max(history)
    return RunResult(name, "SKIPPED", run.run_id, metrics, primary=primary,
                     identity=identity.tags(), experiment=tracker.experiments().get(experiment_id))


def continuation(
    tracker: Tracker, experiment_id: str, config_hash: str, folder: Path
) -> tuple[Path | None, str | None]:
    """The training state an interrupted run of this cell left (its `checkpoints/last.pt`,
    downloaded into `folder`) and that run's id, or (None, None). The newest KILLED or FAILED run
    with this hash whose state is resumable wins; a state from an older attnbench (weights only)
    is passed over: the cell then trains from the start."""
    from attnbench.errors import ConfigError
    from attnbench.training.state import resume_point

    runs = tracker.search(
        [experiment_id], f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}'",
        order_by=["attributes.start_time DESC"],
    )
    for run in (r for r in runs if r.status in ("KILLED", "FAILED")):
        try:
            path = tracker.download_artifact(run.run_id, f"{CHECKPOINT_DIR}/last.pt", folder)
        except Exception:  # noqa: BLE001 - MlflowException / OSError: no state left
            continue
        target = folder / "resume.pt"
        path.replace(target)
        try:
            step, epoch = resume_point(target)
        except ConfigError:
            target.unlink(missing_ok=True)
            continue
        from attnbench.console import console

        console.print(f"continue {run.name} from run {run.run_id}: step {step} (epoch {epoch})",
                      highlight=False, markup=False)
        return target, run.run_id
    return None, None

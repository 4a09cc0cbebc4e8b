"""`attnbench sweep ... --resume`: skip cells that already have a FINISHED run with the same
content hash (`attnbench.config_hash`: resolved config + package version + data fingerprint).

A skipped cell makes no new run. So that the resumed sweep still shows (and `compare` still
counts) every cell of its grid, the existing run is tagged ``attnbench.resumed_by`` with the new
sweep's parent run id (a space-separated list when several resumed sweeps reuse it);
``resumed_runs(parent)`` finds them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attnbench.tracking import RunInfo, Tracker

if TYPE_CHECKING:
    from attnbench.experiment import RunResult

HASH_TAG = "attnbench.config_hash"
RESUMED_BY_TAG = "attnbench.resumed_by"


def finished_run(tracker: Tracker, experiment_id: str, config_hash: str) -> RunInfo | None:
    """The most recent FINISHED run of the experiment with this config hash, if any."""
    runs = tracker.search(
        [experiment_id],
        f"tags.`{HASH_TAG}` = '{config_hash}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def skip_if_finished(
    tracker: Tracker, experiment_id: str, config_hash: str, name: str, parent_run_id: str | None
) -> RunResult | None:
    """A SKIPPED result pointing at the FINISHED run to reuse instead of training, or None.

    The reused run is tagged with the resuming sweep's parent. Its metrics are the stored final
    ones, with the primary validation metric at its best epoch (what a finished job reports, and
    what an optimising sweeper such as Optuna reads).
    """
    from attnbench.console import console
    from attnbench.experiment import RunResult

    run = finished_run(tracker, experiment_id, config_hash)
    if run is None:
        return None
    if parent_run_id and parent_run_id != run.tags.get("mlflow.parentRunId"):
        ids = run.tags.get(RESUMED_BY_TAG, "").split()
        if parent_run_id not in ids:
            tracker.set_tags(run.run_id, {RESUMED_BY_TAG: " ".join([*ids, parent_run_id])})
    console.print(
        f"skip {name}: already FINISHED as run {run.run_id} (same config hash {config_hash})",
        highlight=False,
        markup=False,
    )
    metrics = dict(run.metrics)
    primary = f"val/{run.tags.get('attnbench.primary_metric', 'acc')}"
    history = [v for _, v in tracker.metric_history(run.run_id, primary)]
    if history:
        metrics[primary] = max(history)
    return RunResult(name, "SKIPPED", run.run_id, metrics, primary=primary)


def resumed_runs(tracker: Tracker, parent: RunInfo) -> list[RunInfo]:
    """Runs an earlier sweep made that the sweep `parent` reused instead of re-running."""
    return tracker.search(
        [parent.experiment_id],
        f"tags.`{RESUMED_BY_TAG}` LIKE '%{parent.run_id}%'",
        order_by=["attributes.start_time ASC"],
    )

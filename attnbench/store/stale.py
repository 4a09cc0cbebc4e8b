"""Stale runs: RUNNING runs whose process is gone (a stopped heartbeat on any host, or a dead
pid on this one) are closed FAILED with the reason, keeping the last checkpoint a dead process
left on this host when `store.scratch` trusts it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from attnbench.store.liveness import process_alive, taken_ms
from attnbench.store.names import (
    CHECKPOINT_DIR,
    ERROR_TAG,
    HEARTBEAT_TAG,
    HOST_TAG,
    LAST_EPOCH_TAG,
    PID_TAG,
    SCRATCH_TAG,
    STALE_AFTER_S,
)

if TYPE_CHECKING:
    from attnbench.store.tracker import RunInfo, Tracker


def mark_stale_runs(tracker: Tracker, experiment_ids: Iterable[str] | None = None) -> list[str]:
    """Mark FAILED the RUNNING runs whose process is gone; returns their ids.

    A run is stale when its heartbeat (`HEARTBEAT_TAG`, refreshed while it trains) is older
    than `stale_after_s()`, on any host; or, on this host, when the process that started it
    (tags `attnbench.host`, `attnbench.pid`) no longer exists, e.g. one killed with SIGKILL.
    Other runs are left alone: they may still be training. `experiment_ids` None = every
    experiment.
    """
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in tracker.client.search_experiments()]
    experiment_ids = list(experiment_ids)
    if not experiment_ids:
        return []
    host = socket.gethostname()
    now = time.time()
    stale: list[str] = []
    for run in tracker.search(experiment_ids, "attributes.status = 'RUNNING'"):
        pid = run.tags.get(PID_TAG, "")
        beat = run.tags.get(HEARTBEAT_TAG, "")
        if beat.isdigit() and now - int(beat) > stale_after_s():
            reason = (f"stale: no heartbeat for {now - int(beat):.0f} s from its process "
                      f"{pid or '?'} on {run.tags.get(HOST_TAG, '?')} (killed?)")
        elif run.tags.get(HOST_TAG) == host and pid.isdigit() and not process_alive(
            int(pid), taken_ms(run.tags, run.start_time)
        ):
            reason = (f"stale: its process {pid} on {host} ended without closing the run "
                      "(killed?)")
        else:
            continue
        tracker.set_tags(run.run_id, {ERROR_TAG: reason})
        keep_last_checkpoint(tracker, run)
        tracker.end_run(run.run_id, "FAILED")
        stale.append(run.run_id)
    return stale


def keep_last_checkpoint(tracker: Tracker, run: RunInfo) -> bool:
    """Log the last weights a dead process left on this host as checkpoints/last.pt (then
    delete its scratch folder). Only a file `store.scratch` trusts is uploaded: the run names
    a token, never a path. True if there was one to keep."""
    from attnbench.store import scratch

    token = run.tags.get(SCRATCH_TAG, "")
    if run.tags.get(HOST_TAG) != socket.gethostname():
        return False
    path = scratch.trusted_last(token)
    if path is None:
        return False
    try:
        tracker.log_artifact(run.run_id, path, CHECKPOINT_DIR)
        epoch = path.with_suffix(".epoch")
        if epoch.is_file():
            tracker.set_tags(run.run_id, {LAST_EPOCH_TAG: epoch.read_text().strip()})
    except Exception:  # noqa: BLE001 - closing the run matters more than its weights
        return False
    scratch.remove(token)
    return True


def stale_after_s() -> float:
    """How old a heartbeat may be before its run counts as stale (ATTNBENCH_STALE_AFTER_S
    overrides `STALE_AFTER_S`, e.g. for a cluster whose jobs are suspended for a while)."""
    import os

    return float(os.environ.get("ATTNBENCH_STALE_AFTER_S", STALE_AFTER_S))

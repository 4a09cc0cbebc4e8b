"""Queries the run pipeline and the analysis share: open an existing store, find a run by its
content hash, the runs a resumed sweep reused."""

from __future__ import annotations

from pathlib import Path

from attnbench.errors import ConfigError
from attnbench.store.handle import RunInfo, Tracker
from attnbench.store.schema import CONFIG_HASH_TAG, RESUMED_BY_TAG


def open_store(runs_dir: str | Path = "runs", tracking_uri: str | None = None) -> Tracker:
    """The store `run` would use with these settings; an error (not a new empty store) if the
    local store does not exist yet."""
    tracker = Tracker(tracking_uri, runs_dir)
    db = tracker.runs_dir / "mlflow.db"
    if tracker.local and not db.is_file():
        raise ConfigError(
            f"No MLflow store at {db}: run `attnbench sweep ...` first, or point --runs-dir / "
            "--tracking-uri at an existing store"
        )
    tracker.connect()
    return tracker


def finished_run(tracker: Tracker, experiment_id: str, config_hash: str) -> RunInfo | None:
    """The most recent FINISHED run of the experiment with this config hash, if any."""
    runs = tracker.search(
        [experiment_id],
        f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def resumed_runs(tracker: Tracker, parent: RunInfo) -> list[RunInfo]:
    """Runs an earlier sweep made that the sweep `parent` reused instead of re-running."""
    return tracker.search(
        [parent.experiment_id],
        f"tags.`{RESUMED_BY_TAG}` LIKE '%{parent.run_id}%'",
        order_by=["attributes.start_time ASC"],
    )

"""Queries the run pipeline, the analysis and the UI share: open an existing store, find a run
by its content hash, the runs a resumed sweep reused, the experiment a user looked at last, the
recent sweeps (`attnbench runs`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from attnbench.errors import ConfigError
from attnbench.store.names import (
    CONFIG_HASH_TAG,
    KIND_TAG,
    RESUMED_BY_TAG,
    SWEEP_KIND,
    SWEEP_NAME_TAG,
)
from attnbench.store.tracker import RunInfo, Tracker


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


def latest_experiment(tracker: Tracker) -> tuple[str, str] | None:
    """(id, name) of the experiment of the latest sweep, else of the latest run (None: no run)."""
    experiments = tracker.experiments()
    if not experiments:
        return None
    for kind in (f"tags.`{KIND_TAG}` = '{SWEEP_KIND}'", ""):
        latest = tracker.search(list(experiments), kind, ["attributes.start_time DESC"], 1)
        if latest:
            return latest[0].experiment_id, experiments[latest[0].experiment_id]
    return None


@dataclass(frozen=True)
class SweepListing:
    """One sweep as `attnbench runs` lists it: its parent run, its experiment's name, its name
    (`sweep --name`, else None) and how many of its jobs' runs are in each status (the runs an
    earlier sweep made that it reused with `--resume` included)."""

    parent: RunInfo
    experiment: str
    name: str | None
    statuses: dict[str, int]

    @property
    def jobs(self) -> int:
        return sum(self.statuses.values())


def recent_sweeps(tracker: Tracker, limit: int = 20, experiment: str | None = None
                  ) -> list[SweepListing]:
    """The `limit` most recently started sweeps, newest first (of one experiment if named; an
    unknown name is a ConfigError naming the experiments)."""
    experiments = tracker.experiments()
    ids = list(experiments)
    if experiment is not None:
        found = tracker.find_experiment(experiment)
        if found is None:
            names = ", ".join(sorted(experiments.values())) or "none"
            raise ConfigError(f"Unknown experiment '{experiment}'. Experiments in the store: "
                              f"{names}")
        ids = [found]
    if not ids:
        return []
    parents = tracker.search(ids, f"tags.`{KIND_TAG}` = '{SWEEP_KIND}'",
                             ["attributes.start_time DESC"], limit)
    out = []
    for parent in parents:
        runs = {r.run_id: r for r in [*tracker.children(parent), *resumed_runs(tracker, parent)]}
        out.append(SweepListing(parent, experiments.get(parent.experiment_id, "?"),
                                parent.tags.get(SWEEP_NAME_TAG),
                                dict(Counter(r.status for r in runs.values()))))
    return out

"""Which runs `compare` looks at: a sweep (by default the latest that ended), or every FINISHED
run of an experiment."""

from __future__ import annotations

from dataclasses import dataclass

from attnbench.errors import ConfigError
from attnbench.store.handle import RunInfo, Tracker
from attnbench.store.queries import resumed_runs
from attnbench.store.schema import KIND_TAG, SWEEP_KIND


@dataclass
class Selection:
    runs: list[RunInfo]  # the job runs to compare (any status; compare keeps the FINISHED ones)
    label: str  # what was compared, for titles
    name: str  # the reports/ folder name
    parent: RunInfo | None = None  # the sweep's parent run (artifacts go there)
    note: str = ""  # what the user should know about the choice (printed on stderr)


def select_runs(
    tracker: Tracker, experiment: str | None = None, sweep: str | None = None
) -> Selection:
    """The runs of sweep `sweep` (a parent run id), of experiment `experiment`, or of the latest
    sweep in the store (the default)."""
    if experiment and sweep:
        raise ConfigError("Pass either --experiment or --sweep, not both")
    experiments = tracker.experiments()
    if experiment:
        exp_id = tracker.find_experiment(experiment)
        if exp_id is None:
            names = ", ".join(sorted(experiments.values())) or "none"
            raise ConfigError(
                f"Unknown experiment '{experiment}'. Experiments in the store: {names}"
            )
        runs = [
            r
            for r in tracker.search(
                [exp_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"]
            )
            if r.tags.get(KIND_TAG) != SWEEP_KIND
        ]
        return Selection(runs, f"experiment {experiment}", experiment)
    note = ""
    if sweep:
        parent = tracker.get_run(sweep)
        if parent.tags.get(KIND_TAG) != SWEEP_KIND:
            raise ConfigError(
                f"Run {sweep} is not a sweep (no {KIND_TAG}={SWEEP_KIND} tag): pass a sweep's "
                "parent run id, or --experiment NAME"
            )
    else:
        sweeps = (
            tracker.search(
                list(experiments),
                f"tags.`{KIND_TAG}` = '{SWEEP_KIND}'",
                order_by=["attributes.start_time DESC"],
            )
            if experiments
            else []
        )
        if not sweeps:
            names = ", ".join(sorted(experiments.values()))
            hint = f" (experiments: {names})" if names else ""
            raise ConfigError(
                f"No sweep in the store {tracker.uri}: run `attnbench sweep ...` first, or compare "
                f"the runs of an experiment with --experiment NAME{hint}"
            )
        # A sweep still running has half its cells: the default is the latest one that ended.
        ended = [s for s in sweeps if s.status != "RUNNING"]
        parent = ended[0] if ended else sweeps[0]
        if parent is not sweeps[0]:
            note = (
                f"the newest sweep, {sweeps[0].name} ({sweeps[0].run_id[:8]}), is still running: "
                f"comparing the latest finished one; --sweep {sweeps[0].run_id} compares it"
            )
    runs = {r.run_id: r for r in [*resumed_runs(tracker, parent), *tracker.children(parent)]}
    exp_name = experiments.get(parent.experiment_id, parent.experiment_id)
    return Selection(
        list(runs.values()),
        f"sweep {parent.name} ({parent.run_id[:8]}, experiment {exp_name})",
        f"{exp_name}-{parent.name}",
        parent,
        note,
    )

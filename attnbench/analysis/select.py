"""Which runs `compare` looks at: a sweep (by default the latest that ended), or every FINISHED
run of an experiment; narrowed by `--filter key=value` (`filter_runs`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from attnbench.analysis.keys import lookup
from attnbench.errors import ConfigError
from attnbench.store.names import IDENTITY_TAGS, KIND_TAG, SWEEP_KIND
from attnbench.store.queries import resumed_runs
from attnbench.store.tracker import RunInfo, Tracker


@dataclass
class Selection:
    runs: list[RunInfo]  # the job runs to compare (any status; compare keeps the FINISHED ones)
    label: str  # what was compared, for titles
    name: str  # the reports/ folder name
    parent: RunInfo | None = None  # the sweep's parent run (artifacts go there)
    note: str = ""  # what the user should know about the choice (printed on stderr)
    where: str = ""  # the filter that narrowed the runs (compare --filter), '' for none


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


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """`--filter` values -> {key: accepted values}. Each is `key=value`, repeated or joined by
    commas; a bare value after a comma is one more value of the key before it
    (`attention=dot,scaled`). Different keys must all match, one of a key's values must."""
    out: dict[str, list[str]] = {}
    for item in items:
        key = None
        for piece in (p.strip() for p in item.split(",")):
            name, eq, value = (s.strip() for s in piece.partition("="))
            if eq:
                key = name
            elif key is not None:
                name, value = key, name
            if not name or not value or key is None:
                raise ConfigError(
                    f"--filter '{item}': expected key=value (several joined by commas), e.g. "
                    "--filter backbone=rnn --filter trainer.lr=0.001"
                )
            out.setdefault(name, [])
            out[name] += [value] if value not in out[name] else []
    return out


def _same(actual: str | None, wanted: str) -> bool:
    """A run's value matches: equal as text, or as numbers (`1e-3` is `0.001`)."""
    if actual is None:
        return False
    if actual == wanted:
        return True
    try:
        return math.isclose(float(actual), float(wanted), rel_tol=1e-12)
    except ValueError:
        return False


def filter_runs(selection: Selection, items: Sequence[str]) -> Selection:
    """Only the runs every `--filter` matches (keys as `--by` takes them: a run tag or a config
    param). A key no run has, or values that leave no run, is a one-line error naming the keys
    or the values that exist."""
    filters = parse_filters(items)
    if not filters:
        return selection
    jobs = [r for r in selection.runs if r.tags.get(KIND_TAG) != SWEEP_KIND]
    runs, applied = jobs, []
    for key, wanted in filters.items():
        if all(lookup(r, key) is None for r in jobs):
            raise ConfigError(
                f"Unknown --filter key '{key}': no run of {selection.label} has it. Filter by a "
                f"run tag ({', '.join(IDENTITY_TAGS)}) or a config param (e.g. trainer.lr, "
                "backbone.d_model)"
            )
        kept = [r for r in runs if any(_same(lookup(r, key), w) for w in wanted)]
        if not kept:
            values = sorted({v for r in runs if (v := lookup(r, key)) is not None})
            where = f" with {', '.join(applied)}" if applied else ""
            raise ConfigError(
                f"--filter {key}={','.join(wanted)} matches no run of {selection.label}{where}; "
                f"{key} values there: {', '.join(values) or 'none'}"
            )
        runs = kept
        applied.append(f"{key}={','.join(wanted)}")
    where = " ".join(applied)
    return replace(selection, runs=runs, label=f"{selection.label}, where {where}", where=where)

"""The comparison model: group runs by config keys, aggregate the metric over seeds and test
every group against the best one (rules: `analysis.stats`). Pure: no store access, no output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from attnbench.analysis import stats
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.handle import RunInfo
from attnbench.store.schema import (
    COST_COLUMNS,
    IDENTITY_TAGS,
    KIND_TAG,
    LOWER_IS_BETTER,
    NOT_TRAINED_PARAMS,
    PRIMARY_METRIC_TAG,
    SWEEP_KIND,
)


@dataclass
class Group:
    key: dict[str, str]  # grouping key -> value, e.g. {"attention": "dot"}
    runs: list[RunInfo]
    values: dict[tuple, float]  # pairing key -> metric value
    summary: stats.Summary
    cost: dict[str, float | None]
    test: stats.PairedTest | None = None  # None for the best group
    status: str = "worse"  # best | tied | worse | ? (cannot tell)

    @property
    def label(self) -> str:
        return ", ".join(self.key.values())


@dataclass
class Comparison:
    label: str
    name: str
    metric: str
    by: list[str]
    higher_is_better: bool
    groups: list[Group]  # best first
    excluded: int = 0  # runs not FINISHED or without the metric
    duplicates: int = 0  # older runs of an identical config in the same group (latest kept)
    parent: RunInfo | None = None
    notes: list[str] = field(default_factory=list)
    correction: str = "none"  # multiple-comparison correction: one of stats.CORRECTIONS

    @property
    def rule(self) -> str:
        return stats.rule(self.correction)

    @property
    def caption(self) -> str:
        used = sorted({g.test.test for g in self.groups if g.test and g.test.test != "none"})
        direction = "higher" if self.higher_is_better else "lower"
        parts = [
            f"{self.metric}: {direction} is better",
            f"test used: {', '.join(used) or 'none'}",
            self.rule,
        ]
        if self.excluded:
            parts.append(f"{self.excluded} run(s) not FINISHED or without {self.metric} left out")
        if self.duplicates:
            parts.append(f"{self.duplicates} older duplicate run(s) ignored (latest kept)")
        return "; ".join(parts + self.notes)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER and not metric.endswith("loss")


def lookup(run: RunInfo, key: str) -> str | None:
    """A grouping key's value: a run tag (attention, backbone, task, seed) or a config param."""
    if key in run.tags:
        return run.tags[key]
    if key in run.params:
        return run.params[key]
    return run.params.get(f"{key}.name")


def pairing_key(run: RunInfo, by: Sequence[str]) -> tuple:
    """What a run shares with its counterpart in another group: everything but the grouped keys
    (its seed and any other config difference), so runs pair only with their exact twin."""

    def grouped(name: str) -> bool:
        return any(name == k or name.startswith(f"{k}.") for k in by)

    tags = tuple((k, run.tags.get(k)) for k in IDENTITY_TAGS if not grouped(k))
    params = tuple(
        sorted(
            (k, v)
            for k, v in run.params.items()
            if not grouped(k) and not k.startswith(NOT_TRAINED_PARAMS)
        )
    )
    return tags + params


def default_metric(runs: Sequence[RunInfo]) -> str:
    primaries = sorted({r.tags.get(PRIMARY_METRIC_TAG) or "acc" for r in runs})
    if len(primaries) > 1:
        raise ConfigError(
            f"The runs have different primary metrics ({', '.join(primaries)}): pick one with "
            "--metric, e.g. --metric test/" + primaries[0]
        )
    return f"test/{primaries[0]}"


def check_correction(correction: str) -> None:
    if correction not in stats.CORRECTIONS:
        raise ConfigError(
            f"Unknown --correction '{correction}'. Choose one of: {', '.join(stats.CORRECTIONS)}"
        )


def compare_runs(
    selection: Selection,
    by: Sequence[str] = ("attention",),
    metric: str | None = None,
    correction: str = "none",
) -> Comparison:
    """Group, aggregate over seeds and test every group against the best (pure: no store access)."""
    check_correction(correction)
    by = [k.strip() for k in by if k.strip()] or ["attention"]
    finished = [
        r
        for r in selection.runs
        if r.status == "FINISHED" and r.tags.get(KIND_TAG) != SWEEP_KIND
    ]
    if not finished:
        raise ConfigError(f"No FINISHED runs to compare in {selection.label}")
    metric = metric or default_metric(finished)
    usable = [r for r in finished if metric in r.metrics and math.isfinite(r.metrics[metric])]
    if not usable:
        known = sorted({m for r in finished for m in r.metrics})
        raise ConfigError(
            f"Unknown metric '{metric}' in {selection.label}. Metrics: {', '.join(known)}"
        )
    for key in by:
        if all(lookup(r, key) is None for r in usable):
            raise ConfigError(
                f"Unknown --by key '{key}'. Group by a run tag ({', '.join(IDENTITY_TAGS)}) or a "
                "config param (e.g. trainer.lr, attention.heads)"
            )
    members: dict[tuple[str, ...], dict[tuple, RunInfo]] = {}
    duplicates = 0
    for run in sorted(usable, key=lambda r: r.start_time):
        gkey = tuple(lookup(run, k) or "—" for k in by)
        slot = members.setdefault(gkey, {})
        pkey = pairing_key(run, by)
        duplicates += pkey in slot
        slot[pkey] = run  # the latest run of an identical config wins
    groups = [
        _group(dict(zip(by, gkey, strict=True)), slot, metric) for gkey, slot in members.items()
    ]
    hib = higher_is_better(metric)
    groups.sort(key=lambda g: (-g.summary.mean if hib else g.summary.mean, -g.summary.n, g.label))
    best = groups[0]
    best.status = "best"
    for g in groups[1:]:
        g.test = stats.paired_test(best.values, g.values)
    if correction == "holm":
        tests = [g.test for g in groups[1:] if g.test is not None]
        adjusted = stats.holm([t.p_value for t in tests])
        for g, t, p in zip(groups[1:], tests, adjusted, strict=True):
            if p is not None:
                g.test = replace(t, p_adjusted=p, tied=p >= stats.ALPHA)
    for g in groups[1:]:
        assert g.test is not None
        g.status = {True: "tied", False: "worse", None: "?"}[g.test.tied]
    notes = []
    pooled = sorted({key for g in groups for key in pooled_keys(g.runs, by)})
    if pooled:
        notes.append(
            f"groups pool runs that differ in {', '.join(pooled)}: add "
            f"{'it' if len(pooled) == 1 else 'them'} to --by to split the groups"
        )
    return Comparison(
        selection.label,
        selection.name,
        metric,
        by,
        hib,
        groups,
        excluded=len(selection.runs) - len(usable),
        duplicates=duplicates,
        parent=selection.parent,
        notes=notes,
        correction=correction,
    )


def pooled_keys(runs: Sequence[RunInfo], by: Sequence[str]) -> list[str]:
    """Config keys other than the seed whose values differ between the runs of one group (their
    pairing keys: the grouped keys are already left out)."""
    values: dict[str, set] = {}
    for run in runs:
        for key, value in pairing_key(run, by):
            values.setdefault(key, set()).add(value)
    return [k for k, v in values.items() if len(v) > 1 and k != "seed"]


def _group(key: dict[str, str], slot: dict[tuple, RunInfo], metric: str) -> Group:
    runs = list(slot.values())
    values = {p: float(r.metrics[metric]) for p, r in slot.items()}
    cost: dict[str, float | None] = {}
    for name, _ in COST_COLUMNS:
        xs = [r.metrics[name] for r in runs if name in r.metrics]
        cost[name] = sum(xs) / len(xs) if xs else None
    return Group(key, runs, values, stats.summarize(list(values.values())), cost)

"""The comparison model: group runs by config keys, aggregate the metric over seeds and test
every group against a reference (the best group, or a named baseline; rules: `analysis.stats`).
Pure: no store access, no output.

Grouping (`default_by`): the keys the sweep varied (its parent run's `attnbench.sweep_keys`,
minus the seed), else `attention` plus `backbone` / `task` when those differ between the runs.
A group whose runs still differ in another trained config key (`pooled_keys`) pools settings
as if they were seeds: it is marked, and no paired test is made against it or with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from attnbench.analysis import stats
from attnbench.analysis.keys import (
    config_value,
    default_by,
    lookup,
    pairing_key,
    pooled_keys,
    trained_config,
)
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.handle import RunInfo
from attnbench.store.schema import (
    COST_COLUMNS,
    HIGHER,
    IDENTITY_TAGS,
    KIND_TAG,
    NO_DIRECTION,
    PRIMARY_METRIC_TAG,
    SWEEP_KIND,
    metric_direction,
)

POOLED = "pooled"  # status reason: the group (or the reference) mixes differing configs
UNRANKED = "unranked"  # status of every group when the metric has no better direction


@dataclass
class Group:
    key: dict[str, str]  # grouping key -> value, e.g. {"attention": "dot"}
    runs: list[RunInfo]
    values: dict[tuple, float]  # pairing key -> metric value (what the paired test uses)
    run_values: list[float]  # the metric of every run (pooled groups may repeat a pairing key)
    summary: stats.Summary  # over every run_values
    cost: dict[str, float | None]
    pooled: dict[str, int] = field(default_factory=dict)  # differing key -> number of values
    test: stats.PairedTest | None = None  # None for the reference and untested groups
    # best | baseline | tied | worse | better (vs a baseline) | ? (cannot tell) | unranked
    status: str = "worse"
    reason: str = ""  # why the status is "?": pooled, n<2, best n<2, baseline n<2
    extra: dict[str, str] = field(default_factory=dict)  # more columns: label -> cell (tuning)

    @property
    def label(self) -> str:
        return ", ".join(self.key.values())



@dataclass
class Comparison:
    label: str
    name: str
    metric: str
    by: list[str]
    direction: str  # higher | lower | none (see store.schema.metric_direction)
    groups: list[Group]  # best first (by group key when the metric has no direction)
    excluded: int = 0  # runs not FINISHED or without the metric
    duplicates: int = 0  # older runs of an identical config in the same group (latest kept)
    parent: RunInfo | None = None
    notes: list[str] = field(default_factory=list)
    correction: str = "none"  # multiple-comparison correction: one of stats.CORRECTIONS
    baseline: dict[str, str] | None = None  # the named reference group (None: the best)

    @property
    def higher_is_better(self) -> bool | None:
        return None if self.direction == NO_DIRECTION else self.direction == HIGHER

    @property
    def ranked(self) -> bool:
        return self.direction != NO_DIRECTION

    @property
    def reference(self) -> str:
        """What the groups are tested against: `best` or the baseline's `key=value` pairs."""
        if self.baseline is None:
            return "best"
        return ",".join(f"{k}={v}" for k, v in self.baseline.items())

    @property
    def rule(self) -> str:
        if not self.ranked:
            return "mean ± half-width of the 95 % t-interval over seeds"
        text = stats.rule(self.correction)
        return text if self.baseline is None else text.replace("the best", "the baseline")

    @property
    def pooled(self) -> dict[str, int]:
        """Every key some group pools runs over -> its number of values in those groups."""
        values: dict[str, set] = {}
        for g in self.groups:
            for key in g.pooled:
                values.setdefault(key, set()).update(config_value(r, key) for r in g.runs)
        return {k: len(values[k]) for k in sorted(values)}

    @property
    def pooled_message(self) -> str:
        """One line: which keys groups pool over, how many runs, and what to do."""
        keys = self.pooled
        runs = sum(len(g.runs) for g in self.groups if g.pooled)
        listed = ", ".join(f"{k} ({n} values)" for k, n in keys.items())
        them = "it" if len(keys) == 1 else "them"
        return (
            f"groups pool runs that differ in {listed}: {runs} runs; add {them} to --by to "
            "split the groups"
        )

    @property
    def caption(self) -> str:
        if not self.ranked:
            parts = [f"{self.metric}: a diagnostic with no better direction: not ranked, no tests"]
        else:
            used = sorted({g.test.test for g in self.groups if g.test and g.test.test != "none"})
            versus = "" if self.baseline is None else f"; tested against {self.reference}"
            parts = [
                f"{self.metric}: {self.direction} is better{versus}",
                f"test used: {', '.join(used) or 'none'}",
            ]
        parts.append(self.rule)
        if self.pooled:
            parts.append(
                f"{POOLED}: the group mixes runs that differ in {', '.join(self.pooled)} "
                "(not seeds of one setting), so it is not tested"
            )
        if self.excluded:
            parts.append(f"{self.excluded} run(s) not FINISHED or without {self.metric} left out")
        if self.duplicates:
            parts.append(f"{self.duplicates} older duplicate run(s) ignored (latest kept)")
        return "; ".join(parts + self.notes)


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


def parse_baseline(text: str, by: Sequence[str]) -> dict[str, str]:
    """`attention=none,backbone=rnn` -> {key: value}; a bare value when grouping by one key."""
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    if len(pairs) == 1 and "=" not in pairs[0] and len(by) == 1:
        return {by[0]: pairs[0]}
    out = {}
    for pair in pairs:
        key, eq, value = (s.strip() for s in pair.partition("="))
        if not eq or not key or not value:
            raise ConfigError(
                f"--baseline '{text}': expected key=value pairs separated by commas, e.g. "
                f"--baseline {by[0]}=none"
            )
        if key not in by:
            raise ConfigError(
                f"--baseline key '{key}' is not a grouping key: the groups are by "
                f"{', '.join(by)} (add it to --by)"
            )
        out[key] = value
    if not out:
        raise ConfigError(f"--baseline is empty: e.g. --baseline {by[0]}=none")
    return out


def find_baseline(groups: Sequence[Group], wanted: dict[str, str]) -> Group:
    matches = [g for g in groups if all(g.key[k] == v for k, v in wanted.items())]
    shown = ",".join(f"{k}={v}" for k, v in wanted.items())
    if len(matches) == 1:
        return matches[0]

    def name(g: Group) -> str:
        return ",".join(f"{k}={v}" for k, v in g.key.items())

    if not matches:
        raise ConfigError(
            f"--baseline {shown} matches no group. Groups: {'; '.join(name(g) for g in groups)}"
        )
    raise ConfigError(
        f"--baseline {shown} matches {len(matches)} groups ({'; '.join(map(name, matches))}): "
        "give a value for every --by key"
    )


def compare_runs(
    selection: Selection,
    by: Sequence[str] | None = None,
    metric: str | None = None,
    correction: str = "none",
    baseline: str | None = None,
) -> Comparison:
    """Group, aggregate over seeds and test every group against the best or the `baseline`
    group (pure: no store access). `by=None`: `default_by`."""
    check_correction(correction)
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
    by = [k.strip() for k in by or () if k.strip()] or default_by(selection, usable)
    for key in by:
        if all(lookup(r, key) is None for r in usable):
            raise ConfigError(
                f"Unknown --by key '{key}'. Group by a run tag ({', '.join(IDENTITY_TAGS)}) or a "
                "config param (e.g. trainer.lr, attention.heads)"
            )
    direction = metric_direction(metric)
    wanted = parse_baseline(baseline, by) if baseline else None
    if wanted is not None and direction == NO_DIRECTION:
        raise ConfigError(
            f"--baseline: {metric} is a diagnostic with no better direction; it is shown, never "
            "tested (compare a metric such as test/acc)"
        )
    members: dict[tuple[str, ...], dict[tuple, RunInfo]] = {}
    duplicates = 0
    for run in sorted(usable, key=lambda r: r.start_time):
        gkey = tuple(lookup(run, k) or "—" for k in by)
        slot = members.setdefault(gkey, {})
        ckey = tuple(sorted(trained_config(run).items(), key=lambda kv: kv[0]))
        duplicates += ckey in slot
        slot[ckey] = run  # the latest run of an identical config wins
    groups = [
        _group(dict(zip(by, gkey, strict=True)), list(slot.values()), by, metric)
        for gkey, slot in members.items()
    ]
    if direction == NO_DIRECTION:
        groups.sort(key=lambda g: tuple(g.key.values()))
        for g in groups:
            g.status = UNRANKED
    else:
        _rank(groups, direction, wanted, correction)
    return Comparison(
        selection.label,
        selection.name,
        metric,
        by,
        direction,
        groups,
        excluded=len(selection.runs) - len(usable),
        duplicates=duplicates,
        parent=selection.parent,
        correction=correction,
        baseline=wanted,
    )


def _rank(
    groups: list[Group], direction: str, wanted: dict[str, str] | None, correction: str
) -> None:
    """Sort best first, test every group against the reference and set the statuses."""
    sign = 1.0 if direction == HIGHER else -1.0
    groups.sort(key=lambda g: (-sign * g.summary.mean, -g.summary.n, g.label))
    ref = groups[0] if wanted is None else find_baseline(groups, wanted)
    ref.status = "best" if wanted is None else "baseline"
    ref_name = "best" if wanted is None else "baseline"
    others = [g for g in groups if g is not ref]
    for g in others:
        if g.pooled or ref.pooled:
            g.status, g.reason = "?", POOLED if g.pooled else f"{ref_name} {POOLED}"
        else:
            g.test = stats.paired_test(ref.values, g.values)
    if correction == "holm":
        tested = [g for g in others if g.test is not None]
        adjusted = stats.holm([g.test.p_value for g in tested if g.test is not None])
        for g, p in zip(tested, adjusted, strict=True):
            if p is not None and g.test is not None:
                g.test = replace(g.test, p_adjusted=p, tied=p >= stats.ALPHA)
    for g in others:
        if g.test is None:
            continue
        if g.test.tied is None:
            g.status = "?"
            g.reason = "n<2" if g.summary.n < 2 else f"{ref_name} n<2"
        elif g.test.tied:
            g.status = "tied"
        elif wanted is None:
            g.status = "worse"
        else:
            better = sign * (g.summary.mean - ref.summary.mean) > 0
            g.status = "better" if better else "worse"


def _group(key: dict[str, str], runs: list[RunInfo], by: Sequence[str], metric: str) -> Group:
    values = {pairing_key(r, by): float(r.metrics[metric]) for r in runs}
    every = [float(r.metrics[metric]) for r in runs]
    cost: dict[str, float | None] = {}
    for name, _ in COST_COLUMNS:
        xs = [r.metrics[name] for r in runs if name in r.metrics]
        cost[name] = sum(xs) / len(xs) if xs else None
    return Group(key, runs, values, every, stats.summarize(every), cost, pooled_keys(runs, by))

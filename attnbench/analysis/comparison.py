"""The comparison model: group runs by config keys, aggregate the metric over seeds and test
every group against a reference (the best group, or a named baseline; rules: `analysis.stats`).
Pure: no store access, no output.

Grouping (`default_by`): the keys the sweep varied (its parent run's `attnbench.sweep_keys`,
minus the seed), else `attention` plus `backbone` / `task` when those differ between the runs.
A group whose runs still differ in another trained config key (`pooled_keys`) pools settings
as if they were seeds: it is marked, and no paired test is made against it or with it.

Only training runs are seeds: `evaluate` and `reproduce` runs (`names.rerun_kind`) are left out
of every group and kept aside (`Comparison.reruns`). Each tested group gets its effect against the
reference (`analysis.effects`); one the test does not separate from it is *tied* only when the
interval of the difference lies within the margin, else *inconclusive*. Steps, what stopped
training and parameters are shown per group (`analysis.budget`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from attnbench.analysis import budget, effects, stats
from attnbench.analysis.keys import (
    config_value,
    default_by,
    lookup,
    pairing_key,
    parse_baseline,
    pooled_keys,
    trained_config,
)
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.names import (
    COST_COLUMNS,
    COST_PARAMS,
    HIGHER,
    IDENTITY_TAGS,
    KIND_TAG,
    NO_DIRECTION,
    PRIMARY_METRIC_TAG,
    SWEEP_KIND,
    TASK_TAG,
    metric_direction,
    metric_range,
    rerun_kind,
)
from attnbench.store.tracker import RunInfo

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
    effect: effects.Effect | None = None  # against the reference (None: the reference, untested)
    # best | baseline | tied | inconclusive | worse | better (vs a baseline) | ? | unranked
    status: str = "worse"
    reason: str = ""  # why "?": pooled, n<2, best n<2, baseline n<2; inconclusive: n=K
    steps: float | None = None  # mean optimiser steps trained (analysis.budget)
    stopped_by: str = budget.ALL_EPOCHS  # what ended training: epochs, max_steps, max_time
    extra: dict[str, Any] = field(default_factory=dict)  # values of Comparison.columns (tuning)

    @property
    def label(self) -> str:
        return ", ".join(self.key.values())



@dataclass
class Comparison:
    label: str
    name: str
    metric: str
    by: list[str]
    direction: str  # higher | lower | none (see store.names.metric_direction)
    groups: list[Group]  # best first (by group key when the metric has no direction)
    excluded: int = 0  # runs not FINISHED or without the metric
    duplicates: int = 0  # older runs of an identical config in the same group (latest kept)
    parent: RunInfo | None = None
    notes: list[str] = field(default_factory=list)
    correction: str = "none"  # multiple-comparison correction: one of stats.CORRECTIONS
    baseline: dict[str, str] | None = None  # the named reference group (None: the best)
    bounds: stats.Bounds = None  # the metric's range: every interval stays inside it
    margin: float | None = None  # the equivalence margin of "tied" (None: not ranked)
    margin_given: bool = False  # --margin, not the default
    reruns: list[RunInfo] = field(default_factory=list)  # evaluate / reproduce runs left out
    show_reruns: bool = False  # list them in the report (compare --reruns)
    # more columns (analysis.columns.Column), declared by whoever read the sweep (analysis.tuning)
    columns: list[Any] = field(default_factory=list)
    where: str = ""  # the filter the runs were selected by (compare --filter), '' for none

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
        versus = "best" if self.baseline is None else "baseline"
        origin = "--margin" if self.margin_given else "default: 2 % of the range" if (
            self.bounds is not None) else "default: 2 % of the reference's mean"
        text += (
            f"; Δ {versus} = paired difference with its 95 % CI (Welch when < 2 pairs); "
            + effects.MARGIN_RULE.format(margin=f"{self.margin:.4g} ({origin})")
        )
        return text if self.baseline is None else text.replace("the best", "the baseline")

    @property
    def range_note(self) -> str:
        """How intervals keep to a bounded metric's range ('' when it has none)."""
        if self.bounds is None:
            return ""
        lo, hi = self.bounds
        clipped = " (clipped ones shown as [low, high])" if any(
            g.summary.clipped for g in self.groups) else ""
        return f"intervals clipped to the metric's range [{lo:g}, {hi:g}]{clipped}"

    @property
    def budget_warning(self) -> str | None:
        """One line when groups differ in steps or parameters by more than 10 % (else None)."""
        return budget.budget_warning(
            {g.label: g.steps for g in self.groups},
            {g.label: g.cost.get(COST_PARAMS) for g in self.groups},
        )

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
        across = (
            ", or summarise over tasks with --across task"
            if {TASK_TAG, f"{TASK_TAG}.name"} & set(keys) else ""
        )
        return (
            f"groups pool runs that differ in {listed}: {runs} runs; add {them} to --by to "
            f"split the groups{across}"
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
        if self.range_note:
            parts.append(self.range_note)
        if self.budget_warning:
            parts.append(f"warning: {self.budget_warning}")
        if self.pooled:
            parts.append(
                f"{POOLED}: the group mixes runs that differ in {', '.join(self.pooled)} "
                "(not seeds of one setting), so it is not tested"
            )
        if self.excluded:
            parts.append(f"{self.excluded} run(s) not FINISHED or without {self.metric} left out")
        if self.duplicates:
            parts.append(f"{self.duplicates} older duplicate run(s) ignored (latest kept)")
        if self.reruns:
            parts.append(
                f"{len(self.reruns)} evaluate/reproduce run(s) left out (not seeds; --reruns "
                "lists them)"
            )
        return "; ".join(parts + self.notes)


def default_metric(runs: Sequence[RunInfo]) -> str:
    primaries = sorted({r.tags.get(PRIMARY_METRIC_TAG) or "acc" for r in runs})
    if len(primaries) > 1:
        raise ConfigError(
            f"The runs have different primary metrics ({', '.join(primaries)}): pick one with "
            f"--metric, e.g. --metric test/{primaries[0]}, or summarise across tasks with "
            "--across task"
        )
    return f"test/{primaries[0]}"


def check_correction(correction: str) -> None:
    if correction not in stats.CORRECTIONS:
        raise ConfigError(
            f"Unknown --correction '{correction}'. Choose one of: {', '.join(stats.CORRECTIONS)}"
        )


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
    margin: float | None = None,
) -> Comparison:
    """Group, aggregate over seeds and test every group against the best or the `baseline`
    group (pure: no store access). `by=None`: `default_by`; `margin`: the equivalence margin
    of "tied" (None: `effects.default_margin`)."""
    check_correction(correction)
    check_margin(margin)
    given = margin is not None
    reruns = [r for r in selection.runs if rerun_kind(r.tags)]
    finished = [
        r
        for r in selection.runs
        if r.status == "FINISHED" and r.tags.get(KIND_TAG) != SWEEP_KIND and not rerun_kind(r.tags)
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
    bounds = metric_range(metric)
    groups = [
        _group(dict(zip(by, gkey, strict=True)), list(slot.values()), by, metric, bounds)
        for gkey, slot in members.items()
    ]
    if direction == NO_DIRECTION:
        groups.sort(key=lambda g: tuple(g.key.values()))
        for g in groups:
            g.status = UNRANKED
    else:
        margin = _rank(groups, direction, wanted, correction, bounds, margin)
    return Comparison(
        selection.label,
        selection.name,
        metric,
        by,
        direction,
        groups,
        excluded=len(selection.runs) - len(reruns) - len(usable),
        duplicates=duplicates,
        parent=selection.parent,
        correction=correction,
        baseline=wanted,
        bounds=bounds,
        margin=margin if direction != NO_DIRECTION else None,
        margin_given=given and direction != NO_DIRECTION,
        reruns=reruns,
        where=selection.where,
    )


def check_margin(margin: float | None) -> None:
    if margin is not None and not (math.isfinite(margin) and margin >= 0):
        raise ConfigError(
            f"--margin {margin}: give a number >= 0 in the metric's units, e.g. --margin 0.02 "
            "for accuracy (default: 2 % of the metric's range)"
        )


def _rank(
    groups: list[Group],
    direction: str,
    wanted: dict[str, str] | None,
    correction: str,
    bounds: stats.Bounds,
    margin: float | None,
) -> float:
    """Sort best first, test every group against the reference and set the statuses; returns
    the equivalence margin used."""
    sign = 1.0 if direction == HIGHER else -1.0
    groups.sort(key=lambda g: (-sign * g.summary.mean, -g.summary.n, g.label))
    ref = groups[0] if wanted is None else find_baseline(groups, wanted)
    ref.status = "best" if wanted is None else "baseline"
    ref_name = "best" if wanted is None else "baseline"
    if margin is None:
        margin = effects.default_margin(bounds, ref.summary.mean)
    others = [g for g in groups if g is not ref]
    for g in others:
        if g.pooled or ref.pooled:
            g.status, g.reason = "?", POOLED if g.pooled else f"{ref_name} {POOLED}"
        else:
            g.test = stats.paired_test(ref.values, g.values)
            g.effect = effects.effect(ref.values, g.values, bounds)
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
            g.status = effects.tie_or_inconclusive(g.effect, margin)
            if g.status == "inconclusive":
                g.reason = f"n={g.effect.n if g.effect else g.test.n_pairs}"
        elif wanted is None:
            g.status = "worse"
        else:
            better = sign * (g.summary.mean - ref.summary.mean) > 0
            g.status = "better" if better else "worse"
    return margin


def _group(
    key: dict[str, str], runs: list[RunInfo], by: Sequence[str], metric: str, bounds: stats.Bounds
) -> Group:
    values = {pairing_key(r, by): float(r.metrics[metric]) for r in runs}
    every = [float(r.metrics[metric]) for r in runs]
    cost: dict[str, float | None] = {}
    for name, _ in COST_COLUMNS:
        xs = [r.metrics[name] for r in runs if name in r.metrics]
        cost[name] = sum(xs) / len(xs) if xs else None
    return Group(
        key, runs, values, every, stats.summarize(every, bounds), cost, pooled_keys(runs, by),
        steps=budget.group_steps(runs), stopped_by=budget.stopped_by(runs),
    )

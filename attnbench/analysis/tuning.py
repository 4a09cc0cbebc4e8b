"""Sweeps whose groups were chosen, read on validation and never on test: tuned sweeps and
search sweeps (Optuna).

A **tuned sweep** (`attnbench sweep ... --tune KEY=V1,V2,...`, run.tune) carries its protocol on
its parent run (`TUNE_TAG`). Stage 1 trained every group (a cell of the grid less its seed and
the tuned keys) at every tuning value on the tuning seeds; `choose` picks per group the value
with the best validation primary metric (`best_val/<metric>`, the mean over the tuning seeds),
ties broken by the lower `best_val/loss`, then by the order the values were given. The final
runs are the chosen value on every seed of the sweep: on a tuning seed that is the stage-1 run
itself (same config and seed: retraining it would give the same numbers). The tuner and
`compare` call the same `choose` on the same runs, so compare shows what the tuner trained.

A **search sweep** (any Hydra sweeper but the basic grid, e.g. Optuna: `SWEEPER_TAG`) is ranked
on validation: the best group is the best `best_val/<metric>`, and each group's test metric is
reported beside it, never used to choose.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from attnbench.analysis import stats
from attnbench.analysis.columns import (
    COST,
    DASH,
    LATEX,
    MAIN,
    Column,
    metric_style,
    round_names,
)
from attnbench.analysis.comparison import Comparison, default_metric
from attnbench.analysis.render import ci_cell
from attnbench.analysis.select import Selection
from attnbench.store.names import (
    BEST_VAL,
    LOWER,
    PRIMARY_METRIC_TAG,
    SEED_TAG,
    SWEEPER_TAG,
    TUNE_TAG,
    RunIdentity,
    metric_direction,
    metric_range,
    rerun_kind,
    split_metric,
)
from attnbench.store.tracker import RunInfo

GRID_SWEEPER = "BasicSweeper"  # Hydra's grid: its groups are set by the user, not chosen
CHOSEN_BY = "chosen by"  # extra column: tuning seeds whose own best was the chosen value
TRIALS = "trials"  # extra column: stage-1 runs of the group (values x tuning seeds)


@dataclass(frozen=True)
class Protocol:
    """A tuned sweep's protocol, as its parent run records it."""

    params: dict[str, list[Any]]  # tuned key -> its values, in the order given
    tune_seeds: list[int]
    seeds: list[int]  # the sweep's seeds: the final runs'

    def to_tag(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_tag(cls, text: str | None) -> Protocol | None:
        try:
            doc = json.loads(text or "")
            return cls({str(k): list(v) for k, v in doc["params"].items()},
                       [int(s) for s in doc["tune_seeds"]], [int(s) for s in doc["seeds"]])
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    @property
    def combos(self) -> list[tuple[Any, ...]]:
        """Every combination of the tuned values (one per key), in the order given."""
        return list(itertools.product(*self.params.values()))

    def show(self, combo: Sequence[Any] | None) -> str:
        if combo is None:
            return "—"
        return ", ".join(f"{k}={v}" for k, v in zip(self.params, combo, strict=True))


@dataclass
class Choice:
    """One group's tuning: the chosen combination of values and how clearly it won."""

    group: tuple
    label: str  # e.g. "dot-transformer-assoc_recall"
    combo: tuple[Any, ...] | None  # None: no trial of the group finished
    votes: int = 0  # tuning seeds on which the chosen combination was also the best on its own
    seeds: int = 0  # tuning seeds
    trials: int = 0  # stage-1 cells (combination x tuning seed) that have a run
    score: float | None = None  # the chosen combination's mean validation metric
    trial_runs: dict[tuple[int, int], RunInfo] = field(default_factory=dict, repr=False)


def same_value(a: Any, b: Any) -> bool:
    """A tuned value equals a run's value: numbers by value (0.001 == "1e-3"), else as text."""
    try:
        if not isinstance(a, bool) and not isinstance(b, bool):
            return float(a) == float(b)
    except (TypeError, ValueError):
        pass
    return str(a).lower() == str(b).lower()


def combo_index(run: RunInfo, protocol: Protocol) -> int | None:
    """Which combination of tuned values the run trained (None: none of them)."""
    swept = RunIdentity.from_tags(run.tags).swept
    found = []
    for key in protocol.params:
        found.append(swept[key] if key in swept else run.params.get(key))
    for i, combo in enumerate(protocol.combos):
        if all(v is not None and same_value(v, c) for v, c in zip(found, combo, strict=True)):
            return i
    return None


def group_key(run: RunInfo, tuned: Sequence[str]) -> tuple:
    """The run's group: its identity less the seed and the tuned keys."""
    ident = RunIdentity.from_tags(run.tags)
    rest = tuple(sorted((k, json.dumps(v, default=str)) for k, v in ident.swept.items()
                        if k not in tuned))
    return (ident.attention, ident.backbone, ident.task, rest)


def _label(group: tuple) -> str:
    attention, backbone, task, rest = group
    return "-".join([attention, backbone, task, *(f"{k.split('.')[-1]}{json.loads(v)}"
                                                  for k, v in rest)])


def _sign(run: RunInfo) -> float:
    name = split_metric(BEST_VAL, run.tags.get(PRIMARY_METRIC_TAG) or "acc")
    return -1.0 if metric_direction(name) == LOWER else 1.0


def validation(run: RunInfo) -> tuple[float, float]:
    """(validation metric signed so higher is better, validation loss) of the best-validation
    checkpoint; a run that did not finish scores (-inf, inf)."""
    value = run.metrics.get(split_metric(BEST_VAL, run.tags.get(PRIMARY_METRIC_TAG) or "acc"))
    if run.status != "FINISHED" or value is None or not math.isfinite(value):
        return -math.inf, math.inf
    return _sign(run) * value, run.metrics.get(split_metric(BEST_VAL, "loss"), math.inf)


def _best(scores: dict[int, tuple[float, float]]) -> int | None:
    """The combination with the highest metric, then the lowest loss, then given first."""
    if not scores or all(v == -math.inf for v, _ in scores.values()):
        return None
    return max(scores, key=lambda i: (scores[i][0], -scores[i][1], -i))


def _mean(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    if any(v == -math.inf for v, _ in pairs):
        return -math.inf, math.inf
    return (sum(v for v, _ in pairs) / len(pairs), sum(loss for _, loss in pairs) / len(pairs))


def choose(runs: Sequence[RunInfo], protocol: Protocol) -> list[Choice]:
    """Per group, the combination of tuned values with the best mean validation metric over
    the tuning seeds (a trial that did not finish scores worst). Reads `best_val/*` only."""
    cells: dict[tuple, dict[tuple[int, int], RunInfo]] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        if rerun_kind(run.tags):  # an evaluate/reproduce run is no trial
            continue
        seed = run.tags.get(SEED_TAG, "")
        index = combo_index(run, protocol)
        if index is None or not seed.isdigit() or int(seed) not in protocol.tune_seeds:
            continue
        slot = cells.setdefault(group_key(run, list(protocol.params)), {})
        old = slot.get((index, int(seed)))
        if old is None or old.status != "FINISHED" or run.status == "FINISHED":
            slot[(index, int(seed))] = run  # a finished run wins, then the latest
    out = []
    for group, trials in cells.items():
        by_combo = {
            i: _mean([validation(trials[(i, s)]) if (i, s) in trials else (-math.inf, math.inf)
                      for s in protocol.tune_seeds])
            for i in range(len(protocol.combos))
        }
        best = _best(by_combo)
        votes = sum(
            _best({i: validation(r) for (i, s), r in trials.items() if s == seed}) == best
            for seed in protocol.tune_seeds
        ) if best is not None else 0
        sign = _sign(next(iter(trials.values())))
        out.append(Choice(
            group, _label(group), protocol.combos[best] if best is not None else None, votes,
            len(protocol.tune_seeds), len(trials),
            sign * by_combo[best][0] if best is not None else None, trials,
        ))
    return out


def final_runs(runs: Sequence[RunInfo], protocol: Protocol, choices: Sequence[Choice]
               ) -> list[RunInfo]:
    """The runs of each group's chosen combination on the sweep's seeds."""
    chosen = {c.group: protocol.combos.index(c.combo) for c in choices if c.combo is not None}
    out = []
    for run in runs:
        seed = run.tags.get(SEED_TAG, "")
        group = group_key(run, list(protocol.params))
        if (seed.isdigit() and int(seed) in protocol.seeds and group in chosen
                and not rerun_kind(run.tags) and combo_index(run, protocol) == chosen[group]):
            out.append(run)
    return out


@dataclass
class Reading:
    """How `compare` reads a selection: which runs, which metric ranks, what to add."""

    selection: Selection
    metric: str | None
    protocol: Protocol | None = None
    choices: list[Choice] = field(default_factory=list)
    reported: str | None = None  # search sweeps: the test metric shown beside the ranked val

    def by(self, by: Sequence[str] | None) -> Sequence[str] | None:
        """A tuned sweep's groups include the tuned keys, so runs pair across chosen values."""
        if self.protocol is None or not by:
            return by
        return [*by, *(k for k in self.protocol.params if k not in by)]

    def annotate(self, comp: Comparison) -> None:
        if self.protocol is not None:
            _annotate_tuned(comp, self.protocol, self.choices)
        elif self.reported is not None:
            _annotate_search(comp, self.reported)


def read(selection: Selection, metric: str | None) -> Reading:
    """A tuned sweep: its final runs; a search sweep: ranked on the validation counterpart of
    the test metric; anything else: as selected."""
    parent = selection.parent
    protocol = Protocol.from_tag(parent.tags.get(TUNE_TAG)) if parent else None
    if protocol is not None:
        choices = choose(selection.runs, protocol)
        finals = final_runs(selection.runs, protocol, choices)
        tuned = Selection(finals, f"{selection.label}, tuned: final runs", selection.name,
                          parent, selection.note)
        return Reading(tuned, metric, protocol, choices)
    sweeper = parent.tags.get(SWEEPER_TAG, "") if parent else ""
    if not sweeper or sweeper.endswith(GRID_SWEEPER):
        return Reading(selection, metric)
    finished = [r for r in selection.runs if r.status == "FINISHED"]
    test = metric or (default_metric(finished) if finished else None)
    if test is None or not test.startswith("test/"):
        return Reading(selection, metric)
    name = test.partition("/")[2]
    ranked = split_metric(BEST_VAL, name)
    if not any(ranked in r.metrics for r in finished):  # runs from before best_val/*
        ranked = split_metric("val", name)
    return Reading(selection, ranked, reported=test)


def _annotate_tuned(comp: Comparison, protocol: Protocol, choices: Sequence[Choice]) -> None:
    of = {c.group: c for c in choices}
    keys = list(protocol.params)
    for g in comp.groups:
        mine = list({group_key(r, keys): of[group_key(r, keys)] for r in g.runs
                     if group_key(r, keys) in of}.values())
        g.extra[CHOSEN_BY] = " ".join(sorted({f"{c.votes}/{c.seeds}" for c in mine}))
        g.extra[TRIALS] = " ".join(sorted({str(c.trials) for c in mine}))
    # beside the cost columns: what each group was given (its chosen value is a group key)
    comp.columns += [Column(name, lambda g, name=name: g.extra.get(name, ""), fields=name,
                            show=frozenset({COST})) for name in (CHOSEN_BY, TRIALS)]
    seeds = ",".join(map(str, protocol.tune_seeds))
    values = "; ".join(f"{k} in {', '.join(map(str, v))}" for k, v in protocol.params.items())
    primary = comp.metric.partition("/")[2]
    comp.notes.append(
        f"tuned: per group, {values} chosen on {BEST_VAL}/{primary} (validation; ties: lower "
        f"{BEST_VAL}/loss) over tuning seed(s) {seeds}; {CHOSEN_BY}: tuning seeds whose own "
        f"best was the chosen value; final runs: the chosen value on seeds "
        f"{','.join(map(str, protocol.seeds))}"
    )
    counts = sorted({c.trials for c in choices})
    if len(counts) > 1:
        comp.notes.append(f"unequal tuning: groups had {', '.join(map(str, counts))} trials "
                          "(an interrupted sweep: --resume completes it)")
    untuned = [c.label for c in choices if c.combo is None]
    if untuned:
        comp.notes.append(f"no tuning trial finished for {', '.join(untuned)}: left out")


def _annotate_search(comp: Comparison, reported: str) -> None:
    column = f"{reported} (mean ± 95% CI)"
    style = metric_style(reported)
    for g in comp.groups:
        values = [float(r.metrics[reported]) for r in g.runs if reported in r.metrics]
        g.extra[column] = stats.summarize(values, metric_range(reported)) if values else None

    def text(s: stats.Summary | None) -> str:
        """Mean ± the 95 % interval, kept inside the metric's range (as the table's own)."""
        return DASH if s is None else ci_cell(s, style).text

    comp.columns.append(Column(
        column, lambda g: g.extra.get(column),
        lambda s: DASH if s is None else ci_cell(s, style),
        lambda s: {column: text(s)}, frozenset({MAIN, LATEX})))
    if not comp.groups or not comp.ranked:
        return
    best = comp.groups[0]
    label = ", ".join(round_names([g.key[k] for g in comp.groups])[v] for k, v in best.key.items())
    comp.notes.append(
        f"search sweep: groups ranked and the best picked on {comp.metric} (validation), "
        f"{reported} reported, never used to choose; best on validation: {label}, "
        f"{reported} {text(best.extra[column])} (n={best.summary.n})"
    )


def protocol_tag(params: Mapping[str, Sequence[Any]], tune_seeds: Sequence[int],
                 seeds: Sequence[int]) -> str:
    """The parent run's TUNE_TAG value (written by run.tune)."""
    return Protocol({k: list(v) for k, v in params.items()}, list(tune_seeds),
                    list(seeds)).to_tag()

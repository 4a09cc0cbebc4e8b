"""The cross-task summary of `attnbench compare --across task`: a variant x task table, each
variant's average rank, a Friedman test over the tasks with the Nemenyi post-hoc and the critical
difference (Demšar 2006), and Long Range Arena's plain average. Pure: no store access, no output.

Rules (stated in the caption, see ``Across.caption``):

- Each cell is one task's comparison (`model.compare_runs`, the same rules as plain `compare`):
  mean over seeds ± its 95 % t-interval, clipped to the metric's range; each task is scored on its
  own primary metric (`test/<attnbench.primary_metric>`) unless --metric names one for all.
- Ranks: within each task the variants are ranked by their mean (1 = best, in the metric's better
  direction; ties share the average rank); a variant's average rank is the mean over the tasks.
  Only variants with a cell in every task are ranked (the test needs complete blocks).
- Friedman's test (scipy's ``friedmanchisquare``, with its tie correction) asks whether the
  variants' ranks differ at all over the N tasks; it needs at least 3 variants and 2 tasks.
- Nemenyi's post-hoc (scikit-posthocs' ``posthoc_nemenyi_friedman``) compares every pair of
  variants; the critical difference CD = q(0.05, k) · √(k (k+1) / (6 N)), q the studentized range
  quantile / √2 (Demšar 2006, Table 5), is the gap in average rank it takes. As Demšar
  prescribes, its pairs are read only when Friedman rejects (p < 0.05). With few tasks CD is
  large: 10 variants on 4 tasks need a gap of 6.8 ranks, so the diagram mostly says "cannot
  tell" — more tasks, not more seeds, narrow it.
- Average (LRA, Tay et al. 2021): the plain mean over tasks of each variant's mean, each metric
  read as a share of its range (BLEU / 100), so tasks on different scales weigh the same; none
  when a task's metric has no range or the variant misses a task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from attnbench.analysis import stats
from attnbench.analysis.comparison import Group, compare_runs
from attnbench.analysis.keys import default_by, lookup
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.names import (
    HIGHER,
    KIND_TAG,
    NO_DIRECTION,
    PRIMARY_METRIC_TAG,
    SWEEP_KIND,
    TASK_TAG,
    metric_range,
    rerun_kind,
)
from attnbench.store.tracker import RunInfo

ALPHA = stats.ALPHA


# -- statistics over a (tasks x variants) matrix, higher = better in every row ------------------
def average_ranks(matrix: Sequence[Sequence[float]]) -> list[float]:
    """Mean over the rows (tasks) of each column's (variant's) rank within the row: 1 = the
    highest value; ties share the average of the ranks they span."""
    from scipy.stats import rankdata

    ranks = [rankdata([-v for v in row], method="average") for row in matrix]
    return [float(sum(r[j] for r in ranks) / len(ranks)) for j in range(len(matrix[0]))]


def friedman(matrix: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """(χ², p) of Friedman's test over the rows as blocks; None when it cannot be made (fewer
    than 3 columns or 2 rows, or every row all ties)."""
    if len(matrix) < 2 or len(matrix[0]) < 3:
        return None
    import warnings

    from scipy.stats import friedmanchisquare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = friedmanchisquare(*[[row[j] for row in matrix] for j in range(len(matrix[0]))])
    if not (math.isfinite(res.statistic) and math.isfinite(res.pvalue)):
        return None
    return float(res.statistic), float(res.pvalue)


def nemenyi(
    matrix: Sequence[Sequence[float]], labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Nemenyi's pairwise p-values after Friedman (scikit-posthocs), label -> label -> p."""
    import numpy as np
    import pandas as pd
    import scikit_posthocs as sp

    frame = pd.DataFrame(np.asarray(matrix, dtype=float), columns=list(labels))
    table = sp.posthoc_nemenyi_friedman(frame)
    return {a: {b: float(table.loc[a, b]) for b in labels} for a in labels}


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks for k variants over n tasks (Demšar
    2006): q_α √(k (k+1) / (6 n)), q_α = the studentized range quantile (k, ∞) / √2."""
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1 - alpha, k, math.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n))


# -- the model ----------------------------------------------------------------------------------
@dataclass
class Row:
    key: dict[str, str]  # the variant: --by key -> value
    cells: dict[str, Group]  # column (task) -> that task's group of this variant
    rank: float | None = None  # average rank over the tasks (None: misses a task)
    average: float | None = None  # LRA's plain average of the range-scaled means

    @property
    def label(self) -> str:
        return ", ".join(self.key.values())


@dataclass
class Across:
    label: str
    name: str
    key: str  # what the columns are: "task"
    by: list[str]
    columns: list[str]
    metrics: dict[str, str]  # column -> the metric compared there
    rows: list[Row]  # best average rank first; incomplete rows last
    friedman: tuple[float, float] | None = None  # (χ², p)
    nemenyi: dict[str, dict[str, float]] = field(default_factory=dict)
    cd: float | None = None
    parent: RunInfo | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[Row]:
        return [r for r in self.rows if r.rank is not None]

    @property
    def rejected(self) -> bool:
        """Friedman's test found that the ranks differ (p < 0.05)."""
        return self.friedman is not None and self.friedman[1] < ALPHA

    @property
    def different_pairs(self) -> list[tuple[str, str, float]]:
        """Pairs Nemenyi separates (p < 0.05), better-ranked first in each pair; none unless
        Friedman rejected first (the post-hoc is read only after the omnibus test, Demšar 2006)."""
        if not self.rejected:
            return []
        names = [r.label for r in self.ranked]
        return [
            (a, b, self.nemenyi[a][b])
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if self.nemenyi[a][b] < ALPHA
        ]

    @property
    def caption(self) -> str:
        n, k = len(self.columns), len(self.ranked)
        parts = [
            "cell = mean ± 95 % t-interval over seeds of each task's own metric "
            f"({', '.join(f'{c}: {m}' for c, m in self.metrics.items())}), clipped to its range",
            f"avg rank over {n} {self.key}s (1 = best; ties share ranks) of the {k} variants "
            f"with a cell in every {self.key}",
        ]
        if self.friedman is None:
            parts.append(
                "Friedman test: not possible (needs ≥ 3 variants, ≥ 2 tasks, not all tied)"
            )
        else:
            chi2, p = self.friedman
            verdict = "ranks differ" if p < ALPHA else "no evidence that the ranks differ"
            parts.append(f"Friedman χ² = {chi2:.3f}, p = {_p(p)} ({verdict})")
        if self.cd is not None:
            pairs = self.different_pairs
            shown = ", ".join(f"{a} > {b} (p = {_p(p)})" for a, b, p in pairs) or "none"
            verdict = (f"pairs that differ: {shown}" if self.rejected
                       else "not read, as Friedman did not reject")
            parts.append(
                f"Nemenyi post-hoc: critical difference {self.cd:.2f} ranks (Demšar 2006); "
                f"{verdict}"
            )
        parts.append(
            "average = LRA's plain mean over tasks, each metric as a share of its range"
        )
        return "; ".join(parts + self.notes)


def across_runs(
    selection: Selection,
    key: str = TASK_TAG,
    by: Sequence[str] | None = None,
    metric: str | None = None,
) -> Across:
    """Compare the variants within each value of `key` (a task) and summarise across them."""
    runs = [
        r
        for r in selection.runs
        if r.status == "FINISHED" and r.tags.get(KIND_TAG) != SWEEP_KIND and not rerun_kind(r.tags)
    ]
    if not runs:
        raise ConfigError(f"No FINISHED runs to compare in {selection.label}")
    per_column: dict[str, list[RunInfo]] = {}
    for run in runs:
        per_column.setdefault(lookup(run, key) or "—", []).append(run)
    if len(per_column) < 2:
        only = next(iter(per_column))
        raise ConfigError(
            f"--across {key}: every run in {selection.label} has {key} {only}; it needs runs of "
            f"at least 2 {key}s (leave --across out to compare within one)"
        )
    by = _variant_keys(selection, runs, key, by)
    columns = sorted(per_column)
    metrics = {c: metric or _primary(per_column[c], c, key) for c in columns}
    comps = {
        c: compare_runs(Selection(per_column[c], selection.label, selection.name), by, metrics[c])
        for c in columns
    }
    rows: dict[tuple[str, ...], Row] = {}
    for c in columns:
        for g in comps[c].groups:
            rows.setdefault(tuple(g.key.values()), Row(dict(g.key), {})).cells[c] = g
    out = Across(selection.label, selection.name, key, list(by), columns, metrics,
                 list(rows.values()), parent=selection.parent)
    _summarise(out, {c: comps[c].direction for c in columns})
    for c in columns:
        if comps[c].pooled:
            out.notes.append(f"{c}: {comps[c].pooled_message}")
    duplicates = sum(comps[c].duplicates for c in columns)
    if duplicates:
        out.notes.append(f"{duplicates} older duplicate run(s) ignored (latest kept)")
    reruns = sum(1 for r in selection.runs if rerun_kind(r.tags))
    if reruns:
        out.notes.append(f"{reruns} evaluate/reproduce run(s) left out (not seeds)")
    return out


def _variant_keys(
    selection: Selection, runs: list[RunInfo], key: str, by: Sequence[str] | None
) -> list[str]:
    if by:
        chosen = [k.strip() for k in by if k.strip()]
        if any(k == key or k == f"{key}.name" for k in chosen):
            raise ConfigError(f"--by {','.join(chosen)}: {key} is the column of --across {key}")
        return chosen
    keys = [k for k in default_by(selection, runs) if k not in (key, f"{key}.name")]
    return keys or ["attention"]


def _primary(runs: list[RunInfo], column: str, key: str) -> str:
    primaries = sorted({r.tags.get(PRIMARY_METRIC_TAG) or "acc" for r in runs})
    if len(primaries) > 1:
        raise ConfigError(
            f"The runs of {key} {column} have different primary metrics ({', '.join(primaries)}): "
            f"pick one with --metric, e.g. --metric test/{primaries[0]}"
        )
    return f"test/{primaries[0]}"


def _summarise(out: Across, directions: dict[str, str]) -> None:
    """Average ranks, Friedman, Nemenyi, CD and the plain average; rows sorted best first."""
    unranked = [c for c, d in directions.items() if d == NO_DIRECTION]
    if unranked:
        out.notes.append(f"not ranked: {', '.join(unranked)} has no better direction")
        out.rows.sort(key=lambda r: r.label)
        return
    complete = [r for r in out.rows if len(r.cells) == len(out.columns)]
    missing = [r.label for r in out.rows if len(r.cells) < len(out.columns)]
    if missing:
        out.notes.append(f"not ranked (missing a {out.key}): {', '.join(missing)}")
    for row in out.rows:
        row.average = _average(row, out)
    if not complete:
        return
    # tasks x variants, higher = better everywhere
    sign = {c: 1.0 if directions[c] == HIGHER else -1.0 for c in out.columns}
    matrix = [[sign[c] * r.cells[c].summary.mean for r in complete] for c in out.columns]
    for row, rank in zip(complete, average_ranks(matrix), strict=True):
        row.rank = rank
    labels = [r.label for r in complete]
    out.friedman = friedman(matrix)
    if out.friedman is not None:
        out.nemenyi = nemenyi(matrix, labels)
        out.cd = critical_difference(len(complete), len(out.columns))
    out.rows.sort(key=lambda r: (r.rank is None, r.rank or 0.0, r.label))


def _average(row: Row, out: Across) -> float | None:
    if len(row.cells) < len(out.columns):
        return None
    shares = []
    for c in out.columns:
        bounds = metric_range(out.metrics[c])
        if bounds is None:
            return None
        shares.append((row.cells[c].summary.mean - bounds[0]) / (bounds[1] - bounds[0]))
    return sum(shares) / len(shares)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"

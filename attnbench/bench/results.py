"""What a bench measured: one `Row` per case and length, the `BenchResult` holding them with
the conditions, and what is derived from the rows — medians and IQRs from the timings, the
scaling exponents (log–log slopes vs T), the crossover lengths against ``scaled``, and the
ratios to a variant's references.

No torch here: `output` and `baseline` read results without building anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnbench.bench.plan import BenchPlan

CROSSOVER_BASE = "scaled"  # the crossover column: from which length a variant beats this one


@dataclass
class Row:
    """One line of the table: one case at one length, as measured (None = not measured).
    ``median_ms`` is the time of one call in every mode: forward + backward (``train``: also
    ``fwd_ms`` and ``bwd_ms``, each phase's own median), the inference forward (``forward``),
    one decoding step after a T-position prefix (``decode``: then ``state_mb`` is the state)."""

    label: str
    variant: str
    kind: str
    n: int
    median_ms: float | None = None
    iqr_ms: float | None = None
    fwd_ms: float | None = None
    bwd_ms: float | None = None
    repeats: int = 0
    peak_mb: float | None = None
    state_mb: float | None = None
    gflops: float | None = None
    pct_peak: float | None = None
    note: str = ""


@dataclass
class BenchResult:
    """Every row, the scaling exponents and the conditions they were measured in."""

    plan: BenchPlan
    rows: list[Row]
    exponents: dict[str, float | None]
    peak_gflops: float
    threads: int
    load: tuple[float, float]  # 1-minute load average at start and end
    device_name: str = ""  # CPU model or GPU name
    peak_n: int = 0  # N of the N×N matmul that measured peak_gflops
    # variant label -> the shortest T from which it beats `scaled` (None: not within the lengths);
    # empty when `scaled` was not benchmarked
    crossovers: dict[str, int | None] = field(default_factory=dict)
    # decode: label -> log–log slope of the state's bytes vs T
    state_exponents: dict[str, float | None] = field(default_factory=dict)
    # label -> why it was skipped at every length (a variant without a causal form, ...)
    skipped: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    png: Path | None = None
    run_id: str | None = None


def record_times(row: Row, times: Sequence[Sequence[float]], note: str | None,
                 flops: float | None, dead: dict[str, str]) -> None:
    """A case's timings (seconds per phase, one tuple per repeat) into its row: median and IQR
    of each repeat's sum, each phase's median when there are two (forward, backward), GFLOP/s;
    with its note. A case that ran out of memory marks its label dead for the longer lengths."""
    if note is not None:
        row.note = note
        if note.startswith("skipped"):
            dead[row.label] = "skipped: a shorter T ran out of memory"
    ts = sorted(sum(parts) for parts in times)
    if not ts:
        return
    q1, _, q3 = (
        statistics.quantiles(ts, n=4, method="inclusive")
        if len(ts) > 1
        else (ts[0], 0, ts[0])
    )
    row.median_ms = statistics.median(ts) * 1e3
    row.iqr_ms = (q3 - q1) * 1e3
    row.repeats = len(ts)
    if len(times[0]) == 2:
        row.fwd_ms, row.bwd_ms = (statistics.median(p[i] for p in times) * 1e3 for i in (0, 1))
    if flops:  # 0: nothing a FLOP counter counts (`none`)
        row.gflops = flops / (row.median_ms / 1e3) / 1e9


def scaling_exponent(ns: Sequence[int], values: Sequence[float]) -> float | None:
    """Least-squares slope of log(value) vs log(T); None with fewer than two lengths."""
    if len(ns) < 2:
        return None
    import numpy as np

    return float(np.polyfit(np.log(np.asarray(ns, float)), np.log(np.asarray(values)), 1)[0])


def exponents(rows: Sequence[Row], attr: str = "median_ms") -> dict[str, float | None]:
    """Per case label, `scaling_exponent` of `attr` over the lengths where it was measured (> 0)."""
    out: dict[str, float | None] = {}
    for label in dict.fromkeys(r.label for r in rows):
        pts = [(r.n, getattr(r, attr)) for r in rows if r.label == label and getattr(r, attr)]
        out[label] = scaling_exponent([p[0] for p in pts], [p[1] for p in pts])
    return out


def crossover(mine: Mapping[int, float], base: Mapping[int, float]) -> int | None:
    """The shortest length from which `mine` is faster than `base` at every longer length where
    both were measured (a lucky short length followed by slower ones does not count); None if
    it is not faster at the longest common length."""
    found = None
    for n in sorted(set(mine) & set(base), reverse=True):
        if mine[n] >= base[n]:
            break
        found = n
    return found


def crossovers(rows: Sequence[Row]) -> dict[str, int | None]:
    """Per variant (not its references, not `scaled` itself): `crossover` against `scaled`'s
    times; empty when `scaled` was not benchmarked."""

    def times(label: str) -> dict[int, float]:
        return {r.n: r.median_ms for r in rows if r.label == label and r.median_ms is not None}

    base = times(CROSSOVER_BASE)
    if not any(r.label == CROSSOVER_BASE for r in rows):
        return {}
    labels = dict.fromkeys(r.label for r in rows if r.kind == "variant")
    return {lb: crossover(times(lb), base) for lb in labels if lb != CROSSOVER_BASE}


def ratio(rows: Sequence[Row], row: Row, kind: str, attr: str = "median_ms") -> float | None:
    """`row`'s value divided by the same variant's `kind` reference at the same T."""
    mine = getattr(row, attr)
    for other in rows:
        if other.variant == row.variant and other.n == row.n and other.kind == kind:
            theirs = getattr(other, attr)
            return mine / theirs if mine is not None and theirs else None
    return None

"""The measurement: cost models (FLOPs, memory estimates, the machine's matmul peak), interleaved
timing in this process, memory per case (`bench.memory`), and the scaling exponents."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnbench.bench.kernels import Runner, build_runner, cases_for
from attnbench.bench.memory import measure_memory
from attnbench.bench.plan import KINDS, BenchPlan, BenchSettings, Case

FLOAT_BYTES = 4  # float32
MIN_REPEATS = 3


# -- cost models ---------------------------------------------------------------------------------
def flop_count(case: Case, node: Mapping[str, Any], settings: BenchSettings) -> float | None:
    """Matmul FLOPs of one forward+backward (backward = 2× forward; fused recomputation not
    counted); None where matmuls do not dominate (additive: tanh over (B, T, T, Hd))."""
    b, t, d = settings.batch, case.n, settings.dim
    core = 4.0 * b * t * t * d  # QKᵀ and PV, 2 FLOPs per multiply-add
    if case.variant in ("dot", "scaled"):
        return 3 * core
    if case.variant == "multihead":
        if case.kind == "bare":  # the SDPA call alone
            return 3 * core
        return 3 * (core + 4 * 2.0 * b * t * d * d)  # + q, k, v and output projections
    return None


def estimate_bytes(case: Case, node: Mapping[str, Any], settings: BenchSettings) -> int:
    """A generous estimate of the peak memory of one case (inputs included)."""
    b, t, d = settings.batch, case.n, settings.dim
    io = 10 * b * t * d * FLOAT_BYTES  # q, k, v, output, their gradients, projections
    pairs = b * t * t * FLOAT_BYTES  # one (B, T, T) float32 tensor
    if case.variant == "additive":
        hd = int(node.get("hidden") or d)
        if case.kind == "naive":  # the (B, T, T, Hd) broadcast, its tanh, and their gradients
            return io + 3 * pairs * hd + 4 * pairs
        chunk = min(int(node.get("chunk_bytes") or 2**22), pairs * hd)
        return io + 4 * pairs + 2 * chunk
    heads = int(node.get("heads") or 1)
    if case.variant in ("dot", "scaled", "multihead"):
        if case.kind == "naive":  # scores, weights and their gradients per head
            return 2 * io + 4 * pairs * heads
        return 2 * io + 2 * b * heads * t * FLOAT_BYTES  # fused: O(T) extra (log-sum-exp)
    return io + 4 * pairs * heads  # an unknown variant: assume it materialises its weights


def available_bytes() -> int | None:
    """Memory available to new allocations (MemAvailable), or None when unknown."""
    try:
        import psutil  # type: ignore[import-not-found]

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def matmul_peak_gflops(size: int, repeats: int = 5) -> float:
    """The machine's float32 matmul rate: best of `repeats` N×N @ N×N products."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def scaling_exponent(ns: Sequence[int], seconds: Sequence[float]) -> float | None:
    """Least-squares slope of log(time) vs log(T); None with fewer than two lengths."""
    if len(ns) < 2:
        return None
    import numpy as np

    return float(np.polyfit(np.log(np.asarray(ns, float)), np.log(np.asarray(seconds)), 1)[0])


# -- timing (this process) -----------------------------------------------------------------------
def _out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or ("alloc" in text and "memory" in text)


def time_cases(
    runners: dict[Case, Runner], settings: BenchSettings
) -> tuple[dict[Case, list[float]], dict[Case, str]]:
    """Interleaved timings (seconds) per case, and a note for each case that failed."""
    times: dict[Case, list[float]] = {c: [] for c in runners}
    notes: dict[Case, str] = {}
    want: dict[Case, int] = {}
    for case, run in runners.items():
        want[case] = settings.repeats
        try:
            for _ in range(settings.warmup):
                t0 = time.perf_counter()
                run()
                once = time.perf_counter() - t0
                if once * settings.repeats > settings.budget_s:  # keep long cases within budget
                    want[case] = max(
                        MIN_REPEATS, min(settings.repeats, int(settings.budget_s / once))
                    )
        except (RuntimeError, MemoryError) as err:
            if not _out_of_memory(err):
                raise
            notes[case] = "skipped: out of memory"
        run.clear()
    live = [c for c in runners if c not in notes]
    for i in range(max((want[c] for c in live), default=0)):
        for case in live:
            if i >= want[case] or case in notes:
                continue
            try:
                t0 = time.perf_counter()
                runners[case]()
                times[case].append(time.perf_counter() - t0)
            except (RuntimeError, MemoryError) as err:
                if not _out_of_memory(err):
                    raise
                notes[case] = "skipped: out of memory"
            runners[case].clear()
    for case in live:
        if case not in notes and want[case] < settings.repeats:
            notes[case] = f"{want[case]} repeats (budget_s)"
    return times, notes


# -- the whole benchmark -------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table: one case at one length, as measured (None = not measured)."""

    label: str
    variant: str
    kind: str
    n: int
    median_ms: float | None = None
    iqr_ms: float | None = None
    repeats: int = 0
    peak_mb: float | None = None
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
    out_dir: Path | None = None
    png: Path | None = None
    run_id: str | None = None


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux/macOS
        return float("nan")


def run_cases(plan: BenchPlan, log: Callable[[str], None] = lambda _msg: None) -> BenchResult:
    """Time every case, measure its memory, and fit the scaling exponents (no output files)."""
    from attnbench.training.seeding import set_threads

    s = plan.settings
    threads = set_threads(s.threads, 1)
    load0 = _loadavg()
    cores = os.cpu_count() or 1
    if load0 > cores:
        log(
            f"the machine is busy (load {load0:.1f} on {cores} cores): absolute times are noisy; "
            "the ratios (cases of one length run interleaved) hold up better"
        )
    log(f"matmul peak: {s.peak_size}³ float32 on {threads} thread(s)…")
    peak = matmul_peak_gflops(s.peak_size)
    rows: dict[Case, Row] = {}
    dead: dict[str, str] = {}  # label -> why it stopped (larger T would fail too)
    for n in sorted(set(s.seq_lens)):
        runners: dict[Case, Runner] = {}
        avail = available_bytes()
        for variant, node in plan.variants.items():
            for case in cases_for(variant, n, s):
                row = rows[case] = Row(case.label, case.variant, case.kind, n)
                need = estimate_bytes(case, node, s)
                if case.label in dead:
                    row.note = dead[case.label]
                elif avail is not None and need > s.mem_fraction * avail:
                    row.note = (
                        f"skipped: needs ~{need / 2**30:.1f} GiB, {s.mem_fraction:g} × "
                        f"{avail / 2**30:.1f} GiB available"
                    )
                    dead[case.label] = "skipped: a shorter T did not fit in memory"
                else:
                    runners[case] = build_runner(case, node, s)
        log(f"T={n}: timing {len(runners)} case(s), {s.repeats} interleaved repeats…")
        times, notes = time_cases(runners, s)
        for case in runners:
            row = rows[case]
            if case in notes:
                row.note = notes[case]
                if notes[case].startswith("skipped"):
                    dead[case.label] = "skipped: a shorter T ran out of memory"
            ts = sorted(times[case])
            if not ts:
                continue
            q1, _, q3 = (
                statistics.quantiles(ts, n=4, method="inclusive")
                if len(ts) > 1
                else (ts[0], 0, ts[0])
            )
            row.median_ms = statistics.median(ts) * 1e3
            row.iqr_ms = (q3 - q1) * 1e3
            row.repeats = len(ts)
            fl = flop_count(case, plan.variants[case.variant], s)
            if fl is not None:
                row.gflops = fl / (row.median_ms / 1e3) / 1e9
        runners.clear()
        gc.collect()
        if s.memory:
            measured = [c for c in times if times[c]]
            log(f"T={n}: peak memory of {len(measured)} case(s), one fresh process each…")
            for case in measured:
                mb, note = measure_memory(case, plan.variants[case.variant], s, threads)
                rows[case].peak_mb = mb
                if note:
                    rows[case].note = "; ".join(filter(None, [rows[case].note, note]))
    exponents: dict[str, float | None] = {}
    for label in dict.fromkeys(r.label for r in rows.values()):
        pts = [(r.n, r.median_ms / 1e3) for r in rows.values() if r.label == label and r.median_ms]
        exponents[label] = scaling_exponent([p[0] for p in pts], [p[1] for p in pts])
    order = {name: i for i, name in enumerate(plan.variants)}
    ordered = sorted(rows.values(), key=lambda r: (order[r.variant], r.n, KINDS.index(r.kind)))
    # The peak again at the end, the best of both: on a shared machine one may catch a busy spell.
    log("matmul peak again…")
    peak = max(peak, matmul_peak_gflops(s.peak_size))
    for row in ordered:
        if row.gflops is not None:
            row.pct_peak = 100.0 * row.gflops / peak
    return BenchResult(plan, ordered, exponents, peak, threads, (load0, _loadavg()))


def ratio(rows: Sequence[Row], row: Row, kind: str, attr: str = "median_ms") -> float | None:
    """`row`'s value divided by the same variant's `kind` reference at the same T."""
    mine = getattr(row, attr)
    for other in rows:
        if other.variant == row.variant and other.n == row.n and other.kind == kind:
            theirs = getattr(other, attr)
            return mine / theirs if mine is not None and theirs else None
    return None

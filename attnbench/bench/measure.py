"""The measurement: cost models (memory estimates from the variants' own facts, FLOPs counted by
torch's FLOP counter, the machine's matmul peak), interleaved timing in this process on the
plan's device, memory per case (`bench.memory`), the scaling exponents and the crossover
lengths."""

from __future__ import annotations

import functools
import gc
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attnbench.bench.device import DTYPES, available_bytes, describe, out_of_memory, timer
from attnbench.bench.kernels import Runner, build_module, build_runner, cases_for
from attnbench.bench.memory import measure_memory, measure_memory_in_process
from attnbench.bench.plan import KINDS, BenchPlan, BenchSettings, Case
from attnbench.training.throughput import count_flops  # the FLOP counter training uses too

MIN_REPEATS = 3
PEAK_CALL_S = 2.0  # longest one product of the matmul-peak measurement may take
CROSSOVER_BASE = "scaled"  # the crossover column: from which length a variant beats this one


# -- cost models ---------------------------------------------------------------------------------
def estimate_bytes(case: Case, node: Mapping[str, Any], settings: BenchSettings) -> int:
    """A generous estimate of the peak memory of one case (inputs included), in bench.dtype:
    the variant's own ``memory_bytes`` (its ``naive`` path for the naive reference, no mask),
    read on the module built on the meta device, plus ten (B, T, D) tensors twice over (q, k, v,
    output, their gradients, projections)."""
    from attnbench.attention.base import Call

    b, t, d, e = settings.batch, case.n, settings.dim, settings.element_bytes
    module = build_module(node, settings, device="meta")
    path = "naive" if case.kind == "naive" else "fast"
    return 2 * 10 * b * t * d * e + module.memory_bytes(Call(b, t, t, e, masked=False), path)


def _count_into(found: dict[Case, float], case: Case, run: Callable[[], object]) -> None:
    found[case] = count_flops(run)


def matmul_peak_gflops(
    size: int, repeats: int = 5, device: str = "cpu", dtype: str = "float32"
) -> tuple[float, int]:
    """The device's matmul rate in bench.dtype: (GFLOP/s, N), the best of `repeats` N×N @ N×N
    products. N = `size`, halved while one product would take over PEAK_CALL_S at the rate of a
    256³ probe: a dtype the device only emulates (bf16 on a CPU without bf16 units: ~1 % of
    float32's rate here) would otherwise spend minutes on the peak alone."""
    dev, dt = torch.device(device), DTYPES[dtype]
    seconds = timer(dev)

    def product(n: int) -> Callable[[], None]:
        g = torch.Generator().manual_seed(0)
        a, b = (torch.randn(n, n, generator=g).to(device=dev, dtype=dt) for _ in range(2))
        return lambda: a @ b  # type: ignore[return-value]

    probe = min(size, 256)
    run = product(probe)
    seconds(run)  # warm-up
    rate = 2.0 * probe**3 / seconds(run)
    n = size
    while n > probe and 2.0 * n**3 / rate > PEAK_CALL_S:
        n //= 2
    run = product(n)
    seconds(run)  # warm-up
    best = min(seconds(run) for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9, n


def scaling_exponent(ns: Sequence[int], seconds: Sequence[float]) -> float | None:
    """Least-squares slope of log(time) vs log(T); None with fewer than two lengths."""
    if len(ns) < 2:
        return None
    import numpy as np

    return float(np.polyfit(np.log(np.asarray(ns, float)), np.log(np.asarray(seconds)), 1)[0])


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


# -- timing (this process) -----------------------------------------------------------------------
def time_cases(
    runners: dict[Case, Runner],
    settings: BenchSettings,
    seconds: Callable[[Callable[[], None]], float] | None = None,
) -> tuple[dict[Case, list[float]], dict[Case, str], dict[Case, float]]:
    """Interleaved timings (seconds, measured by `seconds`: `device.timer`) per case, a note for
    each case that failed, and each case's FLOPs (`count_flops`, on its first warm-up call: the
    counter's overhead stays out of the timings)."""
    seconds = seconds or timer(torch.device("cpu"))
    times: dict[Case, list[float]] = {c: [] for c in runners}
    notes: dict[Case, str] = {}
    flops: dict[Case, float] = {}
    want: dict[Case, int] = {}
    for case, run in runners.items():
        want[case] = settings.repeats
        try:
            counted = functools.partial(_count_into, flops, case, run)
            if not settings.warmup:  # no warm-up to count on: one extra call
                counted()
            for i in range(settings.warmup):
                once = seconds(run if i else counted)
                if once * settings.repeats > settings.budget_s:  # keep long cases within budget
                    want[case] = max(
                        MIN_REPEATS, min(settings.repeats, int(settings.budget_s / once))
                    )
        except (RuntimeError, MemoryError) as err:
            if not out_of_memory(err):
                raise
            notes[case] = "skipped: out of memory"
        run.clear()
    live = [c for c in runners if c not in notes]
    for i in range(max((want[c] for c in live), default=0)):
        for case in live:
            if i >= want[case] or case in notes:
                continue
            try:
                times[case].append(seconds(runners[case]))
            except (RuntimeError, MemoryError) as err:
                if not out_of_memory(err):
                    raise
                notes[case] = "skipped: out of memory"
            runners[case].clear()
    for case in live:
        if case not in notes and want[case] < settings.repeats:
            notes[case] = f"{want[case]} repeats (budget_s)"
    return times, notes, flops


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
    device_name: str = ""  # CPU model or GPU name
    peak_n: int = 0  # N of the N×N matmul that measured peak_gflops
    # variant label -> the shortest T from which it beats `scaled` (None: not within the lengths);
    # empty when `scaled` was not benchmarked
    crossovers: dict[str, int | None] = field(default_factory=dict)
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
    dev = torch.device(plan.device)
    seconds = timer(dev)
    threads = set_threads(s.threads, 1)
    load0 = _loadavg()
    cores = os.cpu_count() or 1
    if load0 > cores:
        log(
            f"the machine is busy (load {load0:.1f} on {cores} cores): absolute times are noisy; "
            "the ratios (cases of one length run interleaved) hold up better"
        )
    where = f"{threads} thread(s)" if dev.type == "cpu" else str(dev)
    log(f"matmul peak: up to {s.peak_size}³ {s.dtype} on {where}…")
    peak, peak_n = matmul_peak_gflops(s.peak_size, device=plan.device, dtype=s.dtype)
    if peak_n < s.peak_size:
        log(f"matmul peak measured at {peak_n}³: {s.dtype} runs at {peak:.1f} GFLOP/s here")
    rows: dict[Case, Row] = {}
    dead: dict[str, str] = {}  # label -> why it stopped (larger T would fail too)
    for n in sorted(set(s.seq_lens)):
        runners: dict[Case, Runner] = {}
        avail = available_bytes(dev)
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
                    runners[case] = build_runner(case, node, s, plan.device)
        log(f"T={n}: timing {len(runners)} case(s), {s.repeats} interleaved repeats…")
        times, notes, flops = time_cases(runners, s, seconds)
        for case in runners:
            _record_times(rows[case], times[case], notes.get(case), flops.get(case), dead)
        measured = [c for c in times if times[c]]
        if s.memory and dev.type == "cuda":  # the allocator's own peak, in this process
            log(f"T={n}: peak memory of {len(measured)} case(s) from the CUDA allocator…")
            for case in measured:
                rows[case].peak_mb = measure_memory_in_process(runners[case], dev)
        runners.clear()
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()  # the next length's estimate sees the memory as free
        if s.memory and dev.type == "cpu":
            log(f"T={n}: peak memory of {len(measured)} case(s), one fresh process each…")
            for case in measured:
                mb, note = measure_memory(case, plan.variants[case.variant], s, threads)
                rows[case].peak_mb = mb
                if note:
                    rows[case].note = "; ".join(filter(None, [rows[case].note, note]))
        elif s.memory and dev.type not in ("cpu", "cuda"):
            for case in measured:
                rows[case].note = "; ".join(
                    filter(None, [rows[case].note, f"memory not measured on {dev.type}"])
                )
    exponents: dict[str, float | None] = {}
    for label in dict.fromkeys(r.label for r in rows.values()):
        pts = [(r.n, r.median_ms / 1e3) for r in rows.values() if r.label == label and r.median_ms]
        exponents[label] = scaling_exponent([p[0] for p in pts], [p[1] for p in pts])
    order = {name: i for i, name in enumerate(plan.variants)}
    ordered = sorted(rows.values(), key=lambda r: (order[r.variant], r.n, KINDS.index(r.kind)))
    # The peak again at the end, the best of both: on a shared machine one may catch a busy spell.
    log("matmul peak again…")
    peak = max(peak, matmul_peak_gflops(peak_n, device=plan.device, dtype=s.dtype)[0])
    for row in ordered:
        if row.gflops is not None:
            row.pct_peak = 100.0 * row.gflops / peak
    return BenchResult(
        plan,
        ordered,
        exponents,
        peak,
        threads,
        (load0, _loadavg()),
        device_name=describe(dev),
        crossovers=crossovers(ordered),
        peak_n=peak_n,
    )


def _record_times(row: Row, times: Sequence[float], note: str | None, flops: float | None,
                  dead: dict[str, str]) -> None:
    """A case's timings into its row (median, IQR, GFLOP/s) with its note; a case that ran out
    of memory marks its label dead for the longer lengths."""
    if note is not None:
        row.note = note
        if note.startswith("skipped"):
            dead[row.label] = "skipped: a shorter T ran out of memory"
    ts = sorted(times)
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
    if flops:  # 0: nothing a FLOP counter counts (`none`)
        row.gflops = flops / (row.median_ms / 1e3) / 1e9


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

"""The measurement: cost models (memory estimates from the variants' own facts, FLOPs counted by
torch's FLOP counter, the machine's matmul peak), interleaved timing in this process on the
plan's device (each phase of a call on its own: forward and backward), memory per case
(`bench.memory`) or the decoding state (`bench.mode=decode`), into `results`' rows."""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from attnbench.bench import decode, results
from attnbench.bench.case_memory import measure_memory, measure_memory_in_process
from attnbench.bench.device import DTYPES, available_bytes, describe, out_of_memory, timer
from attnbench.bench.kernels import Runner, build_module, build_runner, cases_for, skipped
from attnbench.bench.plan import KINDS, BenchPlan, BenchSettings, Case
from attnbench.training.throughput import count_flops  # the FLOP counter training uses too

MIN_REPEATS = 3
PEAK_CALL_S = 2.0  # longest one product of the matmul-peak measurement may take


# -- cost models ---------------------------------------------------------------------------------
def estimate_bytes(case: Case, node: Mapping[str, Any], settings: BenchSettings,
                   states: Sequence[tuple[int, int]] = ()) -> int:
    """A generous estimate of the peak memory of one case (inputs included), in bench.dtype:
    the variant's own ``memory_bytes`` (its ``naive`` path for the naive reference, masked under
    ``bench.causal``), read on the module built on the meta device, plus ten (B, T, D) tensors
    twice over (q, k, v, output, their gradients, projections). Decoding: `decode.estimate_bytes`
    (`states`: the (T, bytes) of the variant's state at shorter lengths)."""
    from attnbench.attention.base import Call

    if settings.mode == "decode":
        return decode.estimate_bytes(case, node, settings, states)
    b, t, d, e = settings.batch, case.n, settings.dim, settings.element_bytes
    masked = settings.causal and case.kind == "variant"  # references use is_causal or no mask
    mask = b * t * t if masked else 0  # the bool mask and one (B, T, T) bool of checking it
    module = build_module(node, settings, device="meta")
    path = "naive" if case.kind == "naive" else "fast"
    return 2 * 10 * b * t * d * e + mask + module.memory_bytes(Call(b, t, t, e, masked), path)


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


# -- timing (this process) -----------------------------------------------------------------------
Timings = dict[Case, list[tuple[float, ...]]]


def time_cases(
    runners: Mapping[Case, Runner | decode.DecodeRunner],
    settings: BenchSettings,
    seconds: Callable[[Callable[[], None]], float] | None = None,
) -> tuple[Timings, dict[Case, str], dict[Case, float]]:
    """Interleaved timings per case: per repeat, the seconds of each of the runner's ``phases``
    (forward and backward, or one call), each measured by `seconds` (`device.timer`); a note for
    each case that failed; each case's FLOPs (`count_flops`, on its first warm-up call: the
    counter's overhead stays out of the timings)."""
    seconds = seconds or timer(torch.device("cpu"))
    times: Timings = {c: [] for c in runners}
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
                if isinstance(runners[case], decode.DecodeRunner):
                    # A decoding step is sub-millisecond: the case before it (a long KV cache's
                    # copy) would leave it cold caches. One untimed step of its own first.
                    runners[case]()
                times[case].append(tuple(seconds(phase) for phase in runners[case].phases()))
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
def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux/macOS
        return float("nan")


def run_cases(plan: BenchPlan, log: Callable[[str], None] = lambda _msg: None
              ) -> results.BenchResult:
    """Time every case, measure its memory (or its decoding state), and fit the scaling
    exponents (no output files)."""
    from attnbench.training.seeding import set_threads

    s = plan.settings
    dev = torch.device(plan.device)
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
    lengths = _Lengths(plan, threads, log)
    for n in sorted(set(s.seq_lens)):
        lengths.measure(n)
    order = {name: i for i, name in enumerate(plan.variants)}
    ordered = sorted(lengths.rows.values(),
                     key=lambda r: (order[r.variant], r.n, KINDS.index(r.kind)))
    # The peak again at the end, the best of both: on a shared machine one may catch a busy spell.
    log("matmul peak again…")
    peak = max(peak, matmul_peak_gflops(peak_n, device=plan.device, dtype=s.dtype)[0])
    for row in ordered:
        if row.gflops is not None:
            row.pct_peak = 100.0 * row.gflops / peak
    return results.BenchResult(
        plan,
        ordered,
        results.exponents(ordered),
        peak,
        threads,
        (load0, _loadavg()),
        device_name=describe(dev),
        crossovers=results.crossovers(ordered) if s.mode != "decode" else {},
        peak_n=peak_n,
        state_exponents=results.exponents(ordered, "state_mb") if s.mode == "decode" else {},
        skipped={k: v for name in plan.variants for k, v in skipped(name, s).items()},
    )


class _Lengths:
    """The rows of every case, one length at a time: the memory guard, the runners, the
    interleaved timings, then memory (or the decoding state)."""

    def __init__(self, plan: BenchPlan, threads: int, log: Callable[[str], None]) -> None:
        self.plan, self.threads, self.log = plan, threads, log
        self.dev = torch.device(plan.device)
        self.seconds = timer(self.dev)
        self.rows: dict[Case, results.Row] = {}
        self.dead: dict[str, str] = {}  # label -> why it stopped (larger T would fail too)
        self.states: dict[str, list[tuple[int, int]]] = {}  # decode: label -> (T, state bytes)

    def measure(self, n: int) -> None:
        s, dev = self.plan.settings, self.dev
        runners = self._runners(n)
        what = "decoding step" if s.mode == "decode" else s.mode
        self.log(f"T={n}: timing {len(runners)} case(s) ({what}), {s.repeats} interleaved "
                 "repeats…")
        times, notes, flops = time_cases(runners, s, self.seconds)
        for case in runners:
            results.record_times(self.rows[case], times[case], notes.get(case),
                                 flops.get(case), self.dead)
        measured = [c for c in times if times[c]]
        memory = s.memory and s.mode != "decode"  # decoding reports its state instead
        if memory and dev.type == "cuda":  # the allocator's own peak, in this process
            self.log(f"T={n}: peak memory of {len(measured)} case(s) from the CUDA allocator…")
            for case in measured:
                self.rows[case].peak_mb = measure_memory_in_process(runners[case], dev)
        runners.clear()
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()  # the next length's estimate sees the memory as free
        if memory and dev.type == "cpu":
            self.log(f"T={n}: peak memory of {len(measured)} case(s), one fresh process each…")
            for case in measured:
                mb, note = measure_memory(case, self.plan.variants[case.variant], s, self.threads)
                self.rows[case].peak_mb = mb
                self._note(case, note)
        elif memory and dev.type not in ("cpu", "cuda"):
            for case in measured:
                self._note(case, f"memory not measured on {dev.type}")

    def _note(self, case: Case, note: str) -> None:
        self.rows[case].note = "; ".join(filter(None, [self.rows[case].note, note]))

    def _runners(self, n: int) -> dict[Case, Runner | decode.DecodeRunner]:
        """The runners of every case at length n that fits in memory; a row for each case."""
        s = self.plan.settings
        runners: dict[Case, Runner | decode.DecodeRunner] = {}
        avail = available_bytes(self.dev)
        for variant, node in self.plan.variants.items():
            for case in cases_for(variant, n, s):
                row = self.rows[case] = results.Row(case.label, case.variant, case.kind, n)
                need = estimate_bytes(case, node, s, self.states.get(case.label, ()))
                if case.label in self.dead:
                    row.note = self.dead[case.label]
                elif avail is not None and need > s.mem_fraction * avail:
                    row.note = (
                        f"skipped: needs ~{need / 2**30:.1f} GiB, {s.mem_fraction:g} × "
                        f"{avail / 2**30:.1f} GiB available"
                    )
                    self.dead[case.label] = "skipped: a shorter T did not fit in memory"
                elif s.mode != "decode":
                    runners[case] = build_runner(case, node, s, self.plan.device)
                else:
                    runners.update(self._decoder(case, node, row))
        return runners

    def _decoder(self, case: Case, node: Mapping[str, Any], row: results.Row
                 ) -> dict[Case, decode.DecodeRunner]:
        """A decoding case: the state of its prefix (a note if it ran out of memory)."""
        self.log(f"T={case.n}: {case.label}: the state of a {case.n}-position prefix…")
        try:
            runner = decode.build_decoder(case, node, self.plan.settings, self.plan.device)
        except (RuntimeError, MemoryError) as err:
            if not out_of_memory(err):
                raise
            row.note = "skipped: out of memory (prefill)"
            self.dead[case.label] = "skipped: a shorter T ran out of memory"
            return {}
        row.state_mb = runner.state_bytes / 2**20
        self.states.setdefault(case.label, []).append((case.n, runner.state_bytes))
        return {case: runner}

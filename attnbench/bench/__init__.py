"""`attnbench bench`: forward+backward time and peak memory of attention variants vs length.

Notation: B batch, T sequence length (queries = keys = T), D width, H heads, Dh = D / H per-head
width, Hd the additive scorer's hidden width.

For every variant and length the benchmark runs one forward+backward on random (B, T, D)
queries, keys and values (self-attention shapes; dropout off):

- time: median and interquartile range of ``repeats`` calls after ``warmup``. All cases of one
  length are interleaved call by call, so their ratios see the same machine load;
- peak memory: the peak resident memory above the idle baseline, measured in a fresh process per
  case (forked from a clean fork server, so no measurement inherits another's heap);
- GFLOP/s and % of the machine's peak, where the FLOP count is defined (the matmul variants),
  against a big float32 matmul timed in the same run;
- the scaling exponent: the log–log slope of time vs T per variant.

Each variant may be joined by references at the same T, built from the variant's own weights:

- ``naive``: the textbook formula with every intermediate materialised (softmax(QKᵀ)V; the
  (B, T, T, Hd) broadcast of additive attention);
- ``bare``: one bare SDPA call on the tensors the variant's fused path hands it (dot/scaled: the
  inputs; multihead: its projected (B, H, T, Dh) heads, made once), the floor of the fast path;
- ``plain`` (multihead): the whole variant as plain torch calls: four projections + one SDPA.

A case whose estimated memory exceeds ``mem_fraction`` of the available memory is skipped with a
note, as is a case that runs out of memory anyway. Results print as a table, a PNG plot of time
and memory vs T, and one MLflow run holding the metrics (step = T), the table and the plot.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import gc
import io
import json
import os
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.errors import ConfigError

CONFIG_NAME = "bench"  # conf/bench.yaml
KINDS = ("variant", "bare", "plain", "naive")
FLOAT_BYTES = 4  # float32
MIN_REPEATS = 3


@dataclass
class BenchSettings:
    """The ``bench`` node of conf/bench.yaml (each key is documented there)."""

    batch: int = 8
    dim: int = 128
    heads: int | None = None
    seq_lens: list[int] = field(default_factory=lambda: [128, 256, 512, 1024, 2048])
    repeats: int = 7
    warmup: int = 1
    budget_s: float = 120.0
    naive: bool = True
    bare: bool = True
    memory: bool = True
    threads: int = 0
    mem_fraction: float = 0.7
    peak_size: int = 2048
    seed: int = 0

    def problems(self) -> list[str]:
        out: list[str] = []

        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                out.append(f"'bench.{key}' = {getattr(self, key)!r} is out of range: {rule}")

        need(self.batch >= 1, "batch", "must be >= 1")
        need(self.dim >= 1, "dim", "must be >= 1")
        need(self.heads is None or self.heads >= 1, "heads", "must be >= 1 or null")
        need(
            bool(self.seq_lens) and all(_is_int(n) and n >= 1 for n in self.seq_lens),
            "seq_lens",
            "must be a non-empty list of lengths >= 1, e.g. [128,256,512]",
        )
        need(self.repeats >= 1, "repeats", "must be >= 1")
        need(self.warmup >= 0, "warmup", "must be >= 0")
        need(self.budget_s > 0, "budget_s", "must be > 0 seconds")
        need(self.threads >= 0, "threads", "must be >= 0 (0 = every core)")
        need(0 < self.mem_fraction <= 1, "mem_fraction", "must be in (0, 1]")
        need(self.peak_size >= 16, "peak_size", "must be >= 16")
        need(self.seed >= 0, "seed", "must be >= 0")
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Case:
    """One thing to time at one length: a variant, or one of its references."""

    variant: str
    kind: str  # one of KINDS
    n: int

    @property
    def label(self) -> str:
        return self.variant if self.kind == "variant" else f"{self.variant}_{self.kind}"


# -- the references ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """What a reference case times: ``fn(attn, *inputs)``. ``inputs`` turns the case's random
    (B, T, D) queries, keys and values into the tensors the timed call takes (its gradient leaves);
    None means it takes them as they are and returns the variant's (B, T, out_dim) output."""

    fn: Callable[..., Tensor]
    inputs: Callable[[Any, Tensor, Tensor, Tensor], tuple[Tensor, ...]] | None = None


def _dot_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    weights = torch.softmax(q @ k.transpose(1, 2) * attn.scale, dim=-1)  # (B, T, T)
    return weights @ v  # (B, T, D)


def _dot_bare(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    # (B, 1, T, D): PyTorch's fused CPU kernel takes 4-D inputs only
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=attn.scale)[
        :, 0
    ]


def _heads(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    b, t, d = q.shape
    h = attn.heads
    split = [
        F.linear(x, p.weight, p.bias).view(b, -1, h, d // h).transpose(1, 2)  # (B, H, T, Dh)
        for x, p in ((q, attn.q_proj), (k, attn.k_proj), (v, attn.v_proj))
    ]
    return split[0], split[1], split[2]


def _projected_heads(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, ...]:
    """The (B, H, T, Dh) tensors multihead hands its SDPA call, as fresh leaves (same strides)."""
    with torch.no_grad():
        return tuple(x.requires_grad_() for x in _heads(attn, q, k, v))


def _merge(attn: Any, ctx: Tensor) -> Tensor:
    b, _, t, _ = ctx.shape
    ctx = ctx.transpose(1, 2).reshape(b, t, attn.d_model)  # (B, T, D)
    return F.linear(ctx, attn.out_proj.weight, attn.out_proj.bias)


def _sdpa(attn: Any, qh: Tensor, kh: Tensor, vh: Tensor) -> Tensor:
    return F.scaled_dot_product_attention(qh, kh, vh)  # (B, H, T, Dh)


def _multihead_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    qh, kh, vh = _heads(attn, q, k, v)
    weights = torch.softmax(qh @ kh.transpose(-2, -1) / qh.shape[-1] ** 0.5, dim=-1)  # (B,H,T,T)
    return _merge(attn, weights @ vh)


def _multihead_plain(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    qh, kh, vh = _heads(attn, q, k, v)
    return _merge(attn, F.scaled_dot_product_attention(qh, kh, vh))


def _additive_naive(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    from attnbench.attention.additive import additive_scores_naive

    scores = additive_scores_naive(attn.W(q), attn.U(k), attn.v.weight[0])  # (B, T, T)
    return torch.softmax(scores, dim=-1) @ v


# bare: one SDPA call on the tensors the variant's own SDPA call sees (multihead: its projected
# heads), the floor; plain: the whole variant as plain torch calls; naive: materialised.
REFERENCES: dict[tuple[str, str], Reference] = {
    ("dot", "naive"): Reference(_dot_naive),
    ("dot", "bare"): Reference(_dot_bare),
    ("scaled", "naive"): Reference(_dot_naive),
    ("scaled", "bare"): Reference(_dot_bare),
    ("multihead", "naive"): Reference(_multihead_naive),
    ("multihead", "plain"): Reference(_multihead_plain),
    ("multihead", "bare"): Reference(_sdpa, _projected_heads),
    ("additive", "naive"): Reference(_additive_naive),
}


class Runner:
    """One forward+backward of a case on fixed random inputs: call it to run once."""

    def __init__(self, fn: Callable[[], Tensor], leaves: list[Tensor], grad: Tensor) -> None:
        self.fn = fn
        self.leaves = leaves
        self.grad = grad

    def clear(self) -> None:
        for t in self.leaves:
            t.grad = None

    def __call__(self) -> None:
        self.clear()  # every call allocates its gradients afresh, as a training step does
        out = self.fn()
        if out.requires_grad:
            out.backward(self.grad)


def variant_node(node: Mapping[str, Any], settings: BenchSettings) -> dict[str, Any]:
    """The attention config a case is built from (``bench.heads`` applied where it fits)."""
    from attnbench.attention import ATTENTION
    from attnbench.attention.base import CONTEXT_ARGS
    from attnbench.registry import params_of

    out = dict(node)
    cls = ATTENTION.get(str(node["name"]))
    if settings.heads is not None and "heads" in params_of(cls, CONTEXT_ARGS):
        out["heads"] = settings.heads
    return out


def build_runner(case: Case, node: Mapping[str, Any], settings: BenchSettings) -> Runner:
    """Build the variant through the registry (as training does) and its inputs, seeded."""
    from attnbench.training.build import attention_factory

    torch.manual_seed(settings.seed)
    b, t, d = settings.batch, case.n, settings.dim
    attn: nn.Module = attention_factory(node)(d, d, d).eval()  # eval: dropout off
    q, k, v = (torch.randn(b, t, d, requires_grad=True) for _ in range(3))  # (B, T, D)
    ref = REFERENCES.get((case.variant, case.kind))
    if ref is not None and ref.inputs is not None:  # its own leaves, e.g. multihead's heads
        inputs = ref.inputs(attn, q, k, v)
        return Runner(  # SDPA: output shape = query's
            lambda: ref.fn(attn, *inputs), list(inputs), torch.randn_like(inputs[0])
        )
    fn = (lambda: attn(q, k, v)[0]) if ref is None else (lambda: ref.fn(attn, q, k, v))
    return Runner(fn, [q, k, v, *attn.parameters()], torch.randn(b, t, int(attn.out_dim)))


def cases_for(variant: str, n: int, settings: BenchSettings) -> list[Case]:
    kinds = ["variant"]
    wanted = {"bare": settings.bare, "plain": settings.bare, "naive": settings.naive}
    kinds += [k for k in KINDS[1:] if wanted[k] and (variant, k) in REFERENCES]
    return [Case(variant, k, n) for k in kinds]


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


# -- peak memory (a fresh process per case) ------------------------------------------------------
def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _return_freed_memory() -> None:
    """glibc keeps freed blocks below a moving threshold (up to 32 MiB) in its heap, so a later
    allocation would reuse pages already counted in the baseline. Make every block >= 64 KiB its
    own mapping, unmapped on free, so the resident size follows the live tensors."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD


def _memory_child(spec: str, conn: Any) -> None:
    """Runs in a forked child: build the case, run it once to warm up, then report the peak
    resident memory of a second run above the resident memory just before it (MiB)."""
    try:
        data = json.loads(spec)
        _return_freed_memory()
        torch.set_num_threads(int(data["threads"]))
        settings = BenchSettings(**data["settings"])
        runner = build_runner(Case(**data["case"]), data["node"], settings)
        if _status_kib("VmHWM") is None or not _reset_peak_rss():  # no /proc: coarse fallback
            import resource

            runner.clear()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            runner()
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            conn.send({"peak_mb": max(0, after - before) / 1024.0})
            return
        runner()  # one-time allocations (thread pools, kernel scratch) do not belong to the case
        runner.clear()
        gc.collect()
        _reset_peak_rss()
        baseline = _status_kib("VmRSS") or 0
        runner()
        peak = _status_kib("VmHWM") or 0
        conn.send({"peak_mb": max(0, peak - baseline) / 1024.0})
    except BaseException as err:  # noqa: BLE001 - reported to the parent as a note
        with contextlib.suppress(Exception):
            conn.send({"error": f"{type(err).__name__}: {err}".splitlines()[0][:200]})


_FORKSERVER: Any = None


def _mp_context() -> Any:
    """A fork server that imported torch and this module once, but never ran anything: every
    measurement is a fresh fork of it (fast, and no measurement inherits another's heap)."""
    global _FORKSERVER
    if _FORKSERVER is None:
        import multiprocessing

        _FORKSERVER = multiprocessing.get_context("forkserver")
        _FORKSERVER.set_forkserver_preload(["attnbench.bench"])
    return _FORKSERVER


def measure_memory(
    case: Case, node: Mapping[str, Any], settings: BenchSettings, threads: int
) -> tuple[float | None, str]:
    """Peak memory (MiB) of one forward+backward of `case` in a fresh process, or a note."""
    ctx = _mp_context()
    spec = json.dumps(
        {"case": asdict(case), "node": dict(node), "settings": asdict(settings), "threads": threads}
    )
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_memory_child, args=(spec, send), daemon=True)
    proc.start()
    send.close()
    try:
        reply = receive.recv()
    except EOFError:
        reply = {}
    finally:
        receive.close()
        proc.join()
    if "peak_mb" in reply:
        return float(reply["peak_mb"]), ""
    if proc.exitcode is not None and proc.exitcode < 0:
        return None, f"memory process killed by signal {-proc.exitcode} (out of memory?)"
    return None, f"memory not measured: {reply.get('error', 'no reply')}"


# -- the whole benchmark -------------------------------------------------------------------------
@dataclass
class Row:
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
class BenchPlan:
    """What to benchmark, composed from conf/bench.yaml and the command's overrides."""

    settings: BenchSettings
    variants: dict[str, dict[str, Any]]  # attention name -> its config node
    tracking_uri: str | None = None
    runs_dir: str = "runs"
    experiment_name: str = "bench"
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
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


# -- output: table, plot, files, MLflow ----------------------------------------------------------
def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def results_table(result: BenchResult) -> Any:
    from rich.table import Table

    s = result.plan.settings
    load = f"load {result.load[0]:.1f}→{result.load[1]:.1f}"
    table = Table(
        title=(
            f"attnbench bench: forward+backward, B={s.batch} D={s.dim}, "
            f"{result.threads} thread(s), "
            f"matmul peak {result.peak_gflops:.0f} GFLOP/s, {load} on {os.cpu_count()} cores"
        ),
        title_justify="left",
    )
    for col in (
        "attention",
        "T",
        "time ms",
        "IQR ms",
        "÷ bare",
        "÷ plain",
        "÷ naive",
        "peak MB",
        "mem ÷ naive",
        "GFLOP/s",
        "% peak",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("attention", "note") else "right")
    last = None
    for row in result.rows:
        if last is not None and row.variant != last:
            table.add_section()
        last = row.variant
        own = row.kind != "bare"
        table.add_row(
            row.label,
            str(row.n),
            _f(row.median_ms, ".2f"),
            _f(row.iqr_ms, ".2f"),
            *(_f(ratio(result.rows, row, k) if row.kind != k else None, ".3f") for k in KINDS[1:]),
            _f(row.peak_mb, ".1f"),
            _f(
                ratio(result.rows, row, "naive", "peak_mb")
                if own and row.kind != "naive"
                else None,
                ".4f",
            ),
            _f(row.gflops, ".1f"),
            _f(row.pct_peak, ".0f"),
            row.note,
        )
    return table


def exponent_table(result: BenchResult) -> Any:
    from rich.table import Table

    table = Table(title="scaling exponent: slope of log time vs log T", title_justify="left")
    table.add_column("attention")
    table.add_column("exponent", justify="right")
    table.add_column("lengths", justify="right")
    for label, exp in result.exponents.items():
        ns = [r.n for r in result.rows if r.label == label and r.median_ms]
        table.add_row(label, _f(exp, ".2f"), ",".join(map(str, ns)) or "—")
    return table


def plot(result: BenchResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"variant": "-", "bare": "--", "plain": "-.", "naive": ":"}
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors: dict[str, Any] = {}
    for label in result.exponents:
        rows = [r for r in result.rows if r.label == label]
        variant, kind = rows[0].variant, rows[0].kind
        color = colors.setdefault(variant, f"C{len(colors) % 10}")
        exp = result.exponents[label]
        name = label + (f" (T^{exp:.2f})" if exp is not None else "")
        for ax, attr, legend in ((ax_t, "median_ms", name), (ax_m, "peak_mb", label)):
            points = [(r.n, getattr(r, attr)) for r in rows if getattr(r, attr)]
            if points:
                ns, ys = zip(*points, strict=True)
                ax.plot(ns, ys, styles[kind], color=color, marker="o", label=legend)
    s = result.plan.settings
    for ax, what in ((ax_t, "forward+backward time (ms)"), (ax_m, "peak memory above idle (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    ax_t.set_title(f"time, B={s.batch} D={s.dim}, {result.threads} thread(s)")
    ax_m.set_title("memory" + ("" if s.memory else " (not measured: bench.memory=false)"))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_files(result: BenchResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"png": plot(result, out_dir / "bench.png")}
    csv_path = out_dir / "results.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        names = [f.name for f in fields(Row)]
        writer.writerow([*names, *(f"x_{k}" for k in KINDS[1:]), "mem_x_naive", "exponent"])
        for r in result.rows:
            writer.writerow(
                [
                    *(getattr(r, n) for n in names),
                    *(ratio(result.rows, r, k) for k in KINDS[1:]),
                    ratio(result.rows, r, "naive", "peak_mb"),
                    result.exponents.get(r.label),
                ]
            )
    files["csv"] = csv_path
    summary = {
        "settings": asdict(result.plan.settings),
        "variants": result.plan.variants,
        "matmul_peak_gflops": result.peak_gflops,
        "threads": result.threads,
        "loadavg": list(result.load),
        "exponents": result.exponents,
        "rows": [asdict(r) for r in result.rows],
    }
    files["json"] = out_dir / "results.json"
    files["json"].write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return files


def metric_key(label: str, name: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}/{name}"


def log_to_mlflow(result: BenchResult, files: Mapping[str, Path], table_text: str) -> str:
    """One MLflow run holding the metrics (step = T), table, plot and raw results."""
    import yaml

    from attnbench import __version__
    from attnbench.config import flatten
    from attnbench.tracking import Tracker

    plan = result.plan
    tracker = Tracker(plan.tracking_uri, plan.runs_dir)
    tracker.connect()
    exp_id = tracker.experiment_id(plan.experiment_name)
    name = "bench-" + "-".join(plan.variants)
    tags = {
        "attnbench.kind": "bench",
        "attnbench.version": __version__,
        "attnbench.threads": result.threads,
        "attnbench.loadavg": f"{result.load[0]:.2f} -> {result.load[1]:.2f}",
        "torch.version": torch.__version__,
        "attention": ",".join(plan.variants),
    }
    run_id = tracker.start_run(exp_id, name, tags)
    try:
        params = flatten({"bench": asdict(plan.settings), "attention": plan.variants})
        params["cpu_count"] = os.cpu_count()
        tracker.log_params(run_id, params)
        by_n: dict[int, dict[str, float]] = {}
        for r in result.rows:
            metrics = by_n.setdefault(r.n, {})
            values = {
                "time_ms": r.median_ms,
                "time_iqr_ms": r.iqr_ms,
                "peak_mem_mb": r.peak_mb,
                "gflops": r.gflops,
                "pct_of_peak": r.pct_peak,
                **{
                    f"x_{k}": ratio(result.rows, r, k) if r.kind != k else None
                    for k in KINDS[1:]
                },
            }
            metrics.update({metric_key(r.label, k): v for k, v in values.items() if v is not None})
        for n, metrics in sorted(by_n.items()):
            if metrics:
                tracker.log_metrics(run_id, metrics, n)
        summary = {
            metric_key(k, "scaling_exponent"): v
            for k, v in result.exponents.items()
            if v is not None
        }
        summary["matmul_peak_gflops"] = result.peak_gflops
        tracker.log_metrics(run_id, summary, 0)
        for path in files.values():
            tracker.log_artifact(run_id, path, "bench")
        tracker.log_text(run_id, table_text, "bench/table.txt")
        tracker.log_text(run_id, yaml.safe_dump(plan.config, sort_keys=False), "config/bench.yaml")
        tracker.end_run(run_id, "FINISHED")
    except BaseException:
        with contextlib.suppress(Exception):
            tracker.end_run(run_id, "FAILED")
        raise
    return run_id


def bench(plan: BenchPlan, log: Callable[[str], None] = lambda _msg: None) -> BenchResult:
    """Measure, then write the table, plot and files and log them as one MLflow run."""
    from rich.console import Console

    from attnbench.console import console

    result = run_cases(plan, log)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    result.out_dir = Path(plan.runs_dir) / "bench" / stamp
    files = write_files(result, result.out_dir)
    result.png = files["png"]
    console.print(results_table(result))
    console.print(exponent_table(result))
    text_console = Console(width=200, record=True, file=io.StringIO())
    text_console.print(results_table(result))
    text_console.print(exponent_table(result))
    table_text = text_console.export_text()
    (result.out_dir / "table.txt").write_text(table_text, encoding="utf-8")
    result.run_id = log_to_mlflow(result, files, table_text)
    console.print(
        f"plot: {result.png}\nMLflow run: {result.run_id} (experiment '{plan.experiment_name}')",
        highlight=False,
        markup=False,
    )
    return result


# -- configuration ---------------------------------------------------------------------------------
def compose_plan(args: Sequence[str]) -> BenchPlan:
    """Compose conf/bench.yaml with Hydra overrides (``attention=a,b`` benchmarks each variant)
    and validate everything, reporting every problem at once."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from attnbench.app import expand_overrides
    from attnbench.config import conf_dir, group_options

    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise ConfigError(
            f"Unknown option '{flags[0]}': attnbench bench takes Hydra overrides, e.g. "
            "attention=scaled,additive bench.seq_lens=[128,256,512]"
        )
    jobs = expand_overrides(args)
    for job in jobs:
        for ov in job:
            key, _, value = ov.lstrip("+~").partition("=")
            if key in ("attention", "tracking") and value not in group_options(key):
                raise ConfigError(
                    f"Unknown {key} '{value}'. Valid options: {', '.join(group_options(key))}"
                )
    cfgs: list[dict[str, Any]] = []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            for job in jobs:
                try:
                    cfg = compose(CONFIG_NAME, overrides=job)
                except Exception as err:  # noqa: BLE001 - Hydra/OmegaConf composition errors
                    raise ConfigError(_compose_message(err, compose(CONFIG_NAME))) from None
                cfgs.append(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    finally:
        GlobalHydra.instance().clear()
    return plan_from_configs(cfgs)


def plan_from_configs(cfgs: Sequence[dict[str, Any]]) -> BenchPlan:
    from attnbench.attention import ATTENTION
    from attnbench.attention.base import CONTEXT_ARGS
    from attnbench.config import check_uri, component_params
    from attnbench.registry import check_params

    first = cfgs[0]
    problems = check_params(BenchSettings, first["bench"], "bench")
    if problems:
        raise ConfigError(problems[0], problems)
    settings = BenchSettings(**first["bench"])
    problems = settings.problems()
    for cfg in cfgs[1:]:
        for key in ("bench", "tracking", "runs_dir", "experiment_name"):
            if cfg[key] != first[key]:
                problems.append(
                    f"attnbench bench compares attention variants: only 'attention' may take "
                    f"several values, not '{key}' (run one bench per setting)"
                )
                break
    variants: dict[str, dict[str, Any]] = {}
    for cfg in cfgs:
        node = cfg["attention"]
        name = str(node["name"])
        if name in variants:
            if node != variants[name]:
                problems.append(
                    f"attention '{name}' appears with different settings; bench one setting per "
                    "call (bench.heads sets the heads of every variant that has them)"
                )
            continue
        try:
            cls = ATTENTION.get(name)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        found = check_params(cls, component_params(node), "attention", CONTEXT_ARGS)
        problems.extend(found)
        if not found and not settings.problems():
            node = variant_node(node, settings)
            try:
                d = settings.dim
                cls(d, d, d, **component_params(node))
            except (ValueError, TypeError) as err:
                problems.append(f"{name} at bench.dim={settings.dim}: {str(err).splitlines()[0]}")
        variants[name] = node
    uri = first["tracking"].get("uri")
    if uri:
        problems.extend(check_uri(str(uri)))
    if problems:
        raise ConfigError(problems[0], list(dict.fromkeys(problems)))
    settings.seq_lens = sorted(set(settings.seq_lens))
    return BenchPlan(
        settings=settings,
        variants=variants,
        tracking_uri=uri,
        runs_dir=str(first["runs_dir"]),
        experiment_name=str(first.get("experiment_name") or "bench"),
        config={**first, "attention": list(variants.values())},
    )


def _compose_message(err: Exception, default: Any) -> str:
    """Hydra's composition errors as one line naming the valid keys."""
    text = " ".join(str(err).split())
    m = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Key '([^']+)' is not in struct", text
    )
    if m:
        key = m.group(1)
        parent = key.rpartition(".")[0]
        node = default
        with contextlib.suppress(Exception):
            for part in filter(None, parent.split(".")):
                node = node[part]
            where = f" in {parent}" if parent else ""
            return f"Unknown key '{key}'. Valid keys{where}: {', '.join(sorted(node))}"
    return text[:300]


def run_bench(args: Sequence[str]) -> int:
    """`attnbench bench ARGS`: compose, validate, measure, report. Returns the exit code."""
    from rich.markup import escape

    from attnbench.console import err_console

    plan = compose_plan(args)

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        err_console.print(
            f"[dim]bench {time.perf_counter() - t0:6.1f}s:[/] {escape(msg)}", highlight=False
        )

    bench(plan, log)
    return 0

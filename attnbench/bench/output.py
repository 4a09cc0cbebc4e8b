"""What `attnbench bench` leaves behind: the tables, the PNG plot, the CSV/JSON files, and one
MLflow run holding the metrics (step = T), the table and the plot."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from attnbench.bench.plan import KINDS
from attnbench.bench.results import CROSSOVER_BASE, BenchResult, Row, ratio


def _f(value: float | None, fmt: str) -> str:
    """A table cell: "—" for a value not measured."""
    return "—" if value is None else format(value, fmt)


def _columns(result: BenchResult) -> list[tuple[str, Callable[[Row], str]]]:
    """The table's columns for the bench's mode: (header, cell of a row)."""
    rows, mode = result.rows, result.plan.settings.mode

    def vs(kind: str) -> Callable[[Row], str]:
        return lambda r: _f(ratio(rows, r, kind) if r.kind != kind else None, ".3f")

    def mem_vs_naive(r: Row) -> str:
        own = r.kind not in ("bare", "naive")
        return _f(ratio(rows, r, "naive", "peak_mb") if own else None, ".4f")

    ms = ".3f" if mode == "decode" else ".2f"  # a decoding step takes well under a millisecond
    timing: list[tuple[str, Callable[[Row], str]]] = [
        ("ms/token" if mode == "decode" else "time ms", lambda r: _f(r.median_ms, ms)),
        ("IQR ms", lambda r: _f(r.iqr_ms, ms)),
    ]
    if mode == "train":
        timing += [("fwd ms", lambda r: _f(r.fwd_ms, ".2f")),
                   ("bwd ms", lambda r: _f(r.bwd_ms, ".2f"))]
    memory: list[tuple[str, Callable[[Row], str]]] = (
        [("state MB", lambda r: _f(r.state_mb, ".3f"))] if mode == "decode" else
        [*((f"÷ {k}", vs(k)) for k in KINDS[1:]),
         ("peak MB", lambda r: _f(r.peak_mb, ".1f")), ("mem ÷ naive", mem_vs_naive)]
    )
    return [
        ("attention", lambda r: r.label),
        ("prefix T" if mode == "decode" else "T", lambda r: str(r.n)),
        *timing,
        *memory,
        ("GFLOP/s", lambda r: _f(r.gflops, ".1f" if mode != "decode" else ".3f")),
        ("% peak", lambda r: _f(r.pct_peak, ".0f" if mode != "decode" else ".2f")),
        ("note", lambda r: r.note),
    ]


WHAT = {
    "train": "forward+backward (fwd, bwd: each phase's median)",
    "forward": "inference forward (no autograd)",
    "decode": "one decoding step after a prefix of T positions (B new tokens)",
}


def results_table(result: BenchResult) -> Any:
    from rich.table import Table

    s = result.plan.settings
    what = WHAT[s.mode] + (", causal" if s.causal and s.mode != "decode" else "")
    table = Table(title=f"attnbench bench: {what}, {conditions(result)}", title_justify="left")
    columns = _columns(result)
    for header, _ in columns:
        table.add_column(header, justify="left" if header in ("attention", "note") else "right")
    last = None
    for row in result.rows:
        if last is not None and row.variant != last:
            table.add_section()
        last = row.variant
        table.add_row(*(cell(row) for _, cell in columns))
    if result.skipped:
        table.add_section()
        for label, why in result.skipped.items():
            table.add_row(label, "all", *("—" for _ in columns[2:-1]), why)
    return table


def conditions(result: BenchResult) -> str:
    """What the figures were measured on: sizes, device, dtype, threads, peak, load."""
    s = result.plan.settings
    dev = result.plan.device
    where = f"{result.threads} thread(s) of {os.cpu_count()} cores" if dev == "cpu" else dev
    inputs = "" if s.mode == "decode" else f" inputs={s.inputs}"  # decoding: q, k, v apart
    return (
        f"B={s.batch} D={s.dim}{inputs}, {s.dtype} on {where} ({result.device_name}), "
        f"matmul peak {result.peak_gflops:.{0 if result.peak_gflops >= 10 else 2}f} GFLOP/s "
        f"({result.peak_n}³), "
        f"load {result.load[0]:.1f}→{result.load[1]:.1f}"
    )


def exponent_table(result: BenchResult) -> Any:
    from rich.table import Table

    decoding = result.plan.settings.mode == "decode"
    title = "scaling exponent: slope of log time vs log T"
    if decoding:
        title = ("scaling exponents: slope of log time per token (and of log state MB) vs log "
                 "prefix T; 0 = flat, 1 = linear in T")
    if result.crossovers:
        title += (
            f"; crossover: the shortest T from which the variant is faster than {CROSSOVER_BASE} "
            "at every longer T measured"
        )
    table = Table(title=title, title_justify="left")
    table.add_column("attention")
    table.add_column("time exponent" if decoding else "exponent", justify="right")
    if decoding:
        table.add_column("state exponent", justify="right")
    table.add_column("lengths", justify="right")
    if result.crossovers:
        table.add_column(f"faster than {CROSSOVER_BASE} from T", justify="right")
    for label, exp in result.exponents.items():
        ns = [r.n for r in result.rows if r.label == label and r.median_ms]
        cells = [label, _f(exp, ".2f")]
        if decoding:
            cells.append(_f(result.state_exponents.get(label), ".2f"))
        cells.append(",".join(map(str, ns)) or "—")
        if result.crossovers:
            cells.append(_f(result.crossovers[label], "d") if label in result.crossovers else "")
        table.add_row(*cells)
    return table


def plot(result: BenchResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles: dict[str, Any] = {
        "variant": "-",
        "bare": "--",
        "plain": "-.",
        "torch": (0, (5, 1, 1, 1, 1, 1)),
        "naive": ":",
    }
    s = result.plan.settings
    decoding = s.mode == "decode"
    memory = "state_mb" if decoding else "peak_mb"
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors: dict[str, Any] = {}
    for label in result.exponents:
        rows = [r for r in result.rows if r.label == label]
        variant, kind = rows[0].variant, rows[0].kind
        color = colors.setdefault(variant, f"C{len(colors) % 10}")
        exp = result.exponents[label]
        name = label + (f" (T^{exp:.2f})" if exp is not None else "")
        for ax, attr, legend in ((ax_t, "median_ms", name), (ax_m, memory, label)):
            points = [(r.n, getattr(r, attr)) for r in rows if getattr(r, attr)]
            if points:
                ns, ys = zip(*points, strict=True)
                ax.plot(ns, ys, linestyle=styles[kind], color=color, marker="o", label=legend)
    labels = {"train": "forward+backward time (ms)", "forward": "inference forward time (ms)",
              "decode": "time per decoding step (ms)"}
    mem = "decoding state (MB)" if decoding else "peak memory above idle (MB)"
    for ax, what in ((ax_t, labels[s.mode]), (ax_m, mem)):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("prefix length T" if decoding else "sequence length T")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    where = f"{result.threads} thread(s)" if result.plan.device == "cpu" else result.plan.device
    ax_t.set_title(f"time, B={s.batch} D={s.dim}, {s.dtype} on {where}")
    ax_m.set_title("state held at T" if decoding else
                   "memory" + ("" if s.memory else " (not measured: bench.memory=false)"))
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
        "device": result.plan.device,
        "device_name": result.device_name,
        "matmul_peak_gflops": result.peak_gflops,
        "matmul_peak_n": result.peak_n,
        "threads": result.threads,
        "loadavg": list(result.load),
        "exponents": result.exponents,
        "state_exponents": result.state_exponents,
        "crossovers": {"base": CROSSOVER_BASE, "from_T": result.crossovers},
        "skipped": result.skipped,
        "rows": [asdict(r) for r in result.rows],
    }
    files["json"] = out_dir / "results.json"
    files["json"].write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return files


def metric_key(label: str, name: str) -> str:
    """`<case label>/<name>`, the label made safe for an MLflow metric name."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}/{name}"


def log_to_mlflow(result: BenchResult, files: Mapping[str, Path], table_text: str) -> str:
    """One MLflow run holding the metrics (step = T), table, plot and raw results."""
    import torch
    import yaml

    from attnbench import __version__
    from attnbench.config.run_config import flatten
    from attnbench.store import names as rec
    from attnbench.store.tracker import Tracker

    plan = result.plan
    tracker = Tracker(plan.tracking_uri, plan.runs_dir)
    tracker.connect()
    exp_id = tracker.experiment_id(plan.experiment_name)
    name = "bench-" + "-".join(plan.variants)
    tags = {
        rec.KIND_TAG: rec.BENCH_KIND,
        rec.VERSION_TAG: __version__,
        rec.THREADS_TAG: result.threads,
        rec.LOADAVG_TAG: f"{result.load[0]:.2f} -> {result.load[1]:.2f}",
        rec.TORCH_VERSION_TAG: torch.__version__,
        rec.CUDA_VERSION_TAG: torch.version.cuda or "none",
        rec.ATTENTION_TAG: ",".join(plan.variants),
    }
    run_id = tracker.start_run(exp_id, name, tags)
    try:
        params = flatten({"bench": asdict(plan.settings), "attention": plan.variants})
        params[rec.CPU_COUNT_PARAM] = os.cpu_count()
        tracker.log_params(run_id, params)
        by_n: dict[int, dict[str, float]] = {}
        for r in result.rows:
            metrics = by_n.setdefault(r.n, {})
            values = {
                "time_ms": r.median_ms,
                "time_iqr_ms": r.iqr_ms,
                "fwd_ms": r.fwd_ms,
                "bwd_ms": r.bwd_ms,
                "peak_mem_mb": r.peak_mb,
                "state_mb": r.state_mb,
                "gflops": r.gflops,
                "pct_of_peak": r.pct_peak,
                **{f"x_{k}": ratio(result.rows, r, k) if r.kind != k else None for k in KINDS[1:]},
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
        summary.update(
            {metric_key(k, "crossover_T"): n for k, n in result.crossovers.items() if n is not None}
        )
        summary.update({metric_key(k, "state_exponent"): v
                        for k, v in result.state_exponents.items() if v is not None})
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

"""Runner overhead: the figures issue 6 sets for attnbench itself (not for the attention kernels).

    python -m benchmarks.overhead            # everything (the sweep part takes minutes)
    python -m benchmarks.overhead --quick    # reduced trainer (loop, logging, sweep)
    python -m benchmarks.overhead --only cli,startup

Sections (``--only``):

- ``loop``: steady-state step time of ``attnbench run`` (a subprocess, read back from the
  timestamps of its ``train/loss`` metrics between step ``log_every`` and the last step) vs a bare
  PyTorch loop written plainly in ``runner.py`` (same model, data, schedule, clipping, threads and
  steps; torch.optim.AdamW + LambdaLR, what the runner's ``training/optimizers.py`` builds by
  default), interleaved; target ratio <= 1.10.
- ``startup``: wall time from launching ``attnbench run`` to the end of its first training step
  (the step-1 ``train/loss`` timestamp, logged every step here), on an existing store; one launch
  on a fresh store is shown apart (MLflow creates and migrates it); target <= 3 s.
- ``cli``: ``attnbench --help`` and ``attnbench list``, best of 5 launches; targets 0.3 s and 0.5 s.
- ``logging``: training time of the same ``fit`` with the MLflow sink (background writes, the
  default), a synchronous sink (every write waits for SQLite) and a null sink, interleaved;
  target: logging <= 3 % of training time.
- ``threads``: training step time with 1 and 2 torch threads, OpenMP waiting passively (the
  attnbench default), spinning briefly (GOMP_SPINCOUNT=1000) or spinning (the OpenMP default),
  each in its own process; ``--busy N`` runs N busy-loop processes meanwhile.
- ``sweep``: wall time of the README's 15-run quickstart sweep with the default launcher
  (parallel joblib workers) vs ``hydra/launcher=basic`` (sequential), in interleaved pairs, with
  the load before and after each and whether every test metric is identical; target <= 0.75×.
- ``memory``: ``cost/peak_mem_mb`` of each job of the default 5-variant sweep run first vs fifth
  (two sequential sweeps in opposite orders, each in one process); target within ±5 %.

Every figure is printed with the machine's load average, which on a shared machine moves them a
lot: ratios measured in the same run (interleaved) are the ones to trust.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.overhead.common import Report, loadavg, log, template_store
from benchmarks.overhead.memory_order import section_memory
from benchmarks.overhead.runner import section_loop
from benchmarks.overhead.sink import section_logging
from benchmarks.overhead.startup import section_cli, section_startup
from benchmarks.overhead.sweep import section_sweep
from benchmarks.overhead.threads import section_threads

SECTIONS = ("cli", "startup", "loop", "logging", "threads", "sweep", "memory")


def print_report(report: Report, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("section", "figure", "value", "unit", "target", "met", "how / notes"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for f in report.figures:
        value = "—" if f.value is None or math.isnan(f.value) else f"{f.value:.3g}"
        met = "" if f.met is None else ("yes" if f.met else "NO")
        table.add_row(f.section, f.name, value, f.unit, f.target, met, f.note)
    Console(width=220).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced trainer for the loop, logging and sweep parts"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections among {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=0,
        help="interleaved repeats (default 3, 2 with --quick; sweep: pairs, default 2)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="loop: trainer.threads for the runner and the bare loop (0 = the runner's default)",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="threads: run this many busy-loop processes meanwhile (a machine shared with others)",
    )
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose among {', '.join(SECTIONS)}")
    repeats = args.repeats or (2 if args.quick else 3)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="attnbench-overhead-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    report = Report(loads=[loadavg()])
    template = template_store(work / "template") if set(sections) - {"cli", "threads"} else Path()
    steps: dict[str, Callable[[], None]] = {
        "cli": lambda: section_cli(report, work),
        "startup": lambda: section_startup(report, work, template),
        "loop": lambda: section_loop(report, work, template, args.quick, repeats, args.threads),
        "logging": lambda: section_logging(report, work, template, args.quick, repeats),
        "threads": lambda: section_threads(report, work, repeats, args.busy),
        "sweep": lambda: section_sweep(report, work, template, args.quick, args.repeats or 2),
        "memory": lambda: section_memory(report, work, template, args.quick, max(1, repeats - 1)),
    }
    for name in SECTIONS:
        if name in sections:
            log(f"section {name}…")
            steps[name]()
    report.loads.append(loadavg())
    cores = os.cpu_count()
    print_report(
        report,
        f"attnbench overhead ({'--quick' if args.quick else 'full'}): load average "
        f"{report.loads[0]:.1f} -> {report.loads[-1]:.1f} on {cores} cores",
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "quick": args.quick,
                    "loadavg": report.loads,
                    "cores": cores,
                    "figures": [f.__dict__ for f in report.figures],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

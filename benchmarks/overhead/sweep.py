"""Section ``sweep``: the README's 15-run quickstart sweep (5 variants x 3 seeds) with the
default launcher (joblib, workers chosen from the cores) vs Hydra's basic launcher (one job after
another), in interleaved pairs (the order alternates), each sweep in a fresh store.

Printed per sweep: wall time from launch to exit and the load average (1/5/15 min, as `uptime`
shows it) before and after; per pair: default / basic wall time, and whether every test metric
(and every other metric but the timings) of each cell is identical between the two sweeps.
Target: <= 0.75x on 2 cores, every test metric identical.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.overhead.common import Report, log, run_cli, runs_dir_from, runs_of

GRID = ["attention=none,dot,scaled,additive,multihead", "seed=0,1,2"]  # README quickstart
JOBS = 15
MODES = {"basic": ["hydra/launcher=basic"], "default": []}
QUICK = ["trainer.max_steps=100", "trainer.epochs=1", "trainer.limit_eval_batches=2"]
TARGET = 0.75


def uptime() -> str:
    try:
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "load ?"


def sweep_once(mode: str, work: Path, template: Path, trainer: list[str], i: int
               ) -> tuple[float, dict[tuple[str, str], Any], str]:
    """One sweep in a fresh store: (wall s, {(attention, seed): run}, loads before -> after)."""
    runs_dir = runs_dir_from(template, work / f"sweep-{i}-{mode}")
    before = uptime()
    _, wall = run_cli(["sweep", *GRID, *trainer, *MODES[mode], f"runs_dir={runs_dir}"], work)
    loads = f"{before} -> {uptime()}"
    children = [r for r in runs_of(runs_dir, "assoc_recall") if r.tags.get("mlflow.parentRunId")]
    assert len(children) == JOBS and all(r.status == "FINISHED" for r in children), children
    cells = {(r.tags["attention"], r.tags["seed"]): r for r in children}
    threads = sorted({r.tags["attnbench.threads"] for r in children})
    workers = len({r.tags["attnbench.pid"] for r in children})
    log(f"sweep {i} {mode}: {JOBS} jobs in {wall:.1f} s ({workers} process(es), torch threads "
        f"{','.join(threads)}; {loads})")
    return wall, cells, loads


def same_numbers(a: dict[tuple[str, str], Any], b: dict[tuple[str, str], Any]
                 ) -> tuple[bool, bool, list[str]]:
    """(every test/* metric identical, every non-timing metric identical, what differs)."""
    from attnbench.store.names import TIMING_METRICS

    differ = []
    for cell, run in sorted(a.items()):
        other = b[cell].metrics
        for name, value in sorted(run.metrics.items()):
            if name not in TIMING_METRICS and other.get(name) != value:
                differ.append(f"{'-s'.join(cell)} {name}: {value!r} vs {other.get(name)!r}")
    tests_same = not any(" test/" in d for d in differ)
    return tests_same, not differ, differ


def section_sweep(report: Report, work: Path, template: Path, quick: bool, repeats: int) -> None:
    trainer = QUICK if quick else []
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    ratios: list[float] = []
    identical = True
    for i in range(repeats):
        order = list(MODES) if i % 2 == 0 else list(reversed(MODES))  # interleaved pairs
        pair = {mode: sweep_once(mode, work, template, trainer, i) for mode in order}
        for mode in MODES:
            walls[mode].append(pair[mode][0])
        ratio = pair["default"][0] / pair["basic"][0]
        ratios.append(ratio)
        tests_same, all_same, differ = same_numbers(pair["basic"][1], pair["default"][1])
        identical &= tests_same
        log(f"pair {i}: default / basic = {ratio:.2f}; every test metric identical: "
            f"{'yes' if tests_same else 'NO'}; every other non-timing metric: "
            f"{'yes' if all_same else 'NO'}")
        for line in differ[:10]:
            log(f"  differs: {line}")
        for mode in MODES:
            report.add("sweep", f"pair {i}: 15-run sweep, {mode}", pair[mode][0], "s",
                       note=pair[mode][2])
    what = "quick trainer (max_steps=100, 1 epoch, 2 eval batches)" if quick else "default trainer"
    ratio = statistics.median(ratios)
    report.add("sweep", "default (parallel) / basic (sequential) wall time", ratio, "×",
               f"<= {TARGET}", ratio <= TARGET,
               f"{what}; pairs: {', '.join(f'{r:.2f}' for r in ratios)}; basic "
               f"{', '.join(f'{w:.0f}' for w in walls['basic'])} s, default "
               f"{', '.join(f'{w:.0f}' for w in walls['default'])} s")
    report.add("sweep", "every test metric identical (basic vs default)", float(identical), "",
               "1", identical, f"{repeats} pair(s), {JOBS} cells each")

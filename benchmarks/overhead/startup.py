"""Start-up: ``attnbench --help`` and ``attnbench list`` launch times (section ``cli``), and the
wall time from launching ``attnbench run`` to the end of its first training step (section
``startup``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.overhead.common import (
    Report,
    exe,
    log,
    loss_timestamps,
    run_cli,
    runs_dir_from,
    runs_of,
)


# -- cli -----------------------------------------------------------------------------------------
def section_cli(report: Report, work: Path, repeats: int = 5) -> None:
    def best(argv: list[str]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=work, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        return min(times)

    base = best([sys.executable, "-c", "pass"])
    help_s = best([exe(), "--help"])
    list_s = best([exe(), "list"])
    report.add("cli", "python -c pass (interpreter floor)", base, "s", note=f"best of {repeats}")
    report.add(
        "cli", "attnbench --help", help_s, "s", "<= 0.3 s", help_s <= 0.3, f"best of {repeats}"
    )
    report.add(
        "cli", "attnbench list", list_s, "s", "<= 0.5 s", list_s <= 0.5, f"best of {repeats}"
    )


# -- startup -------------------------------------------------------------------------------------
STARTUP_ARGS = [
    "trainer.max_steps=3",
    "trainer.epochs=1",
    "trainer.log_every=1",
    "trainer.limit_eval_batches=1",
    "trainer.progress=false",
]


def first_step(runs_dir: Path, experiment: str, launched: float) -> tuple[float, float]:
    """(seconds from launch to the end of step 1, duration of step 2) of the run in `experiment`."""
    run = runs_of(runs_dir, experiment)[0]
    ts = loss_timestamps(runs_dir, run.run_id)
    return ts[1] - launched, ts[2] - ts[1]


FLOOR = (
    "import time; t = time.perf_counter(); import torch, torch._dynamo; "
    "print(time.time(), time.perf_counter() - t)"
)


def import_floor(work: Path, repeats: int) -> tuple[float, float]:
    """(best launch -> `import torch, torch._dynamo` done, best of those imports alone) in
    seconds: what any torch.optim training step pays before it ends, whatever runs it. (The
    process's exit, 1-2 s with torch loaded, is not part of it.)"""
    floors, imports = [], []
    for _ in range(repeats):
        launched = time.time()
        out = subprocess.run([sys.executable, "-c", FLOOR], cwd=work, capture_output=True,
                             text=True, check=True)
        done, took = (float(v) for v in out.stdout.split())
        floors.append(done - launched)
        imports.append(took)
    return min(floors), min(imports)


def section_startup(report: Report, work: Path, template: Path, repeats: int = 3) -> None:
    floor, imports = import_floor(work, repeats)
    log(f"startup floor: python + import torch, torch._dynamo {floor:.2f} s "
        f"(the imports {imports:.2f} s)")
    runs_dir = runs_dir_from(template, work / "startup")
    run_cli(["run", *STARTUP_ARGS, f"runs_dir={runs_dir}", "experiment_name=warm"], work)  # caches
    got = []
    for i in range(repeats):
        exp = f"startup-{i}"
        launched, wall = run_cli(
            ["run", *STARTUP_ARGS, f"runs_dir={runs_dir}", f"experiment_name={exp}"], work
        )
        to_first, step = first_step(runs_dir, exp, launched)
        got.append((to_first, step, wall))
        log(
            f"startup {i}: first step ends {to_first:.2f} s after launch (step 2 "
            f"{step * 1e3:.0f} ms later: the MLflow run opens in between)"
        )
    best = min(got)
    report.add(
        "startup",
        "floor: python -c 'import torch, torch._dynamo'",
        floor,
        "s",
        note=f"best of {repeats}; torch.optim's first step imports torch._dynamo, and both "
        "imports hold the GIL, so no thread can overlap them",
    )
    report.add(
        "startup",
        "launch -> end of first step, above that floor",
        best[0] - floor,
        "s",
        note="attnbench's own share: CLI, Hydra compose, validation, data, model, step 1",
    )
    report.add(
        "startup",
        "launch -> end of first training step (existing store)",
        best[0],
        "s",
        "<= 3 s",
        best[0] <= 3.0,
        f"best of {repeats}: {', '.join(f'{g[0]:.2f}' for g in got)}; step 2 "
        f"{best[1] * 1e3:.0f} ms later (the MLflow run opens in between);"
        f" whole 3-step run {best[2]:.1f} s",
    )
    fresh = work / "startup-fresh"
    launched, wall = run_cli(
        ["run", *STARTUP_ARGS, f"runs_dir={fresh}", "experiment_name=fresh"], work
    )
    to_first, _ = first_step(fresh, "fresh", launched)
    report.add(
        "startup",
        "launch -> end of first training step (fresh store)",
        to_first,
        "s",
        note="includes MLflow creating and migrating the SQLite store (once per runs_dir)",
    )

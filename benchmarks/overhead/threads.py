"""Section ``threads``: training step time with 1 and 2 torch threads under each OpenMP wait policy,
each in its own process, optionally with busy-loop processes competing for the cores."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.overhead.common import Report, log

STEP_SCRIPT = r"""
import os, sys, time, statistics
import attnbench
import torch
from benchmarks.overhead.common import compose
from attnbench.config.build import build
from attnbench.config.validate import validate
from attnbench.training.steps import loss_fn
torch.set_num_threads(int(sys.argv[1]))
built = build(validate(compose([])))
model, data = built.model, built.data
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x, y = data.train.inputs[:64], data.train.targets[:64]
def step():
    out = model(x, y if data.spec.kind == "transduce" else None)
    loss = loss_fn(out.logits, y, data.spec.kind)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5):
    step()
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    for _ in range(5):
        step()
    times.append((time.perf_counter() - t0) / 5)
print(statistics.median(times))
"""


# How OpenMP threads wait (see attnbench/__init__.py); an empty OMP_WAIT_POLICY is ignored by the
# runtime (its default applies) but tells `import attnbench` the user chose.
WAIT_POLICIES = {
    "passive (attnbench default)": {"OMP_WAIT_POLICY": "PASSIVE"},
    "short spin (GOMP_SPINCOUNT=1000)": {"GOMP_SPINCOUNT": "1000"},
    "spinning (OpenMP default)": {"OMP_WAIT_POLICY": ""},
}


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """`n` busy-loop processes (another workload on the machine) while the block runs; each is
    ended by the PID started here."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0 if procs else 0.0)  # let them get going
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def section_threads(report: Report, work: Path, repeats: int, busy: int = 0) -> None:
    with busy_processes(busy):
        _time_threads(report, work, repeats, busy)


def _time_threads(report: Report, work: Path, repeats: int, busy: int) -> None:
    combos = [(policy, n) for policy in WAIT_POLICIES for n in (1, 2)]
    got: dict[tuple[str, int], list[float]] = {c: [] for c in combos}
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for _ in range(repeats):
        for policy, n in combos:
            out = subprocess.run(
                [sys.executable, "-c", STEP_SCRIPT, str(n), "6"],
                cwd=work,
                env={**base, **WAIT_POLICIES[policy]},
                capture_output=True,
                text=True,
                check=True,
            )
            got[(policy, n)].append(float(out.stdout.strip().splitlines()[-1]))
            log(f"threads: OpenMP {policy}, {n} thread(s): {got[(policy, n)][-1] * 1e3:.1f} ms")
    for policy, n in combos:
        report.add(
            "threads",
            f"training step, {n} thread(s), OpenMP {policy}",
            statistics.median(got[(policy, n)]) * 1e3,
            "ms/step",
            note=f"default model, B=64; {repeats} interleaved processes"
            + (f"; {busy} busy-loop process(es) running" if busy else ""),
        )

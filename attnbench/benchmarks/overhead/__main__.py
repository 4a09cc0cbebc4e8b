"""Runner overhead: the figures issue 6 sets for attnbench itself (not for the attention kernels).

    python -m attnbench.benchmarks.overhead            # everything (the sweep part takes minutes)
    python -m attnbench.benchmarks.overhead --quick    # reduced trainer (loop, logging, sweep)
    python -m attnbench.benchmarks.overhead --only cli,startup

Sections (``--only``):

- ``loop``: steady-state step time of ``attnbench run`` (a subprocess, read back from the
  timestamps of its ``train/loss`` metrics between step ``log_every`` and the last step) vs a bare
  PyTorch loop written plainly below (same model, data, schedule, clipping, threads and steps;
  torch.optim.AdamW + LambdaLR, whose updates the runner's ``training/optim.py`` reproduces bit
  for bit), interleaved; target ratio <= 1.10.
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
- ``sweep``: throughput (jobs/min) of the default 5-variant sweep with the joblib launcher
  (n_jobs=2, each worker cores/2 threads) vs the basic sequential launcher; target >= 1.4×.

Every figure is printed with the machine's load average, which on a shared machine moves them a
lot: ratios measured in the same run (interleaved) are the ones to trust.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attnbench  # noqa: F401 - sets OMP_WAIT_POLICY before torch loads, as the CLI does

SECTIONS = ("cli", "startup", "loop", "logging", "threads", "sweep")
VARIANTS = "none,dot,scaled,additive,multihead"


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        fig = Figure(*args, **kwargs)
        self.figures.append(fig)
        return fig


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def log(msg: str) -> None:
    print(
        f"[overhead {time.strftime('%H:%M:%S')} load {loadavg():.1f}] {msg}",
        file=sys.stderr,
        flush=True,
    )


def exe() -> str:
    return str(Path(sys.executable).parent / "attnbench")


def template_store(root: Path) -> Path:
    """A created and migrated MLflow store, copied into every runs_dir (creation costs seconds)."""
    from attnbench.store.handle import Tracker

    Tracker(None, root).connect()
    return root / "mlflow.db"


def runs_dir_from(template: Path, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, path / "mlflow.db")
    return path


def compose(overrides: Sequence[str]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from attnbench.config.compose import hydra_compose

    with hydra_compose() as compose_cfg:
        cfg = OmegaConf.to_container(compose_cfg("config", overrides=list(overrides)), resolve=True)
    return cfg  # type: ignore[return-value]


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 3600) -> tuple[float, float]:
    """Launch `attnbench ARGS`; returns (epoch seconds at launch, wall seconds)."""
    start_epoch = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run([exe(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"attnbench {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return start_epoch, wall


def runs_of(runs_dir: Path, experiment: str) -> list[Any]:
    from attnbench.store.handle import Tracker

    tracker = Tracker(None, runs_dir)
    exp = tracker.find_experiment(experiment)
    return [] if exp is None else tracker.search([exp])


def loss_timestamps(runs_dir: Path, run_id: str) -> dict[int, float]:
    """step -> epoch seconds at which the training loop logged train/loss for that step."""
    from attnbench.store.handle import Tracker

    history = Tracker(None, runs_dir).client.get_metric_history(run_id, "train/loss")
    return {m.step: m.timestamp / 1000.0 for m in history}


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


def section_startup(report: Report, work: Path, template: Path, repeats: int = 3) -> None:
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
            f"startup {i}: first step ends {to_first:.2f} s after launch (step {step * 1e3:.0f} ms)"
        )
    best = min(got)
    report.add(
        "startup",
        "launch -> end of first training step (existing store)",
        best[0],
        "s",
        "<= 3 s",
        best[0] <= 3.0,
        f"best of {repeats}: {', '.join(f'{g[0]:.2f}' for g in got)}; step {best[1] * 1e3:.0f} ms;"
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


# -- loop ----------------------------------------------------------------------------------------
def bare_loop(cfg: dict[str, Any], steps: int, every: int, threads: int) -> dict[int, float]:
    """A plain PyTorch training loop on attnbench's model and data (same optimiser, schedule,
    clipping and batches as the runner); returns {step: seconds} at every `every` steps."""
    import torch

    from attnbench.config.build import build
    from attnbench.config.validate import validate
    from attnbench.training.loop import loss_fn

    torch.set_num_threads(threads)
    torch.manual_seed(cfg["seed"])
    built = build(validate(cfg))
    model, data, tc = built.model, built.data, built.trainer
    kind = data.spec.kind
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / tc.warmup_steps) if tc.warmup_steps else 1.0
    )
    gen = torch.Generator().manual_seed(cfg["seed"])
    order = torch.randperm(len(data.train), generator=gen)
    model.train()
    stamps: dict[int, float] = {}
    for step in range(1, steps + 1):
        idx = order[(step - 1) * tc.batch_size : step * tc.batch_size]
        x, y = data.train.inputs[idx], data.train.targets[idx]
        out = model(x, y if kind == "transduce" else None)
        loss = loss_fn(out.logits, y, kind)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        if step % every == 0:
            stamps[step] = time.perf_counter()
    return stamps


def per_step(stamps: dict[int, float], first: int, last: int) -> float:
    return (stamps[last] - stamps[first]) / (last - first)


def section_loop(
    report: Report, work: Path, template: Path, quick: bool, repeats: int, threads: int = 0
) -> None:
    # One epoch (8000 / 64 = 125 steps) so no evaluation falls inside; the steady state is the
    # last 50 steps: the runner opens its MLflow run on a thread during the first steps.
    steps = 100 if quick else 125
    every, steady = 25, steps - 50
    overrides = [
        f"trainer.max_steps={steps}",
        "trainer.epochs=1",
        f"trainer.log_every={every}",
        "trainer.limit_eval_batches=1",
        f"trainer.threads={threads}",
    ]
    cfg = compose(overrides)
    runs_dir = runs_dir_from(template, work / "loop")
    got: dict[str, list[tuple[float, float]]] = {"bare": [], "runner": []}
    for i in range(repeats):
        exp = f"loop-{i}"
        run_cli(["run", *overrides, f"runs_dir={runs_dir}", f"experiment_name={exp}"], work)
        run = runs_of(runs_dir, exp)[0]
        threads = int(run.tags["attnbench.threads"])
        ts = loss_timestamps(runs_dir, run.run_id)
        got["runner"].append((per_step(ts, steady, steps), per_step(ts, every, steps)))
        stamps = bare_loop(cfg, steps, every, threads)
        got["bare"].append((per_step(stamps, steady, steps), per_step(stamps, every, steps)))
        log(
            f"loop {i}: steady runner {got['runner'][-1][0] * 1e3:.1f} ms/step, "
            f"bare {got['bare'][-1][0] * 1e3:.1f} ms/step"
        )

    def med(kind: str, which: int) -> float:
        return statistics.median(g[which] for g in got[kind])

    pairs = [r[0] / b[0] for r, b in zip(got["runner"], got["bare"], strict=True)]
    ratio = med("runner", 0) / med("bare", 0)
    early = med("runner", 1) / med("bare", 1)
    model = "default model (transformer, scaled, assoc_recall, B=64)"
    report.add(
        "loop",
        "bare PyTorch loop, steady state",
        med("bare", 0) * 1e3,
        "ms/step",
        note=f"steps {steady}..{steps}, {threads} thread(s), {model}",
    )
    report.add(
        "loop",
        "attnbench run, steady state",
        med("runner", 0) * 1e3,
        "ms/step",
        note="from its train/loss timestamps (logging, progress, determinism included)",
    )
    report.add(
        "loop",
        "runner / bare, steady state",
        ratio,
        "×",
        "<= 1.10",
        ratio <= 1.10,
        f"{repeats} interleaved pairs: {', '.join(f'{p:.2f}' for p in pairs)}",
    )
    report.add(
        "loop",
        f"runner / bare, steps {every}..{steps}",
        early,
        "×",
        note="includes the MLflow import and run creation the runner does on a thread "
        "while its first steps run",
    )


# -- logging -------------------------------------------------------------------------------------
class NullSink:
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass


class TimedSink:
    """Wraps a sink; adds up the time the training thread spends in its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        t0 = time.perf_counter()
        self.inner.log_metrics(metrics, step)
        self.seconds += time.perf_counter() - t0
        self.calls += 1


def section_logging(report: Report, work: Path, template: Path, quick: bool, repeats: int) -> None:
    """Two figures: the time the training thread spends in the sink (steady, direct) and the
    training time with each sink vs a null sink, interleaved (includes the writer thread's
    indirect cost, but noisy on a shared machine)."""
    import torch

    from attnbench.config.build import build
    from attnbench.config.validate import validate
    from attnbench.store.handle import Tracker
    from attnbench.training.loop import fit
    from attnbench.training.seeding import set_threads

    steps = 75 if quick else 125
    cfg = compose(
        [f"trainer.max_steps={steps}", "trainer.epochs=1", "trainer.limit_eval_batches=1"]
    )
    threads = set_threads(0, 1)
    tracker = Tracker(None, runs_dir_from(template, work / "logging"))
    exp = tracker.experiment_id("logging")
    built = build(validate(cfg))
    state = {k: v.clone() for k, v in built.model.state_dict().items()}
    kinds = ("null", "background", "synchronous")
    train_s: dict[str, list[float]] = {k: [] for k in kinds}
    in_sink: dict[str, list[float]] = {k: [] for k in kinds}
    calls = 0
    for i in range(repeats):
        for kind in kinds:
            built.model.load_state_dict(state)
            torch.manual_seed(cfg["seed"])
            run_id = None
            if kind != "null":
                run_id = tracker.start_run(exp, f"{kind}-{i}", {})
            inner = NullSink() if run_id is None else tracker.sink(run_id, kind == "background")
            sink = TimedSink(inner)
            result = fit(built.model, built.data, built.trainer, cfg["seed"], sink)
            if run_id is not None:
                tracker.end_run(run_id)  # waits for the background writes
            calls = sink.calls
            train_s[kind].append(result.cost["train_s"])
            in_sink[kind].append(sink.seconds)
            log(
                f"logging {i}: {kind} sink, training {result.cost['train_s']:.2f} s, "
                f"{sink.seconds * 1e3:.1f} ms in {sink.calls} sink calls"
            )
    null = statistics.median(train_s["null"])
    note = (
        f"{steps} steps, {threads} thread(s), log_every={built.trainer.log_every}: {calls} "
        "sink calls per run"
    )
    report.add("logging", "training time, null sink", null, "s", note=note)
    for kind in ("background", "synchronous"):
        direct = statistics.median(s / t for s, t in zip(in_sink[kind], train_s[kind], strict=True))
        report.add(
            "logging",
            f"training thread blocked in the {kind} sink",
            100 * direct,
            "% of training",
            "<= 3 %" if kind == "background" else "",
            direct <= 0.03 if kind == "background" else None,
            f"{statistics.median(in_sink[kind]) * 1e3:.1f} ms per run, median of {repeats}",
        )
    for kind in ("background", "synchronous"):
        pairs = [s / n - 1 for s, n in zip(train_s[kind], train_s["null"], strict=True)]
        report.add(
            "logging",
            f"training time with the {kind} sink vs null",
            100 * statistics.median(pairs),
            "% (A/B)",
            note=f"interleaved runs: {', '.join(f'{100 * p:+.1f}' for p in pairs)} %; "
            "includes the writer thread's CPU, and the machine's noise",
        )


# -- threads -------------------------------------------------------------------------------------
STEP_SCRIPT = r"""
import os, sys, time, statistics
import attnbench
import torch
from attnbench.benchmarks.overhead.__main__ import compose
from attnbench.config.build import build
from attnbench.config.validate import validate
from attnbench.training.loop import loss_fn
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


# -- sweep ---------------------------------------------------------------------------------------
def section_sweep(report: Report, work: Path, template: Path, quick: bool, repeats: int) -> None:
    trainer = (
        ["trainer.max_steps=100", "trainer.epochs=1", "trainer.limit_eval_batches=2"]
        if quick
        else []
    )
    modes = {
        "sequential": [],
        "joblib n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    }
    rates: dict[str, list[float]] = {m: [] for m in modes}
    threads: dict[str, set[str]] = {m: set() for m in modes}
    for i in range(repeats):
        for mode, extra in modes.items():
            runs_dir = runs_dir_from(template, work / f"sweep-{i}-{mode.split()[0]}")
            _, wall = run_cli(
                ["sweep", f"attention={VARIANTS}", *trainer, *extra, f"runs_dir={runs_dir}"], work
            )
            children = [
                r for r in runs_of(runs_dir, "assoc_recall") if r.tags.get("mlflow.parentRunId")
            ]
            assert len(children) == 5 and all(r.status == "FINISHED" for r in children), children
            threads[mode] |= {r.tags["attnbench.threads"] for r in children}
            rates[mode].append(5 / wall * 60)
            log(f"sweep {i}: {mode}: 5 jobs in {wall:.1f} s")
    what = "quick trainer (max_steps=100, 1 epoch, 2 eval batches)" if quick else "default trainer"
    for mode in modes:
        report.add(
            "sweep",
            f"5-variant sweep, {mode}",
            statistics.median(rates[mode]),
            "jobs/min",
            note=f"{what}; torch threads per job: {','.join(sorted(threads[mode]))}",
        )
    speedup = statistics.median(rates["joblib n_jobs=2"]) / statistics.median(rates["sequential"])
    report.add(
        "sweep", "joblib / sequential throughput", speedup, "×", ">= 1.4", speedup >= 1.4, what
    )


# -- main ----------------------------------------------------------------------------------------
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
        prog="python -m attnbench.benchmarks.overhead", description=__doc__.split("\n\n")[0]
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
        help="interleaved repeats (default 3, 2 with --quick; sweep: 1)",
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
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="attnbench-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    report = Report(loads=[loadavg()])
    template = template_store(work / "template") if set(sections) - {"cli", "threads"} else Path()
    steps: dict[str, Callable[[], None]] = {
        "cli": lambda: section_cli(report, work),
        "startup": lambda: section_startup(report, work, template),
        "loop": lambda: section_loop(report, work, template, args.quick, repeats, args.threads),
        "logging": lambda: section_logging(report, work, template, args.quick, repeats),
        "threads": lambda: section_threads(report, work, repeats, args.busy),
        "sweep": lambda: section_sweep(report, work, template, args.quick, max(1, repeats - 2)),
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

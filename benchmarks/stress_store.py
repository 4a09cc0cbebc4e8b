"""Parallel writers on a fresh local store: no errors, no lost runs, no lost metrics.

    python -m benchmarks.stress_store --repeats 10 --jobs 4        # the README figures
    python -m benchmarks.stress_store --repeats 3 --mode runs      # N separate `run`s
    python -m benchmarks.stress_store --repeats 3 --no-lock        # the lock disabled
    python -m benchmarks.stress_store --repeats 3 --mode mlflow    # plain MLflow
    python -m benchmarks.stress_store --kill 20                    # kill store creation

Each repeat starts from an empty runs folder (no ``mlflow.db``), so the store is created while
the writers start, which is where MLflow's SQLite store is fragile: it creates and migrates its
tables without a lock. Modes:

- ``sweep`` (default): ``attnbench sweep seed=range(0,J) hydra/launcher=joblib
  hydra.launcher.n_jobs=J trainer=smoke``: J worker processes write one store;
- ``runs``: J ``attnbench run`` processes started at the same moment on the same fresh store
  (every one of them creates the store);
- ``tracker``: J processes that use ``attnbench.store.tracker.Tracker`` directly (no training, no
  torch import: seconds per repeat, the store layer alone; the default test suite runs it);
- ``mlflow``: J plain-MLflow processes (no attnbench) that create the store and log a run each,
  to show the problem attnbench's lock exists for.

``--kill N`` (a mode of its own, in `stress_kill`): N times, kill ``attnbench run`` at a random
instant of its store creation on a fresh folder, then run again there and check that the store
works and no run is lost (``--in-place``: the killed process builds the store as MLflow does).

After each repeat the store is read back: every expected run must exist and be FINISHED, every
metric must have every logged step, and SQLite's ``PRAGMA integrity_check`` must say ``ok``.
``--no-lock`` replaces attnbench's store lock with a no-op in every process (through a
``sitecustomize`` on PYTHONPATH; attnbench itself has no switch for it). Exits 1 on any error or
loss.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("sweep", "runs", "tracker", "mlflow")
# What one smoke run logs: train/loss at steps 1..3 (log_every=1, max_steps=3), then once each
# the validation, test and cost metrics. Other metrics (diagnostics) are checked for presence
# against the other runs of the same repeat.
SMOKE_STEPS = 3
CORE_METRICS = ("train/loss", "val/acc", "test/acc", "epoch", "cost/params", "cost/train_s")
MLFLOW_STEPS = 20

NO_LOCK_SITECUSTOMIZE = '''
from contextlib import contextmanager

import attnbench.store.tracker


@contextmanager
def _no_lock(self):
    yield


attnbench.store.tracker.Tracker.lock = _no_lock
'''

TRACKER_WRITER = '''
import sys
from attnbench.store.tracker import Tracker
from attnbench.store.liveness import process_tags
runs_dir, worker, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tracker = Tracker(None, runs_dir)
tracker.connect()
exp = tracker.experiment_id("stress")
run = tracker.start_run(exp, f"worker-{worker}", {"worker": worker, **process_tags()})
tracker.log_params(run, {f"p{i}": i for i in range(50)})
tracker.log_text(run, "worker: %d" % worker, "config/config.yaml")
for step in range(1, steps + 1):
    tracker.log_metrics(run, {"train/loss": 1.0 / step}, step)
tracker.end_run(run, "FINISHED")
'''

PLAIN_MLFLOW_WRITER = '''
import sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric
uri, worker, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=uri)
name = "stress"
try:
    exp = client.create_experiment(name)
except Exception:
    exp = client.get_experiment_by_name(name).experiment_id
run = client.create_run(exp, run_name=f"worker-{worker}")
for step in range(1, steps + 1):
    client.log_batch(run.info.run_id, metrics=[Metric("train/loss", 1.0 / step, 0, step)])
client.set_terminated(run.info.run_id, "FINISHED")
'''


@dataclass
class Repeat:
    index: int
    seconds: float = 0.0
    exit_codes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    runs_expected: int = 0
    runs_ok: int = 0
    points_expected: int = 0
    points_found: int = 0
    integrity: str = "?"

    @property
    def lost_runs(self) -> int:
        return self.runs_expected - self.runs_ok

    @property
    def lost_points(self) -> int:
        return self.points_expected - self.points_found

    @property
    def clean(self) -> bool:
        return not self.errors and not self.lost_runs and not self.lost_points and (
            self.integrity == "ok"
        )


def _env(no_lock: bool, scratch: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    if no_lock:
        (scratch / "sitecustomize.py").write_text(NO_LOCK_SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(scratch), env.get("PYTHONPATH")]))
    return env


def _commands(mode: str, jobs: int, runs_dir: Path) -> list[list[str]]:
    attnbench = [sys.executable, "-m", "attnbench"]
    smoke = ["trainer=smoke", f"runs_dir={runs_dir}", "trainer.threads=1"]
    if mode == "sweep":
        return [[*attnbench, "sweep", f"seed=range(0,{jobs})", "hydra/launcher=joblib",
                 f"hydra.launcher.n_jobs={jobs}", *smoke]]
    if mode == "runs":
        return [[*attnbench, "run", f"seed={i}", *smoke] for i in range(jobs)]
    if mode == "tracker":
        return [[sys.executable, "-c", TRACKER_WRITER, str(runs_dir), str(i), str(MLFLOW_STEPS)]
                for i in range(jobs)]
    uri = f"sqlite:///{runs_dir / 'mlflow.db'}"
    return [[sys.executable, "-c", PLAIN_MLFLOW_WRITER, uri, str(i), str(MLFLOW_STEPS)]
            for i in range(jobs)]


def _problem_lines(text: str) -> list[str]:
    keep = ("Traceback", "error:", "Error", "locked", "FAILED")
    return [ln.strip() for ln in text.splitlines() if any(k in ln for k in keep)]


def run_repeat(index: int, mode: str, jobs: int, root: Path, no_lock: bool = False,
               timeout: float = 900) -> Repeat:
    """One repeat on a fresh runs folder under `root`; returns what was found."""
    runs_dir = root / f"repeat-{index}" / "runs"
    scratch = runs_dir.parent / "scratch"
    scratch.mkdir(parents=True)
    rep = Repeat(index)
    env = _env(no_lock, scratch)
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=runs_dir.parent, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for cmd in _commands(mode, jobs, runs_dir)]
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            rep.errors.append(f"timed out after {timeout:.0f} s")
        rep.exit_codes.append(proc.returncode)
        if proc.returncode != 0:
            rep.errors.extend(_problem_lines(out + err)[-3:] or [f"exit code {proc.returncode}"])
    rep.seconds = time.perf_counter() - start
    _read_back(rep, mode, jobs, runs_dir)
    return rep


def _read_back(rep: Repeat, mode: str, jobs: int, runs_dir: Path) -> None:
    db = runs_dir / "mlflow.db"
    rep.runs_expected = jobs + (1 if mode == "sweep" else 0)  # + the sweep's parent run
    plain = mode in ("tracker", "mlflow")  # one metric, train/loss, at MLFLOW_STEPS steps
    per_run = MLFLOW_STEPS if plain else SMOKE_STEPS + len(CORE_METRICS) - 1
    rep.points_expected = jobs * per_run
    if not db.is_file():
        rep.integrity = "no store"
        return
    try:
        with sqlite3.connect(db) as conn:
            rep.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as err:
        rep.integrity = f"corrupt: {err}"
        return
    try:
        from mlflow import MlflowClient
        from mlflow.entities import ViewType

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        exp_ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(exp_ids, "", ViewType.ALL, max_results=1000) if exp_ids else []
    except Exception as err:  # noqa: BLE001 - a broken store is a finding, not a crash
        rep.errors.append(f"cannot read the store: {str(err).splitlines()[0][:200]}")
        return
    rep.runs_ok = sum(r.info.status == "FINISHED" for r in runs)
    jobs_runs = [r for r in runs if r.data.tags.get("attnbench.kind") != "sweep"]
    for run in jobs_runs:
        if plain:
            rep.points_found += len(client.get_metric_history(run.info.run_id, "train/loss"))
            continue
        for key in CORE_METRICS:
            history = client.get_metric_history(run.info.run_id, key)
            rep.points_found += min(len(history), SMOKE_STEPS if key == "train/loss" else 1)
    if plain:
        return
    # any other metric (e.g. diagnostics) must be logged by every job, not just some
    others = [set(r.data.metrics) - set(CORE_METRICS) for r in jobs_runs]
    if others and set.union(*others) != set.intersection(*others):
        missing = set.union(*others) - set.intersection(*others)
        rep.errors.append(f"metrics logged by some jobs only: {', '.join(sorted(missing))}")


def print_table(title: str, reps: list[Repeat]) -> None:
    from attnbench.console import console, results_table

    rows = [[r.index, round(r.seconds, 1), ",".join(map(str, r.exit_codes)), len(r.errors),
             f"{r.runs_ok}/{r.runs_expected}", f"{r.points_found}/{r.points_expected}",
             r.integrity] for r in reps]
    columns = ["repeat", "seconds", "exit codes", "errors", "finished runs", "metric points",
               "integrity"]
    console.print(results_table(title, columns, rows))
    for r in reps:
        for line in r.errors[:5]:
            console.print(f"  repeat {r.index}: {line}", highlight=False, markup=False)


def summary(reps: list[Repeat]) -> str:
    return (f"{len(reps)} repeats: {sum(len(r.errors) > 0 for r in reps)} with errors, "
            f"{sum(r.lost_runs for r in reps)} lost runs, {sum(r.lost_points for r in reps)} "
            f"lost metric points, {sum(r.integrity != 'ok' for r in reps)} damaged stores")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stress_store",
        description="Parallel writers on a fresh local MLflow store: count errors and losses.",
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=4, help="parallel writers per repeat")
    parser.add_argument("--mode", choices=MODES, default="sweep")
    parser.add_argument("--no-lock", action="store_true",
                        help="disable attnbench's store lock (to measure what it prevents)")
    parser.add_argument("--root", type=Path, default=None,
                        help="keep the stores here (default: a temporary folder, deleted)")
    parser.add_argument("--kill", type=int, default=0, metavar="N",
                        help="instead: kill store creation N times, then check the store")
    parser.add_argument("--window", type=float, default=8.0,
                        help="--kill: kill within this many seconds of the store work starting")
    parser.add_argument("--seed", type=int, default=0, help="--kill: seed of the kill instants")
    parser.add_argument("--in-place", action="store_true",
                        help="--kill: the killed process builds the store in place, as MLflow "
                             "does (to measure what the temporary file prevents)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.jobs < 1:
        parser.error("--repeats and --jobs must be >= 1")
    if args.kill:
        from benchmarks.stress_kill import kill_main

        return kill_main(args.kill, args.window, args.seed, args.root, args.in_place)

    with tempfile.TemporaryDirectory(prefix="attnbench-stress-") as tmp:
        root = args.root or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        reps = []
        for i in range(1, args.repeats + 1):
            reps.append(run_repeat(i, args.mode, args.jobs, root, no_lock=args.no_lock))
            print(f"repeat {i}/{args.repeats}: {reps[-1].seconds:.1f} s, "
                  f"{'clean' if reps[-1].clean else 'PROBLEMS'}", flush=True)
    lock = "no lock" if args.no_lock else "with the store lock"
    if args.mode == "mlflow":
        lock = "plain MLflow (no attnbench, no lock)"
    title = f"{args.jobs} parallel writers on a fresh store, mode={args.mode}, {lock}"
    print_table(title, reps)
    print(summary(reps))
    return 0 if all(r.clean for r in reps) else 1


if __name__ == "__main__":
    sys.exit(main())

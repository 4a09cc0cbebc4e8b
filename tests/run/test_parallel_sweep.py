"""A local sweep runs on parallel workers by default (Hydra's joblib launcher, `n_jobs: -1`: the
workers `run.app.local_workers` chooses from the cores or GPUs), `hydra/launcher=basic` runs the
jobs one after another, and a job's numbers do not depend on which: every job uses
`trainer.threads` torch threads (default 1), however many workers share the machine."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from attnbench.config.validate import validate
from attnbench.run.app import jobs_sharing_this_machine, local_workers, workers_override
from attnbench.store.names import PID_TAG, THREADS_TAG, TIMING_METRICS
from tests.conftest import all_runs, attnbench_cmd

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
BASE = {"seed": 0, "runs_dir": "runs", "attention": {"name": "dot"},
        "backbone": {"name": "transformer"}, "task": {"name": "copy"}, "tracking": {"uri": None}}


def jobs(n: int, **trainer: object) -> list:
    return [validate({**BASE, "seed": i, "trainer": dict(trainer)}) for i in range(n)]


# -- which launcher, how many workers ----------------------------------------------------------
def test_default_launcher_is_joblib_choosing_its_workers_and_basic_stays_available() -> None:
    from attnbench.config.compose import hydra_compose

    with hydra_compose() as compose:
        default = compose("config", overrides=[], return_hydra_config=True).hydra.launcher
        basic = compose("config", overrides=["hydra/launcher=basic"],
                        return_hydra_config=True).hydra.launcher
    assert (default["_target_"], default["n_jobs"]) == (JOBLIB, -1)
    assert basic["_target_"] == BASIC
    assert validate({**BASE, "trainer": {}}).trainer.threads == 1  # what the numbers depend on


@pytest.mark.parametrize(("cores", "threads", "n", "workers"), [
    (2, 1, 15, 2),  # this project's machine: two workers of one thread
    (16, 1, 15, 15),  # never more workers than jobs
    (16, 4, 15, 4),  # 4 threads each: 4 workers fill 16 cores
    (16, 3, 15, 5),
    (2, 4, 15, 1),  # a job wants more threads than there are cores: one at a time
    (16, 0, 15, 15),  # 0 = cores / parallel jobs: one worker per core (then one thread each)
    (8, 1, 1, 1),  # a one-job sweep runs in the launching process
])
def test_cpu_workers_fill_the_cores_with_the_jobs_threads(
    cores: int, threads: int, n: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_workers(jobs(n, threads=threads), cores=cores) == workers


@pytest.mark.parametrize(("device", "gpus", "workers"), [
    ("auto", 2, 2),  # one job per GPU (round-robin: with_job_device)
    ("cuda", 1, 1),
    ("cuda:0", 4, 4),  # several GPUs: still capped by cores / threads (16) and the jobs
    ("cpu", 4, 10),  # the user chose the CPU: the cores decide
])
def test_gpu_jobs_get_one_worker_per_gpu(
    device: str, gpus: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert local_workers(jobs(10, device=device), cores=16, gpus=gpus) == workers


def test_the_override_replaces_joblibs_default_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("attnbench.training.seeding.available_cores", lambda: 4)
    six = jobs(6)
    assert workers_override({"_target_": JOBLIB, "n_jobs": -1}, {}, six) == [
        "hydra.launcher.n_jobs=4"]
    assert workers_override({"_target_": JOBLIB, "n_jobs": -1}, {}, six[:3]) == [
        "hydra.launcher.n_jobs=3"]
    # an optimising sweeper's trials are not the pre-flight's jobs: the cores decide
    assert workers_override({"_target_": JOBLIB, "n_jobs": -1}, {"_target_": OPTUNA},
                            six[:1]) == ["hydra.launcher.n_jobs=4"]
    assert workers_override({"_target_": JOBLIB, "n_jobs": 3}, {}, six) == []  # the user's
    assert workers_override({"_target_": BASIC}, {}, six) == []
    assert workers_override({"_target_": JOBLIB, "n_jobs": -1}, {}, []) == []  # --cfg, --info


@pytest.mark.parametrize(("n_jobs", "sharing"), [(2, 2), (1, 1), (-1, 8), (-2, 7)])
def test_workers_sharing_the_machine_read_joblibs_count(
    n_jobs: int, sharing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a job sees: more than one -> no progress bar, `threads: 0` = cores / that many."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert jobs_sharing_this_machine({"_target_": JOBLIB, "n_jobs": n_jobs}) == sharing


# -- the same numbers, sequential or parallel ---------------------------------------------------
# at lr 10 with heavy momentum and no clipping the loss becomes NaN within 10 steps: failed jobs
FAILING_CELL = ["attention=dot", "trainer.lr=0.003,10", "trainer.optimizer=sgd",
                "trainer.momentum=0.99", "trainer.grad_clip=0", "trainer.max_steps=10"]


@pytest.fixture
def loky_workers() -> Iterator[None]:
    """A joblib sweep in this process leaves loky's workers waiting for more: stop them after."""
    yield
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


def cells(runs: list, parent: str) -> dict[tuple[str, ...], object]:
    return {(r.tags["attention"], r.params["trainer.lr"], r.tags["seed"]): r for r in runs
            if r.tags.get("mlflow.parentRunId") == parent}


def numbers(run: object) -> dict[str, float]:
    """What reproduce compares: every final metric but the machine's timings and memory."""
    return {k: v for k, v in run.metrics.items() if k not in TIMING_METRICS}  # type: ignore[attr-defined]


def sweeps(runs_dir: Path) -> list:
    runs = all_runs(runs_dir)
    return sorted((r for r in runs if r.tags.get("attnbench.kind") == "sweep"),
                  key=lambda r: r.start_time)


@pytest.mark.usefixtures("loky_workers")
def test_sequential_and_parallel_sweeps_give_every_cell_the_same_numbers(
    cli, runs_dir: Path
) -> None:
    """The cli fixture runs a sweep with `hydra/launcher=basic`; the second sweep runs the same
    cells on two joblib workers (other processes). A failing job fails alone in either."""
    sequential = cli("sweep", *FAILING_CELL)
    parallel = cli("sweep", *FAILING_CELL, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert sequential.exit_code == parallel.exit_code == 1, parallel.output  # a job failed
    assert "2 jobs, 1 failed" in sequential.output and "2 jobs, 1 failed" in parallel.output
    first, second = sweeps(runs_dir)
    runs = all_runs(runs_dir)
    one, two = cells(runs, first.run_id), cells(runs, second.run_id)
    assert sorted(one) == sorted(two) and len(one) == 2
    for cell, run in one.items():
        other = two[cell]
        assert run.status == other.status, cell
        assert numbers(run) == numbers(other), cell
        assert run.tags[THREADS_TAG] == other.tags[THREADS_TAG] == "1"
    assert {cell[1]: r.status for cell, r in one.items()} == {"0.003": "FINISHED", "10": "FAILED"}
    # basic: every job in this process; joblib: in its workers
    assert {r.tags[PID_TAG] for r in one.values()} == {str(os.getpid())}
    assert str(os.getpid()) not in {r.tags[PID_TAG] for r in two.values()}


@pytest.mark.slow  # two 5-job sweeps of the default trainer, a resume and a reproduce
def test_default_sweep_numbers_equal_the_basic_launchers_and_resume_skips_them(
    tmp_path: Path, empty_store: Path
) -> None:
    """The README's variants with the default trainer: `hydra/launcher=basic` vs the default
    (parallel) launcher, each in its own store; then `--resume` of the parallel sweep, in
    parallel, finds every cell done, and `reproduce` of one of its jobs matches."""
    import shutil

    grid = ["attention=none,dot,scaled,additive,multihead"]
    found = {}
    for name, extra in (("basic", ["hydra/launcher=basic"]), ("default", [])):
        runs_dir = tmp_path / name
        runs_dir.mkdir()
        shutil.copy(empty_store, runs_dir / "mlflow.db")
        proc = subprocess.run([*attnbench_cmd(), "sweep", *grid, *extra, f"runs_dir={runs_dir}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (parent,) = sweeps(runs_dir)
        found[name] = cells(all_runs(runs_dir), parent.run_id)
    assert sorted(found["basic"]) == sorted(found["default"]) and len(found["basic"]) == 5
    for cell, run in found["basic"].items():
        assert numbers(run) == numbers(found["default"][cell]), cell
        assert "test/acc" in numbers(run)
    pids = {r.tags["attnbench.pid"] for r in found["default"].values()}
    assert len(pids) >= min(2, _cores())  # the default ran its jobs in several workers

    resumed = subprocess.run([*attnbench_cmd(), "sweep", *grid, "--resume",
                              f"runs_dir={tmp_path / 'default'}"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipped 5 of 5 cells (already finished)" in resumed.stdout + resumed.stderr
    # a job of the parallel sweep reproduces in one process, metric for metric
    run = found["default"][("multihead", "0")]
    again = subprocess.run([*attnbench_cmd(), "reproduce", run.run_id, "--runs-dir",
                            str(tmp_path / "default")],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "MATCH" in again.stdout, again.stdout[-3000:]


def _cores() -> int:
    from attnbench.training.seeding import available_cores

    return available_cores()

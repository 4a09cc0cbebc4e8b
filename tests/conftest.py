"""Shared fixtures: every test writes its MLflow store and Hydra outputs under tmp_path."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SMOKE = ["trainer=smoke"]
IN_PROCESS = "hydra/launcher=basic"  # a sweep's jobs one after another, in the test's process
# Arguments that choose a sweep's launcher themselves (directly or through their own config)
OWN_LAUNCHER = ("hydra/launcher=", "-cn", "-cd", "-cp", "--config-name", "--config-dir",
                "--config-path")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): one worker per core, at most 4 — each imports torch and
    MLflow (~0.5 GB), and the CLI tests start subprocesses of their own."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


# The default run's longest tests (8-85 s each on 2 cores), longest first. They start before the
# rest, so no worker is left with one of them while the others have finished (pytest-xdist's
# worksteal hands out the collection order; a long test collected last ran alone at the end).
START_FIRST = (
    "tests/test_docs.py::test_page[README.md]",
    "tests/test_add_component.py",
    "tests/faults/test_interrupts.py::test_ctrl_c_marks_the_run_killed_keeps_metrics_and_last_",
    "tests/test_presets.py::test_preset_runs_its_grid",
    "tests/faults/test_interrupts.py::test_resume_reruns_the_cell_of_a_stale_run",
    "tests/bench/test_bench_command.py::test_bench_writes_table_plot_and_one_mlflow_run",
    "tests/run/test_continue.py::test_killed_run_continues_to_the_same_weights",
    "tests/run/test_provenance.py::test_sweep_resume_retrains_only_the_edited_variant",
    "tests/test_cli.py::test_sweep_makes_parent_and_named_children",
    "tests/run/test_reproduce.py::test_reproduce_round_trip_then_mismatch",
    "tests/run/test_sweep_resume.py::test_resume_on_run_skips_a_finished_config",
    "tests/launchers/test_optuna_sweeper.py::test_optuna_preset_two_trials_are_child_runs",
    "tests/faults/test_fault_injection.py::test_nan_and_exception_fail_their_jobs_and_the_sweep_",
)


def pytest_configure(config: pytest.Config) -> None:
    """Tables at the width attnbench uses off a terminal (160) in every test and its subprocesses,
    whatever COLUMNS the shell running pytest exports (CI's is 80); a test of the narrow layouts
    sets COLUMNS itself."""
    import os

    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        for i, prefix in enumerate(START_FIRST):
            if item.nodeid.startswith(prefix):
                return i
        return len(START_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly created and migrated MLflow SQLite store, made once per test session.

    Creating a store runs MLflow's migrations (several seconds); tests copy this file instead.
    Tests of store creation itself use `fresh_runs_dir`.
    """
    from attnbench.store.tracker import Tracker

    root = tmp_path_factory.mktemp("store")
    Tracker(None, root).connect()
    return root / "mlflow.db"


@pytest.fixture
def fresh_runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def runs_dir(fresh_runs_dir: Path, empty_store: Path) -> Path:
    fresh_runs_dir.mkdir(parents=True)
    shutil.copy(empty_store, fresh_runs_dir / "mlflow.db")
    return fresh_runs_dir


@pytest.fixture
def cli(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Invoke `attnbench ARGS...` in-process (Typer's CliRunner); run/sweep get the smoke trainer
    and the temporary runs_dir appended unless `smoke=False`, and a sweep gets Hydra's basic
    launcher (its jobs in this process, where a test's monkeypatches and test-only components
    are) unless it names a launcher or a config of its own; tests/run/test_parallel_sweep.py
    runs the default one."""
    from attnbench.cli import app

    monkeypatch.chdir(runs_dir.parent)
    runner = CliRunner()

    def invoke(*args: str, smoke: bool = True, extra: Sequence[str] = ()) -> object:
        argv = list(args)
        if smoke and argv and argv[0] in ("run", "sweep"):
            argv += [*SMOKE, f"runs_dir={runs_dir}"]
        argv += list(extra)
        if smoke and argv[:1] == ["sweep"] and not any(a.startswith(OWN_LAUNCHER) for a in argv):
            argv.append(IN_PROCESS)
        result = runner.invoke(app, argv, catch_exceptions=False)
        return result

    return invoke


def tracker_for(runs_dir: Path):  # noqa: ANN201 - attnbench.store.tracker.Tracker
    from attnbench.store.tracker import Tracker

    return Tracker(None, runs_dir)


def all_runs(runs_dir: Path) -> list:
    """Every run in the store under runs_dir (no store at all -> [])."""
    if not (runs_dir / "mlflow.db").exists():
        return []
    tracker = tracker_for(runs_dir)
    exps = tracker.client.search_experiments()
    return tracker.search([e.experiment_id for e in exps])


def write_reviews(path: Path, n: int = 200, seed: int = 0) -> Path:
    """A small `text,label` CSV a text task can learn: the label is the opinion word that
    occurs more often among filler words."""
    import random

    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(n):
        label = ("pos", "neg")[i % 2]
        word, other = ("good", "bad") if label == "pos" else ("bad", "good")
        words = [f"w{rng.randrange(30)}" for _ in range(rng.randint(6, 20))]
        words += [word] * 2 + [other] * rng.randint(0, 1)
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def attnbench_cmd() -> list[str]:
    return [sys.executable, "-m", "attnbench"]

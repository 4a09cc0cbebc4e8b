"""Four processes writing one FRESH SQLite store (no mlflow.db yet): 0 errors, 0 lost runs,
0 lost metric points, an intact file; and store creation killed at random instants.

MLflow's SQLite store creates and migrates its tables without a lock; attnbench creates the
store under a file lock (attnbench.store.tracker.Tracker.connect). These tests drive the stress
tool the README's figures come from (``python -m benchmarks.stress_store --repeats 10 --jobs 4``)
once per mode, as a command: it reads every store back and exits 1 on any error or loss.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def stress(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stress_store", "--root", str(tmp_path), *args],
        cwd=REPO, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow  # four processes importing MLflow at once
def test_four_tracker_processes_on_a_fresh_store(tmp_path: Path) -> None:
    """The store layer alone (no training): each process creates the store, gets-or-creates the
    same experiment and logs a run with 20 metric steps."""
    out = stress(tmp_path, "--repeats", "1", "--jobs", "4", "--mode", "tracker")
    assert (tmp_path / "repeat-1" / "runs" / "mlflow.db").stat().st_size > 0
    assert "0 with errors, 0 lost runs, 0 lost metric points, 0 damaged stores" in out


@pytest.mark.slow
def test_four_job_joblib_sweep_on_a_fresh_store(tmp_path: Path) -> None:
    """The issue's scenario: hydra/launcher=joblib hydra.launcher.n_jobs=4 on a fresh store."""
    out = stress(tmp_path, "--repeats", "1", "--jobs", "4", "--mode", "sweep")
    assert "0 lost runs, 0 lost metric points" in out


@pytest.mark.slow
def test_four_separate_runs_on_a_fresh_store(tmp_path: Path) -> None:
    """Four `attnbench run` processes started together, each creating the store."""
    out = stress(tmp_path, "--repeats", "1", "--jobs", "4", "--mode", "runs")
    assert "0 lost runs, 0 lost metric points" in out


@pytest.mark.slow  # three kills, each followed by a full smoke run on the same store
def test_a_kill_during_store_creation_leaves_a_usable_store(tmp_path: Path) -> None:
    """SIGKILL `attnbench run` at a random instant of its store creation (seeded), then run again
    on the same folder: the store works and the new run is FINISHED (`--kill N`)."""
    out = stress(tmp_path, "--kill", "3", "--window", "6", "--seed", "3")
    assert "3/3 stores usable, 0 runs lost" in out
    folders = sorted(tmp_path.glob("kill-*/runs"))
    assert len(folders) == 3
    for runs in folders:  # no temporary store left behind by the killed creator
        assert not list(runs.glob(".mlflow.db.*.tmp*"))

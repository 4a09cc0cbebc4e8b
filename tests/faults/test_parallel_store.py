"""Four processes writing one FRESH SQLite store (no mlflow.db yet): 0 errors, 0 lost runs,
0 lost metric points, an intact file. The stress benchmark's repeat, run once.

MLflow's SQLite store creates and migrates its tables without a lock; attnbench creates the
store under a file lock (attnbench.store.handle.Tracker.connect). The README's figures come from
``python -m attnbench.benchmarks.stress_store --repeats 10 --jobs 4``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attnbench.benchmarks.stress_store import run_repeat, summary


def _assert_clean(rep) -> None:  # noqa: ANN001 - stress_store.Repeat
    assert rep.clean, (summary([rep]), rep.errors)
    assert rep.exit_codes and set(rep.exit_codes) == {0}
    assert rep.runs_ok == rep.runs_expected and rep.points_found == rep.points_expected


@pytest.mark.slow  # four processes importing MLflow at once
def test_four_tracker_processes_on_a_fresh_store(tmp_path: Path) -> None:
    """The store layer alone (no training): each process creates the store, gets-or-creates the
    same experiment and logs a run with 20 metric steps."""
    rep = run_repeat(1, "tracker", 4, tmp_path)
    assert (tmp_path / "repeat-1" / "runs" / "mlflow.db").stat().st_size > 0
    _assert_clean(rep)


@pytest.mark.slow
def test_four_job_joblib_sweep_on_a_fresh_store(tmp_path: Path) -> None:
    """The issue's scenario: hydra/launcher=joblib hydra.launcher.n_jobs=4 on a fresh store."""
    _assert_clean(run_repeat(1, "sweep", 4, tmp_path))


@pytest.mark.slow
def test_four_separate_runs_on_a_fresh_store(tmp_path: Path) -> None:
    """Four `attnbench run` processes started together, each creating the store."""
    _assert_clean(run_repeat(1, "runs", 4, tmp_path))


@pytest.mark.slow  # three kills, each followed by a full smoke run on the same store
def test_a_kill_during_store_creation_leaves_a_usable_store(tmp_path: Path) -> None:
    """SIGKILL `attnbench run` at a random instant of its store creation (seeded), then run again
    on the same folder: the store works and the new run is FINISHED (`--kill N`)."""
    import random

    from attnbench.benchmarks.stress_kill import kill_repeat, kill_summary

    rng = random.Random(3)
    kills = [kill_repeat(i, tmp_path, window=6.0, rng=rng) for i in range(1, 4)]
    assert all(k.usable for k in kills), (kill_summary(kills), [k.note for k in kills])
    assert sum(k.lost for k in kills) == 0
    for k in kills:  # no temporary store left behind by the killed creator
        assert not list((tmp_path / f"kill-{k.index}" / "runs").glob(".mlflow.db.*.tmp*"))

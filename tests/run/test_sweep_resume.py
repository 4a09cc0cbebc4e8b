"""`attnbench sweep ... --resume`: an interrupted 6-job sweep re-run with --resume trains exactly
the jobs that did not finish, as the same sweep (its parent run goes on); another grid makes a
sweep of its own that counts the cells it reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnbench.run.app import objective
from attnbench.run.resume import skip_if_finished
from attnbench.store.names import CONFIG_HASH_TAG, RunIdentity
from attnbench.store.tracker import Tracker
from tests.conftest import all_runs

GRID = ("attention=none,dot,scaled", "seed=0,1")  # 6 jobs


def job_runs(runs_dir: Path) -> list:
    return [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") != "sweep"]


@pytest.mark.slow  # trains a 6-job sweep twice
def test_interrupted_sweep_resumes_only_the_missing_jobs(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attnbench.training.loop as loop

    real_fit = loop.fit
    calls = {"n": 0}

    def fit_then_ctrl_c(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 3:  # Ctrl-C while the 3rd job trains: 2 jobs finished
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop, "fit", fit_then_ctrl_c)
    result = cli("sweep", *GRID)
    assert result.exit_code != 0
    runs = job_runs(runs_dir)
    assert sorted(r.status for r in runs) == ["FINISHED", "FINISHED", "KILLED"]
    done_before = {r.run_id for r in runs if r.status == "FINISHED"}
    monkeypatch.setattr(loop, "fit", real_fit)

    result = cli("sweep", *GRID, "--resume")
    assert result.exit_code == 0, result.output
    assert "skipped 2 of 6 cells (already finished)" in result.output
    runs = job_runs(runs_dir)
    new = [r for r in runs if r.run_id not in done_before and r.status != "KILLED"]
    assert len(new) == 4  # exactly the killed job and the three that never started
    assert all(r.status == "FINISHED" for r in new)
    # the same sweep went on: one parent run, FINISHED now, with the whole grid as its children
    (parent,) = [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") == "sweep"]
    assert parent.status == "FINISHED" and "attnbench.error" not in parent.tags
    assert {r.tags["mlflow.parentRunId"] for r in runs} == {parent.run_id}
    reused = [r for r in runs if r.run_id in done_before]
    assert not any("attnbench.resumed_by" in r.tags for r in reused)  # its own children
    cells = {(r.tags["attention"], r.tags["seed"]) for r in [*new, *reused]}
    assert len(cells) == 6
    assert f"sweep {parent.run_id[:8]}: 6 jobs, 0 failed" in result.output  # each cell once

    # compare on the resumed sweep sees the whole grid: 3 groups of 2 seeds
    result = cli("compare", "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.output
    assert '"n": 2' in result.stdout and result.stdout.count('"n": 2') == 3


def test_resume_on_run_skips_a_finished_config(cli, runs_dir: Path) -> None:
    assert cli("run", "attention=scaled").exit_code == 0
    result = cli("run", "attention=scaled", "resume=true")
    assert result.exit_code == 0, result.output
    assert "skip scaled-transformer-assoc_recall-s0: already FINISHED" in result.output
    (run,) = job_runs(runs_dir)
    skipped = skip_if_finished(Tracker(None, runs_dir), run.experiment_id,
                               run.tags[CONFIG_HASH_TAG], RunIdentity.from_tags(run.tags), None)
    assert skipped is not None
    assert (skipped.status, skipped.run_id) == ("SKIPPED", run.run_id)
    assert skipped.primary == "best_val/acc"  # the best-validation checkpoint's, as stored
    assert objective(skipped) == skipped.metrics["best_val/acc"] == run.metrics["best_val/acc"]
    result = cli("run", "attention=scaled", "trainer.lr=0.001", "resume=true")  # another config
    assert result.exit_code == 0, result.output
    assert len(job_runs(runs_dir)) == 2


def test_resume_with_another_grid_is_a_new_sweep_counting_the_reused_cells(
    cli, runs_dir: Path
) -> None:
    assert cli("sweep", "attention=dot").exit_code == 0
    (first,) = [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") == "sweep"]
    result = cli("sweep", "attention=dot,scaled", "--resume")
    assert result.exit_code == 0, result.output
    parents = [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") == "sweep"]
    (second,) = [p for p in parents if p.run_id != first.run_id]
    dot = next(r for r in job_runs(runs_dir) if r.tags["attention"] == "dot")
    assert dot.tags["mlflow.parentRunId"] == first.run_id
    assert dot.tags["attnbench.resumed_by"] == second.run_id
    result = cli("compare", "--sweep", second.run_id[:8], "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.output
    assert result.stdout.count('"n": 1') == 2  # dot (reused) and scaled (trained)

    again = cli("sweep", "attention=dot,scaled", "--resume")  # that grid's sweep goes on now
    assert again.exit_code == 0, again.output
    assert len([r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") == "sweep"]) == 2
    assert f"sweep {second.run_id[:8]}: 2 jobs, 0 failed, skipped 2 of 2" in again.output

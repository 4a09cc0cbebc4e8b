"""Two `sweep --resume` at once on one grid: they never train a cell twice (each claims a cell
first), and each sweep's `compare` sees every cell, the ones the other sweep trained included
(a cell skipped because the other process trains it is tagged `resumed_by`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from attnbench.analysis.select import select_runs
from attnbench.run.resume import skip_if_done
from attnbench.store.names import RunIdentity
from tests.conftest import all_runs, attnbench_cmd, tracker_for


def _trained_elsewhere(runs_dir: Path) -> tuple:
    """Two sweeps, "ours" and "theirs", and a cell RUNNING in theirs with a fresh heartbeat:
    (tracker, experiment id, our sweep's id, theirs, the cell's identity, the running run's id)."""
    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("reverse")
    ours, theirs = (tracker.start_run(exp, f"sweep-{n}", {"attnbench.kind": "sweep"})
                    for n in ("ours", "theirs"))
    ident = RunIdentity("dot", "transformer", "reverse", 0)
    training = tracker.start_run(exp, ident.run_name, {
        **ident.tags(), "attnbench.config_hash": "c0ffee", "attnbench.pid": os.getpid(),
        "attnbench.host": socket.gethostname(), "attnbench.heartbeat": int(time.time()),
    }, theirs)
    return tracker, exp, ours, theirs, ident, training


def test_a_cell_being_trained_elsewhere_counts_in_both_sweeps(runs_dir: Path) -> None:
    tracker, exp, ours, theirs, ident, training = _trained_elsewhere(runs_dir)

    skipped = skip_if_done(tracker, exp, "c0ffee", ident, ours)
    assert skipped is not None and (skipped.status, skipped.run_id) == ("SKIPPED", training)
    assert tracker.get_run(training).tags["attnbench.resumed_by"] == ours
    tracker.log_metrics(training, {"test/acc": 0.5}, 1)
    tracker.end_run(training)  # the other sweep finishes the cell
    for sweep in (ours, theirs):
        assert [r.run_id for r in select_runs(tracker, sweep=sweep).runs] == [training]


def test_a_cell_that_finishes_between_the_two_looks_is_not_trained_again(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other process's run is RUNNING when the finished runs are searched and FINISHED when
    the running ones are (seen with two parallel resumed sweeps: the cell was trained twice)."""
    tracker, exp, ours, _, ident, training = _trained_elsewhere(runs_dir)
    tracker.log_metrics(training, {"test/acc": 0.5}, 1)

    def finishes_meanwhile(experiment_ids: object) -> list[str]:  # between the two searches
        tracker.end_run(training)
        return []

    monkeypatch.setattr(tracker, "mark_stale_runs", finishes_meanwhile)
    skipped = skip_if_done(tracker, exp, "c0ffee", ident, ours)
    assert skipped is not None and (skipped.status, skipped.run_id) == ("SKIPPED", training)
    assert skipped.metrics["test/acc"] == 0.5


@pytest.mark.slow  # two processes, each importing torch and MLflow, sharing four cells
def test_two_concurrent_resumed_sweeps_each_compare_every_cell(
    cli, runs_dir: Path, tmp_path: Path
) -> None:
    grid = ["attention=dot,scaled", "seed=0,1", "trainer=smoke", f"runs_dir={runs_dir}",
            "--resume"]
    procs = [subprocess.Popen([*attnbench_cmd(), "sweep", *grid], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    runs = all_runs(runs_dir)
    jobs = [r for r in runs if r.tags.get("attnbench.kind") != "sweep"]
    parents = [r for r in runs if r.tags.get("attnbench.kind") == "sweep"]
    assert sorted(r.status for r in jobs) == ["FINISHED"] * 4  # each cell trained once
    assert len(parents) == 2 and {p.status for p in parents} == {"FINISHED"}
    for parent in parents:
        result = cli("compare", "--sweep", parent.run_id, "--format", "json", "--no-plots",
                     "--runs-dir", str(runs_dir))
        assert result.exit_code == 0, result.output
        groups = json.loads(result.stdout)["groups"]
        assert sorted(g["n"] for g in groups) == [2, 2], parent.name  # not n=1

"""Ctrl-C and SIGKILL on real `attnbench` processes.

SIGINT: the running job is closed as KILLED with its metrics so far and checkpoints/last.pt, the
sweep's parent run is KILLED too, the process exits 130 without a traceback; a second Ctrl-C
during that cleanup exits at once. SIGKILL leaves a RUNNING run behind: the next sweep marks it
FAILED as stale, and `--resume` re-runs that cell.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from attnbench.store import scratch
from tests.conftest import all_runs, attnbench_cmd, tracker_for
from tests.faults.helpers import run_state, wait_for

# Long enough to interrupt: 16 steps per epoch, many epochs, one small eval batch.
LONG = ["trainer=smoke", "trainer.max_steps=0", "trainer.epochs=1000", "trainer.log_every=4",
        "task.n_train=256", "task.n_val=64", "task.n_test=64"]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*attnbench_cmd(), *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _training(runs_dir: Path, epochs: int):  # noqa: ANN202 - RunInfo | None
    """The RUNNING job once it has finished `epochs` epochs (None before)."""
    for run in run_state(runs_dir):
        if (run.status == "RUNNING" and run.tags.get("attnbench.kind") != "sweep"
                and run.metrics.get("epoch", 0) >= epochs):
            return run
    return None


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        tail = f"{out[-2000:]}\n{err[-2000:]}"
        raise AssertionError(f"did not exit within {timeout} s:\n{tail}") from None


def test_ctrl_c_marks_the_run_killed_keeps_metrics_and_last_checkpoint(
    runs_dir: Path, tmp_path: Path
) -> None:
    from attnbench.training.checkpoint import load_checkpoint

    # one job at a time: the second has not started when Ctrl-C comes (joblib: the test below)
    proc = _start(["sweep", "attention=scaled,dot", "hydra/launcher=basic", *LONG,
                   f"runs_dir={runs_dir}"], tmp_path)
    try:
        running = wait_for(lambda: _training(runs_dir, 2), 240, "the first job's 2nd epoch")
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = _finish(proc)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in out + err, err[-3000:]
    assert "interrupted (Ctrl-C)" in err
    runs = {r.run_id: r for r in all_runs(runs_dir)}
    run = runs[running.run_id]
    assert run.status == "KILLED"
    assert run.tags["attnbench.error"] == "interrupted (Ctrl-C)"
    assert run.metrics["train/loss"] > 0 and "val/acc" in run.metrics
    assert int(run.tags["attnbench.last_epoch"]) >= 2
    tracker = tracker_for(runs_dir)
    assert {a.path for a in tracker.client.list_artifacts(run.run_id, "checkpoints")} == {
        "checkpoints/last.pt"
    }
    state = load_checkpoint(tracker.download_artifact(run.run_id, "checkpoints/last.pt", tmp_path))
    # the resumable training state: weights, optimiser, schedule, RNG, progress
    assert {"model", "optimizer", "schedule", "rng", "progress"} <= set(state)
    assert state["model"] and all(hasattr(t, "shape") for t in state["model"].values())
    assert not (scratch.root() / run.tags["attnbench.scratch"]).exists()  # scratch cleaned up
    parent = runs[run.tags["mlflow.parentRunId"]]
    assert parent.status == "KILLED"
    assert [r.tags["attention"] for r in runs.values() if r.run_id != parent.run_id] == ["scaled"]
    assert not any(r.status == "RUNNING" for r in runs.values())


def test_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    """The guard `launch` runs under: the 2nd SIGINT, during a slow cleanup, exits with 130."""
    script = textwrap.dedent("""
        import os, signal, sys, time
        from attnbench.run.launch import sigint_guard
        with sigint_guard():
            try:
                print("ready", flush=True)
                time.sleep(60)
            except KeyboardInterrupt:
                print("cleaning up", flush=True)
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C again
                time.sleep(30)
                print("cleanup finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = _finish(proc, 20)
    assert proc.returncode == 130, err
    assert time.monotonic() - start < 10
    assert "cleaning up" in out and "cleanup finished" not in out
    assert "Traceback" not in err


@pytest.mark.slow
def test_sigkill_leaves_a_stale_run_the_next_sweep_marks_failed(
    cli, runs_dir: Path, tmp_path: Path
) -> None:
    proc = _start(["run", "attention=dot", *LONG, f"runs_dir={runs_dir}"], tmp_path)
    try:
        running = wait_for(lambda: _training(runs_dir, 2), 240, "the run to train 2 epochs")
    finally:
        proc.kill()  # SIGKILL: no handler runs, the run stays RUNNING
        proc.communicate()
    assert tracker_for(runs_dir).get_run(running.run_id).status == "RUNNING"
    assert running.tags["attnbench.pid"] == str(proc.pid)

    result = cli("sweep", "attention=scaled")
    assert result.exit_code == 0, result.output
    assert "marked 1 stale RUNNING run(s) FAILED" in result.output
    stale = tracker_for(runs_dir).get_run(running.run_id)
    assert stale.status == "FAILED"
    assert f"process {proc.pid}" in stale.tags["attnbench.error"]
    assert stale.metrics["train/loss"] > 0  # what it logged before the kill is kept
    # the weights of its last finished epoch, left on this host, are logged too
    artifacts = {a.path for a in tracker_for(runs_dir).client.list_artifacts(stale.run_id,
                                                                            "checkpoints")}
    assert artifacts == {"checkpoints/last.pt"}
    assert int(stale.tags["attnbench.last_epoch"]) >= 1
    assert not (scratch.root() / stale.tags["attnbench.scratch"]).exists()


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_a_joblib_sweep(runs_dir: Path, tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group: the launcher and its workers.
    Every job still running ends KILLED with its last checkpoint; the sweep ends KILLED."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*attnbench_cmd(), "sweep", "attention=scaled,dot", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2", *LONG, f"runs_dir={runs_dir}"],
        cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )

    def both_training() -> bool:
        return sum(r.status == "RUNNING" and r.metrics.get("epoch", 0) >= 2
                   for r in run_state(runs_dir)) >= 2

    try:
        wait_for(both_training, 600, "both jobs' 2nd epoch")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = _finish(proc, 120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    runs = all_runs(runs_dir)
    assert {r.status for r in runs} == {"KILLED"} and len(runs) == 3
    tracker = tracker_for(runs_dir)
    for run in runs:
        if run.tags.get("attnbench.kind") != "sweep":
            paths = {a.path for a in tracker.client.list_artifacts(run.run_id, "checkpoints")}
            assert paths == {"checkpoints/last.pt"}, run.name


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_resume_reruns_the_cell_of_a_stale_run(cli, runs_dir: Path) -> None:
    assert cli("sweep", "attention=dot,scaled").exit_code == 0
    tracker = tracker_for(runs_dir)
    first = {r.tags["attention"]: r for r in all_runs(runs_dir) if "attention" in r.tags}
    # make the `scaled` job look like one whose process was killed with SIGKILL mid-training
    killed = first["scaled"]
    tracker.client.update_run(killed.run_id, status="RUNNING")
    tracker.set_tags(killed.run_id, {"attnbench.pid": _dead_pid()})

    result = cli("sweep", "attention=dot,scaled", "--resume")
    assert result.exit_code == 0, result.output
    assert "marked 1 stale" in result.output
    assert tracker.get_run(killed.run_id).status == "FAILED"
    runs = [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") != "sweep"]
    by_attention = {a: [r for r in runs if r.tags["attention"] == a] for a in ("dot", "scaled")}
    assert len(by_attention["dot"]) == 1  # FINISHED: skipped by --resume
    assert sorted(r.status for r in by_attention["scaled"]) == ["FAILED", "FINISHED"]  # re-run
    rerun = next(r for r in by_attention["scaled"] if r.status == "FINISHED")
    assert rerun.tags["attnbench.config_hash"] == killed.tags["attnbench.config_hash"]


def test_live_and_foreign_runs_are_not_stale(runs_dir: Path) -> None:
    import socket

    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("stale-check")
    host = socket.gethostname()
    alive = tracker.start_run(exp, "alive", {"attnbench.pid": os.getpid(), "attnbench.host": host})
    elsewhere = tracker.start_run(exp, "elsewhere", {"attnbench.pid": _dead_pid(),
                                                     "attnbench.host": "another-host"})
    untagged = tracker.start_run(exp, "untagged", {})
    dead = tracker.start_run(exp, "dead", {"attnbench.pid": _dead_pid(), "attnbench.host": host})
    assert tracker.mark_stale_runs([exp]) == [dead]
    assert tracker.mark_stale_runs() == []  # idempotent
    for run_id in (alive, elsewhere, untagged):
        assert tracker.get_run(run_id).status == "RUNNING"


def test_a_recycled_pid_is_not_mistaken_for_the_run() -> None:
    """pid reuse: a live process that started after the run cannot be the run's process."""
    from attnbench.store.liveness import process_alive

    assert process_alive(os.getpid())
    assert process_alive(os.getpid(), since_ms=int(time.time() * 1000))
    if Path("/proc/self/stat").exists():
        assert not process_alive(os.getpid(), since_ms=0)  # the "run" began in 1970

"""Faults that `--resume` must turn into a usable state, on real processes and real stores.

- SIGKILL mid-training, or while the finished run uploads its artifacts: `--resume` continues
  the same run, which ends FINISHED with every metric and each step of its curve once.
- A truncated or foreign `checkpoints/last.pt`, or a run whose metrics stop short of its saved
  state: a one-line note, and the cell retrains from scratch (never a failed cell).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from attnbench.training.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import all_runs, tracker_for
from tests.run.test_continue import ARGS, CURVES, ctrl_c_at, history

# Runs `attnbench ARGV...` with one function replaced by a SIGKILL once its condition holds. What
# the run's metric sinks queued is written first: the process dies with its metrics stored.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from attnbench.store.tracker import Tracker
    from attnbench.store.sink import RunSink

    def die(tracker):
        for sink in list(tracker._sinks):
            sink.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[1] == "train-step":
        real_log = RunSink.log_metrics
        def log_metrics(self, metrics, step):
            if step >= 7 and "train/loss" in metrics:
                die(self.tracker)
            real_log(self, metrics, step)
        RunSink.log_metrics = log_metrics
    else:  # "upload": the finished run's best weights, its first artifact after training
        real_upload = Tracker.log_artifact
        def log_artifact(self, run_id, path, artifact_path=None):
            if Path(path).name == "best.pt":
                die(self)
            real_upload(self, run_id, path, artifact_path)
        Tracker.log_artifact = log_artifact
    from attnbench.cli import app
    app(sys.argv[2:], prog_name="attnbench")
""")


def killed(when: str, args: list[str], cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-c", KILLER, when, *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == -9, done.stdout[-2000:] + done.stderr[-2000:]


def job_runs(runs_dir: Path) -> list:
    return [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") != "sweep"]


def _steps(runs_dir: Path, run_id: str, key: str) -> list[int]:
    return [s for s, _ in history(runs_dir, run_id, key)]


@pytest.mark.slow  # a subprocess (imports torch and MLflow), then a resumed run
def test_sigkill_mid_training_then_resume_is_one_finished_run(cli, runs_dir: Path) -> None:
    killed("train-step", ["run", *ARGS, "trainer=smoke", f"runs_dir={runs_dir}"], runs_dir.parent)
    (dead,) = job_runs(runs_dir)
    assert dead.status == "RUNNING"  # SIGKILL: nothing closed it

    result = cli("run", *ARGS, "--resume")
    assert result.exit_code == 0, result.output
    assert f"continue {dead.name} (run {dead.run_id}) from step 6" in result.output
    (run,) = job_runs(runs_dir)
    assert (run.run_id, run.status) == (dead.run_id, "FINISHED")
    assert _steps(runs_dir, run.run_id, "train/loss") == list(range(1, 13))
    assert _steps(runs_dir, run.run_id, "val/acc") == [4, 8, 12]
    assert "test/acc" in run.metrics and "cost/train_s" in run.metrics


@pytest.mark.slow  # a subprocess sweep, then its resumed sweep and compare
def test_sigkill_during_artifact_upload_then_resume_has_every_metric(
    cli, runs_dir: Path
) -> None:
    grid = ["attention=dot", "seed=0,1"]
    # in this process (basic launcher), where KILLER replaced the upload
    killed("upload", ["sweep", *grid, "trainer=smoke", "hydra/launcher=basic",
                      f"runs_dir={runs_dir}"], runs_dir.parent)
    (dead,) = job_runs(runs_dir)
    assert dead.status == "RUNNING" and "test/acc" in dead.metrics  # killed after its metrics
    sweep_before = {r.run_id for r in all_runs(runs_dir)} - {dead.run_id}

    result = cli("sweep", *grid, "--resume")
    assert result.exit_code == 0, result.output
    runs = job_runs(runs_dir)
    assert sorted(r.status for r in runs) == ["FINISHED", "FINISHED"]
    run = next(r for r in runs if r.run_id == dead.run_id)  # continued, not re-made
    for key in (*CURVES, "test/acc", "test/loss", "cost/params", "cost/train_s", "attn/entropy"):
        assert key in run.metrics, key
        steps = _steps(runs_dir, run.run_id, key)
        assert len(steps) == len(set(steps)), key  # no step logged twice
    tracker = tracker_for(runs_dir)
    assert {a.path for a in tracker.client.list_artifacts(run.run_id, "model")} == {
        "model/weights.pt", "model/task.json", "model/test_split.pt"}
    parents = [r for r in all_runs(runs_dir) if r.tags.get("attnbench.kind") == "sweep"]
    assert [p.run_id for p in parents] == list(sweep_before)  # the same sweep went on
    assert parents[0].status == "FINISHED"

    result = cli("compare", "--metric", "val/acc", "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.output
    (group,) = json.loads(result.stdout)["groups"]
    assert group["n"] == 2


def _kill_with_ctrl_c(cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN202
    ctrl_c_at(monkeypatch, 7)
    assert cli("run", *ARGS).exit_code == 130
    (run,) = job_runs(runs_dir)
    assert run.status == "KILLED"
    return run


def _stored_last(runs_dir: Path, run_id: str) -> Path:
    (path,) = (runs_dir / "artifacts").rglob(f"{run_id}/artifacts/checkpoints/last.pt")
    return path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _foreign(path: Path) -> None:
    """Another model's state: one more layer, one weight of another width."""
    state = load_checkpoint(path)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(3, 5)
    state["model"]["extra.weight"] = torch.zeros(2)
    save_checkpoint(state, path)


@pytest.mark.parametrize("spoil", [_truncate, _foreign], ids=["truncated", "foreign"])
def test_an_unusable_last_pt_retrains_the_cell_from_scratch(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch, spoil
) -> None:
    run = _kill_with_ctrl_c(cli, runs_dir, monkeypatch)
    spoil(_stored_last(runs_dir, run.run_id))

    result = cli("run", *ARGS, "--resume")
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.output.splitlines() if ln.startswith("note: cannot continue")]
    assert len(notes) == 1 and run.run_id[:8] in notes[0], result.output
    assert "retraining the cell from scratch" in notes[0]
    runs = {r.run_id: r for r in job_runs(runs_dir)}
    assert runs.pop(run.run_id).status == "KILLED"  # the attempt is kept as it was
    (new,) = runs.values()
    assert new.status == "FINISHED"
    assert _steps(runs_dir, new.run_id, "train/loss") == list(range(1, 13))
    again = cli("run", *ARGS, "--resume")  # and from now on the cell is done
    assert again.exit_code == 0 and "already FINISHED" in again.output


def test_a_run_whose_metrics_stop_short_is_retrained(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its state says it validated at step 4, but no val/acc reached the store (a process killed
    before its metric queue was written): continuing it would leave a FINISHED run without
    them, so the cell trains again."""
    run = _kill_with_ctrl_c(cli, runs_dir, monkeypatch)
    with sqlite3.connect(runs_dir / "mlflow.db") as conn:
        for table in ("metrics", "latest_metrics"):
            conn.execute(f"DELETE FROM {table} WHERE run_uuid = ? AND key = 'val/acc'",  # noqa: S608
                         (run.run_id,))
    result = cli("run", *ARGS, "--resume")
    assert result.exit_code == 0, result.output
    assert "its metrics stop short of its training state: no val/acc" in result.output
    (new,) = [r for r in job_runs(runs_dir) if r.run_id != run.run_id]
    assert new.status == "FINISHED" and _steps(runs_dir, new.run_id, "val/acc") == [4, 8, 12]

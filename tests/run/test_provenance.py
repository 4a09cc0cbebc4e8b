"""Provenance: the code hash follows the files a run uses, so editing one variant retrains only
that variant's cells under `sweep --resume`; runs carry git, versions and a dataset input."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from attnbench.config.validate import validate
from attnbench.run import provenance
from attnbench.run.resume import skip_if_done
from attnbench.store.names import CONFIG_HASH_TAG, HEARTBEAT_TAG, RunIdentity
from attnbench.store.tracker import Tracker
from tests.conftest import all_runs

BASE = {"seed": 0, "runs_dir": "runs", "backbone": {"name": "transformer"},
        "task": {"name": "copy"}, "trainer": {}, "tracking": {"uri": None}}


def _hash(attention: str) -> str:
    return provenance.code_hash(validate({**BASE, "attention": {"name": attention}}))


def _edit(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Pretend one line of attention/<name>.py was edited."""
    real = provenance._read

    def read(path: Path) -> bytes:
        data = real(path)
        edited = path.parent.name == "attention" and path.stem == name
        return data + b"\n# edited\n" if edited else data

    monkeypatch.setattr(provenance, "_read", read)


def test_editing_a_variant_changes_its_hash_and_its_dependents_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = {a: _hash(a) for a in ("dot", "scaled", "additive")}
    _edit(monkeypatch, "dot")
    after = {a: _hash(a) for a in ("dot", "scaled", "additive")}
    assert after["dot"] != before["dot"]
    assert after["scaled"] != before["scaled"]  # scaled.py builds on dot.py
    assert after["additive"] == before["additive"]


def test_sweep_resume_retrains_only_the_edited_variant(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = ("attention=none,additive",)
    assert cli("sweep", *grid).exit_code == 0
    first = {r.run_id for r in all_runs(runs_dir) if r.tags.get("attention")}
    _edit(monkeypatch, "additive")
    result = cli("sweep", *grid, "--resume")
    assert result.exit_code == 0, result.output
    assert "skip none-transformer-assoc_recall-s0: already FINISHED" in result.output
    new = [r for r in all_runs(runs_dir) if r.tags.get("attention") and r.run_id not in first]
    assert [r.tags["attention"] for r in new] == ["additive"]


def test_runs_carry_provenance_and_a_dataset_input(cli, runs_dir: Path) -> None:
    assert cli("run", "attention=dot").exit_code == 0
    (run,) = all_runs(runs_dir)
    for tag in ("attnbench.code_hash", "torch.version", "python.version", "platform",
                "mlflow.user", "mlflow.source.name"):
        assert run.tags.get(tag), tag
    if provenance.git_state():
        assert run.tags["mlflow.source.git.commit"] == provenance.git_state()["commit"]
    # params say what defines the experiment, not where results go
    assert not {"runs_dir", "experiment_name", "resume", "trainer.progress"} & set(run.params)
    assert not any(k.startswith("tracking.") for k in run.params)
    inputs = Tracker(None, runs_dir).client.get_run(run.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [
        ("assoc_recall", run.tags["attnbench.data_fingerprint"][:36])]
    # the run's MLflow duration covers the job, not just the time after the run was created
    assert run.end_time - run.start_time >= 1000 * run.metrics["cost/train_s"]


def test_a_cell_being_trained_elsewhere_is_skipped(runs_dir: Path) -> None:
    tracker = Tracker(None, runs_dir)
    exp = tracker.experiment_id("cells")
    beat = str(int(time.time()))
    other = tracker.start_run(exp, "x", {CONFIG_HASH_TAG: "abc", HEARTBEAT_TAG: beat})
    ident = RunIdentity("dot", "transformer", "copy", 0)
    skipped = skip_if_done(tracker, exp, "abc", ident, None)
    assert skipped is not None and skipped.status == "SKIPPED" and skipped.run_id == other
    assert skip_if_done(tracker, exp, "other-hash", ident, None) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_provenance_runs_no_user_or_system_config(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A real .gitconfig whose core.fsmonitor is a command (in HOME, XDG_CONFIG_HOME, named by
    GIT_CONFIG_GLOBAL or passed as GIT_CONFIG_PARAMETERS/GIT_CONFIG_COUNT): plain git runs it on
    `git status`; provenance's git does not, and still reads the commit."""
    if not provenance.git_state.__wrapped__():
        pytest.skip("attnbench does not run from a git checkout here")
    marker = tmp_path / "FSMONITOR_RAN"
    command = f"touch {marker}; false"
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    for config in (home / ".gitconfig", home / ".config" / "git" / "config"):
        config.write_text(f'[core]\n\tfsmonitor = "{command}"\n')
    poisoned = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
                "GIT_CONFIG_PARAMETERS": f"'core.fsmonitor'='{command}'",
                "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.fsmonitor",
                "GIT_CONFIG_VALUE_0": command}
    for key, value in poisoned.items():
        monkeypatch.setenv(key, value)
    subprocess.run(["git", "-C", str(provenance.PACKAGE), "status", "--porcelain"],
                   capture_output=True, check=False)
    assert marker.exists(), "the poisoned config runs no command: the test would be moot"
    marker.unlink()
    state = provenance.git_state.__wrapped__()
    assert len(state["commit"]) == 40 and state["dirty"] in ("true", "false")
    assert not marker.exists()
    env = provenance.git_environment()
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert not any(key.startswith("GIT_CONFIG_") and key not in ("GIT_CONFIG_NOSYSTEM",
                                                                 "GIT_CONFIG_GLOBAL")
                   for key in env)
    assert env["HOME"] == os.devnull != str(home)

"""Provenance: the code hash follows the files a run uses, so editing one variant retrains only
that variant's cells under `sweep --resume`; runs carry git, versions and a dataset input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attnbench.config.validate import validate
from attnbench.run import provenance
from attnbench.run.resume import skip_if_done
from attnbench.store.handle import Tracker
from attnbench.store.schema import CONFIG_HASH_TAG, HEARTBEAT_TAG, RunIdentity
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

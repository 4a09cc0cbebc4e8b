"""A path read from a store is never trusted: a planted RUNNING run cannot make `compare` (or a
sweep) upload a file attnbench did not write."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from attnbench.store import scratch
from attnbench.store.names import HEARTBEAT_TAG, HOST_TAG, PID_TAG, SCRATCH_TAG
from attnbench.store.tracker import Tracker


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(None, tmp_path / "runs")


def _dead_run(tracker: Tracker, tags: dict[str, str]) -> str:
    exp = tracker.experiment_id("planted")
    return tracker.start_run(exp, "planted", {HOST_TAG: socket.gethostname(),
                                              PID_TAG: "999999999", **tags})


def _artifacts(tracker: Tracker, run_id: str) -> list[str]:
    return [a.path for a in tracker.client.list_artifacts(run_id, "checkpoints")]


def test_attnbench_written_last_checkpoint_is_kept(tracker: Tracker) -> None:
    token, folder = scratch.new()
    (folder / scratch.LAST).write_bytes(b"weights")
    run_id = _dead_run(tracker, {SCRATCH_TAG: token})
    assert tracker.mark_stale_runs() == [run_id]
    assert _artifacts(tracker, run_id) == ["checkpoints/last.pt"]
    assert not folder.exists()


def test_symlink_to_a_secret_is_not_uploaded(tracker: Tracker, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the victim's secret")
    token, folder = scratch.new()
    (folder / scratch.LAST).symlink_to(secret)  # in a folder attnbench made
    run_id = _dead_run(tracker, {SCRATCH_TAG: token})
    assert tracker.mark_stale_runs() == [run_id]
    assert tracker.get_run(run_id).status == "FAILED"
    assert _artifacts(tracker, run_id) == []
    scratch.remove(token)


@pytest.mark.parametrize("token", ["../../etc", "/tmp/attnbench-x/last.pt", "", "0" * 31])
def test_a_token_that_is_not_a_token_names_nothing(tracker: Tracker, token: str) -> None:
    assert scratch.trusted_last(token) is None
    run_id = _dead_run(tracker, {SCRATCH_TAG: token})
    tracker.mark_stale_runs()
    assert _artifacts(tracker, run_id) == []


def test_a_folder_attnbench_did_not_make_is_not_trusted() -> None:
    token = uuid.uuid4().hex
    folder = scratch.root() / token  # made by someone else, with a last.pt but no marker
    folder.mkdir()
    (folder / scratch.LAST).write_bytes(b"weights")
    assert scratch.trusted_last(token) is None
    (folder / scratch.MARKER).write_text("another token")
    assert scratch.trusted_last(token) is None
    scratch.remove(token)
    assert scratch.trusted_last(uuid.uuid4().hex) is None  # no such folder


def test_scratch_root_is_private() -> None:
    root = scratch.root()
    assert root.stat().st_uid == os.getuid()
    assert root.stat().st_mode & 0o077 == 0


def test_a_run_whose_heartbeat_stopped_is_stale_on_any_host(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERMed SLURM job on another node: its pid means nothing here, its heartbeat does."""
    exp = tracker.experiment_id("cluster")
    old = tracker.start_run(exp, "other-node", {HOST_TAG: "node17", PID_TAG: "1234",
                                                HEARTBEAT_TAG: "1000"})
    fresh = tracker.start_run(exp, "other-node-alive", {HOST_TAG: "node18", PID_TAG: "1234"})
    tracker.set_tags(fresh, {HEARTBEAT_TAG: str(int(__import__("time").time()))})
    assert tracker.mark_stale_runs() == [old]
    run = tracker.get_run(old)
    assert run.status == "FAILED" and "no heartbeat" in run.tags["attnbench.error"]
    assert tracker.get_run(fresh).status == "RUNNING"

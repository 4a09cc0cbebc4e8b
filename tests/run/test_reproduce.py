"""`attnbench reproduce RUN_ID`: the round trip on the smoke trainer, a mismatch, bad ids."""

from __future__ import annotations

from pathlib import Path

from attnbench.run.reproduce import diff_metrics
from tests.conftest import all_runs, tracker_for


def one_line_error(result) -> str:  # noqa: ANN001 - click Result
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_reproduce_round_trip_then_mismatch(cli, runs_dir: Path) -> None:
    assert cli("run", "attention=dot").exit_code == 0
    (original,) = all_runs(runs_dir)
    # diagnostics ride along with every attention run
    assert 0.0 <= original.metrics["attn/alignment"] <= 1.0
    assert original.metrics["attn/entropy"] >= 0.0
    tracker = tracker_for(runs_dir)
    assert {a.path for a in tracker.client.list_artifacts(original.run_id, "plots")} == {
        "plots/attention.png"
    }

    result = cli("reproduce", original.run_id, "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    assert "MATCH" in result.output and "test/acc" in result.output
    copies = [r for r in all_runs(runs_dir) if r.tags.get("reproduces") == original.run_id]
    assert len(copies) == 1
    copy = copies[0]
    assert copy.tags["attnbench.kind"] == "reproduce"  # not a seed: compare leaves it out
    assert copy.experiment_id == original.experiment_id and copy.status == "FINISHED"
    assert copy.tags["attnbench.config_hash"] == original.tags["attnbench.config_hash"]
    for name, value in original.metrics.items():
        if not name.startswith("cost/") or name == "cost/params":
            assert copy.metrics[name] == value, name

    # tamper with the original's final test/acc: the reproduction no longer matches
    tracker.log_metrics(original.run_id, {"test/acc": original.metrics["test/acc"] + 0.5}, 10**6)
    result = cli("reproduce", original.run_id, "--runs-dir", str(runs_dir))
    assert result.exit_code == 1, result.output
    assert "MISMATCH" in result.output and "test/acc" in result.output


def test_tolerance_and_what_is_compared() -> None:
    diffs = {
        d.name: d
        for d in diff_metrics(
            {"test/acc": 0.5, "cost/train_s": 1.0, "cost/params": 10.0},
            {"test/acc": 0.5001, "cost/train_s": 9.0, "cost/params": 10.0, "attn/entropy": 1.0},
        )
    }
    assert not diffs["test/acc"].matches(0.0) and diffs["test/acc"].matches(1e-3)
    assert not diffs["cost/train_s"].compared  # a timing
    assert diffs["cost/params"].compared and diffs["cost/params"].matches(0.0)
    assert not diffs["attn/entropy"].compared  # only in the new run


def test_unknown_run_id_is_one_line_exit_2(cli, runs_dir: Path) -> None:
    line = one_line_error(cli("reproduce", "deadbeef" * 4, "--runs-dir", str(runs_dir)))
    assert "deadbeef" in line
    assert all_runs(runs_dir) == []


def test_reproducing_a_sweep_parent_is_refused(cli, runs_dir: Path) -> None:
    tracker = tracker_for(runs_dir)
    parent = tracker.start_run(tracker.experiment_id("x"), "sweep-x", {"attnbench.kind": "sweep"})
    tracker.end_run(parent)
    assert "sweep" in one_line_error(cli("reproduce", parent, "--runs-dir", str(runs_dir)))

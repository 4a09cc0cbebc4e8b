"""Faults inside a job: a NaN loss or an exception fails that job only; the sweep goes on,
lists the failed jobs with their reason, and exits non-zero."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import all_runs


def _sweep_runs(runs_dir: Path) -> tuple[object, dict[str, object]]:
    runs = all_runs(runs_dir)
    parent = next(r for r in runs if r.tags.get("attnbench.kind") == "sweep")
    children = {r.tags["backbone"]: r for r in runs
                if r.tags.get("mlflow.parentRunId") == parent.run_id}
    return parent, children


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_nan_and_exception_fail_their_jobs_and_the_sweep_goes_on(cli, runs_dir: Path,
                                                                fault_backbones) -> None:
    result = cli("sweep", "backbone.name=fault_raise,fault_nan,transformer")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    parent, children = _sweep_runs(runs_dir)
    assert parent.status == "FAILED"
    raised, nan, good = children["fault_raise"], children["fault_nan"], children["transformer"]
    assert raised.status == "FAILED"
    assert raised.tags["attnbench.error"] == (
        "RuntimeError: injected fault: the accelerator fell over"
    )
    assert nan.status == "FAILED"
    assert "loss became nan at step 3" in nan.tags["attnbench.error"]
    assert nan.metrics["train/loss"] > 0  # the finite steps before the NaN are kept
    # the jobs after the failures still ran to the end
    assert good.status == "FINISHED" and "test/acc" in good.metrics
    # the end-of-sweep table lists each job once, the failed ones with their reason
    table = _one_line(result.output)
    assert "3 jobs, 2 failed" in table
    assert "FAILED: RuntimeError: injected fault" in table
    assert "FAILED: loss became nan" in table


def test_nan_in_a_single_run_is_one_line_exit_1(cli, runs_dir: Path, fault_backbones) -> None:
    result = cli("run", "backbone.name=fault_nan")
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "loss became nan" in lines[0], result.output
    (run,) = all_runs(runs_dir)
    assert run.status == "FAILED" and "loss became nan" in run.tags["attnbench.error"]


def test_unexpected_error_in_a_run_is_one_line_exit_1(cli, runs_dir: Path,
                                                      fault_backbones) -> None:
    result = cli("run", "backbone.name=fault_raise")
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "RuntimeError: injected fault" in lines[0], result.output
    (run,) = all_runs(runs_dir)
    assert run.status == "FAILED"


def test_debug_shows_the_traceback_and_keeps_the_exit_code(cli, runs_dir: Path,
                                                         fault_backbones) -> None:
    result = cli("run", "backbone.name=fault_raise", "--debug")
    assert result.exit_code == 1
    assert "Traceback" in result.output and "injected fault" in result.output

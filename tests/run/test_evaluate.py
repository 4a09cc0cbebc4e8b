"""`attnbench evaluate RUN_ID`: the run's reusable model scores its own test split exactly as the
run did (CPU), needs neither the training data nor pickle, and logs a child run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import all_runs, tracker_for


def test_evaluate_reproduces_the_runs_test_score(cli, runs_dir: Path) -> None:
    assert cli("run", "attention=dot").exit_code == 0
    (run,) = all_runs(runs_dir)
    listed = tracker_for(runs_dir).client.list_artifacts(run.run_id, "model")
    artifacts = {a.path for a in listed}
    assert artifacts == {"model/weights.pt", "model/task.json", "model/test_split.pt"}
    result = cli("evaluate", run.run_id, "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    child = next(r for r in all_runs(runs_dir) if r.run_id != run.run_id)
    assert child.tags["mlflow.parentRunId"] == run.run_id
    assert child.tags["attnbench.evaluates"] == run.run_id
    for name in ("test/acc", "test/f1"):
        assert child.metrics[name] == run.metrics[name], name


@pytest.mark.parametrize(("arg", "says"), [
    ("foo=1", "evaluate takes task settings only"),
    ("task.test_path=x.tsv", "Unknown key 'task.test_path'"),  # a synthetic task has no files
])
def test_evaluate_bad_arguments_are_one_line(cli, runs_dir: Path, arg: str, says: str) -> None:
    assert cli("run", "attention=none").exit_code == 0
    (run,) = all_runs(runs_dir)
    result = cli("evaluate", run.run_id, arg, "--runs-dir", str(runs_dir))
    assert result.exit_code == 2
    assert says in result.output and "Traceback" not in result.output

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
    assert child.tags["attnbench.kind"] == "evaluate"  # not a seed: compare leaves it out
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


def review_file(path: Path, rows: int, start: int, text_column: str = "text") -> str:
    lines = [f"{text_column}\tlabel"]
    for i in range(start, start + rows):
        label = ("neg", "pos")[i % 2]
        lines.append(f"a {label} review number {i}, {'great' if i % 2 else 'dull'} film\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_evaluate_another_file_with_the_runs_vocabulary(
    cli, runs_dir: Path, tmp_path: Path
) -> None:
    """task.test_path=FILE: the run's own test file gives the run's test score exactly; a file
    whose text column has another name is read with task.test_text_column."""
    train = review_file(tmp_path / "train.tsv", 40, 0)
    test = review_file(tmp_path / "test.tsv", 12, 40)
    other = review_file(tmp_path / "other.tsv", 9, 100, text_column="content")
    result = cli("run", "backbone=rnn", "task=text", f"task.path={train}",
                 f"task.test_path={test}")
    assert result.exit_code == 0, result.output
    (run,) = all_runs(runs_dir)
    Path(train).unlink()  # evaluate needs neither the training file nor pickle
    result = cli("evaluate", run.run_id, f"task.test_path={test}", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    (child,) = [r for r in all_runs(runs_dir) if r.run_id != run.run_id]
    assert child.tags["attnbench.evaluates"] == run.run_id
    for name in ("test/acc", "test/f1"):
        assert child.metrics[name] == run.metrics[name], name
    result = cli("evaluate", run.run_id, f"task.test_path={other}",
                 "task.test_text_column=content", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    (second,) = [r for r in all_runs(runs_dir) if r.run_id not in (run.run_id, child.run_id)]
    assert second.tags["mlflow.parentRunId"] == run.run_id
    assert second.tags["attnbench.test_source"] == other
    assert second.params["task.test_text_column"] == "content"
    assert 0.0 <= second.metrics["test/acc"] <= 1.0

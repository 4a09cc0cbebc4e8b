"""What a text run logs besides its metrics: the split overlap (metrics + a warning the user
sees), the tokenizer, a dataset input for the file, and a classifier's per-class report and
confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import all_runs, tracker_for


def test_text_run_logs_overlap_report_and_confusion_matrix(cli, runs_dir: Path,
                                                            tmp_path: Path) -> None:
    rows = ["sentence\tlabel"] + [f"{w} movie\t{int(w == 'good')}"
                                  for w in ("good", "bad") * 60]  # every val/test text is in train
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(rows) + "\n")
    result = cli("run", "backbone=rnn", "task=text", f"task.path={path}")
    assert result.exit_code == 0, result.output
    assert "warning: possible leak" in result.output
    (run,) = all_runs(runs_dir)
    assert run.metrics["overlap/val_frac"] == 1.0 and run.metrics["overlap/test_exact"] > 0
    assert run.tags["attnbench.tokenizer"]
    tracker = tracker_for(runs_dir)
    inputs = tracker.client.get_run(run.run_id).inputs.dataset_inputs
    assert json.loads(inputs[0].dataset.source)["uri"] == str(path)
    listed = {a.path for a in tracker.client.list_artifacts(run.run_id, "report")}
    assert listed == {"report/classification_report.json", "report/confusion_matrix.json",
                      "report/confusion_matrix.png"}
    matrix = json.loads(tracker.download_artifact(run.run_id, "report/confusion_matrix.json",
                                                  tmp_path).read_text())
    assert matrix["labels"] == ["0", "1"]
    correct = sum(matrix["counts"][i][i] for i in range(2))
    assert correct / sum(map(sum, matrix["counts"])) == run.metrics["test/acc"]
    report = json.loads(tracker.download_artifact(
        run.run_id, "report/classification_report.json", tmp_path).read_text())
    assert abs(report["accuracy"] - run.metrics["test/acc"]) < 1e-9

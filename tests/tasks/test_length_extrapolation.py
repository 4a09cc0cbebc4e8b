"""Length extrapolation (issue 24): the test split drawn longer than train and val, the spec
covering the longer length, and a backbone that cannot embed it refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnbench.tasks import TASKS
from attnbench.tasks.base import EOS, IGNORE, PAD
from tests.conftest import all_runs, tracker_for
from tests.tasks.test_listops import evaluate as evaluate_listops

SMALL = dict(n_train=40, n_val=10, n_test=10)


def lengths(split) -> list[int]:  # noqa: ANN001 - a Split
    return (split.inputs != PAD).sum(dim=1).tolist()


@pytest.mark.parametrize("name", ["copy", "reverse", "sort"])
def test_sequence_tasks_test_longer_than_they_train(name: str) -> None:
    data = TASKS.get(name)(length=10, test_length=20, vocab=5, **SMALL).load(0)
    assert data.spec.max_len == 20 and data.spec.max_target_len == 21
    assert data.train.inputs.shape == (40, 10) and data.val.inputs.shape == (10, 10)
    assert data.test.inputs.shape == (10, 20) and data.test.targets.shape == (10, 21)
    assert set(lengths(data.train)) == set(lengths(data.val)) == {10}
    assert set(lengths(data.test)) == {20}
    for x, y in zip(data.test.inputs.tolist(), data.test.targets.tolist(), strict=True):
        out = {"copy": x, "reverse": x[::-1], "sort": sorted(x)}[name]
        assert y == out + [EOS]
    # train and val are those of the run without a test length: only the test split moves
    plain = TASKS.get(name)(length=10, vocab=5, **SMALL).load(0)
    for split in ("train", "val"):
        assert torch.equal(getattr(plain, split).inputs, getattr(data, split).inputs)
    same = TASKS.get(name)(length=10, test_length=10, vocab=5, **SMALL).load(0)
    assert same.fingerprint == plain.fingerprint


def test_min_len_draws_test_lengths_up_to_test_length() -> None:
    task = TASKS.get("reverse")(length=8, min_len=2, test_length=16, n_train=200, n_val=10,
                                n_test=300)
    data = task.load(0)
    assert max(lengths(data.train)) == 8 and min(lengths(data.train)) == 2
    assert max(lengths(data.test)) == 16 and min(lengths(data.test)) == 2
    with pytest.raises(ValueError, match=r"'task.test_length' = 1 .*must be >= min_len = 2"):
        TASKS.get("reverse")(length=8, min_len=2, test_length=1)


def test_assoc_recall_tests_on_more_pairs() -> None:
    task = TASKS.get("assoc_recall")(num_pairs=8, num_queries=4, num_keys=40, num_values=6,
                                     test_num_pairs=24, **SMALL)
    data = task.load(0)
    assert data.spec.max_len == 24 + 4
    assert data.train.inputs.shape == (40, 12, 2) and data.test.inputs.shape == (10, 28, 2)
    for x, y, align in zip(data.test.inputs, data.test.targets, data.test.align, strict=True):
        keys = x[:24, 0].tolist()
        assert len(set(keys)) == 24, "24 distinct keys per test example"
        for q in range(24, 28):  # each query's label is the value stored with its key
            pair = keys.index(int(x[q, 0]))
            assert int(align[q]) == pair
            assert int(x[pair, 1]) - task._value0 == int(y[q])
        assert bool((y[:24] == IGNORE).all())
    for bad, needle in ((3, "[num_queries = 4, num_keys = 40]"), (41, "num_keys = 40")):
        with pytest.raises(ValueError, match="'task.test_num_pairs'") as err:
            TASKS.get("assoc_recall")(num_pairs=8, num_queries=4, num_keys=40,
                                      test_num_pairs=bad)
        assert needle in str(err.value)


def test_listops_tests_on_longer_expressions() -> None:
    task = TASKS.get("listops")(max_depth=6, max_args=5, max_len=40, min_len=10,
                                test_min_len=41, test_max_len=80, **SMALL)
    data = task.load(0)
    assert data.spec.max_len == 80
    assert data.train.inputs.shape == (40, 40) and data.test.inputs.shape == (10, 80)
    assert min(lengths(data.train)) >= 10 and max(lengths(data.train)) <= 40
    assert min(lengths(data.test)) >= 41 and max(lengths(data.test)) <= 80
    itos = data.extra["input_itos"]
    for x, y in zip(data.test.inputs.tolist(), data.test.targets.tolist(), strict=True):
        assert evaluate_listops([itos[i] for i in x if i != PAD])[0] == y
    plain = TASKS.get("listops")(max_depth=6, max_args=5, max_len=40, min_len=10, **SMALL)
    assert torch.equal(plain.load(0).train.inputs, data.train.inputs)
    with pytest.raises(ValueError, match=r"'task.test_min_len' = 90 .*test_max_len = 80"):
        TASKS.get("listops")(test_min_len=90, test_max_len=80)


def test_run_trains_at_10_and_tests_at_20(cli, runs_dir: Path, tmp_path: Path) -> None:
    """The issue's figure: the run's own test split (saved with its model) is 20 long."""
    result = cli("run", "backbone=seq2seq", "task=reverse", "task.length=10",
                 "task.test_length=20")
    assert result.exit_code == 0, result.output
    (run,) = all_runs(runs_dir)
    assert run.params["task.test_length"] == "20" and run.params["task.length"] == "10"
    saved = tracker_for(runs_dir).download_artifact(run.run_id, "model/test_split.pt", tmp_path)
    test = torch.load(saved, weights_only=True)
    assert test["inputs"].shape == (1000, 20)
    assert set((test["inputs"] != PAD).sum(dim=1).tolist()) == {20}
    assert "test/exact_match" in run.metrics and "val/exact_match" in run.metrics


def test_learned_positions_refuse_a_longer_test_in_one_line(cli, runs_dir: Path) -> None:
    result = cli("run", "backbone=transformer", "task=reverse", "task.length=10",
                 "task.test_length=20", "backbone.max_len=16")
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: 'task.test_length' = 20: sequences of 21 tokens")
    assert "'backbone.max_len' = 16" in lines[0]
    assert all_runs(runs_dir) == []

from __future__ import annotations

import pytest
import torch

from attnbench.tasks import TASKS
from attnbench.tasks.base import FIRST_TOKEN, IGNORE

AssocRecall = TASKS.get("assoc_recall")
SMALL = dict(n_train=64, n_val=8, n_test=8)


def test_paired_layout_by_hand() -> None:
    task = AssocRecall(num_pairs=5, num_queries=3, num_keys=12, num_values=7, **SMALL)
    data = task.load(3)
    value0, empty = FIRST_TOKEN + 12, FIRST_TOKEN + 12 + 7
    assert data.spec.vocab_size == empty + 1 and data.spec.channels == 2
    assert data.spec.max_len == 8 and data.spec.num_classes == 7
    x, y, align = data.train.inputs, data.train.targets, data.train.align
    assert x.shape == (64, 8, 2)
    for row in range(10):
        pairs = {int(x[row, i, 0]): int(x[row, i, 1]) for i in range(5)}
        assert len(pairs) == 5, "keys are distinct"
        assert all(FIRST_TOKEN <= k < value0 for k in pairs)
        assert all(value0 <= v < empty for v in pairs.values())
        assert y[row, :5].tolist() == [IGNORE] * 5 and align[row, :5].tolist() == [-1] * 5
        queried = []
        for q in range(5, 8):
            key, slot = int(x[row, q, 0]), int(x[row, q, 1])
            assert slot == empty
            assert int(y[row, q]) == pairs[key] - value0  # the value paired with the key
            src = int(align[row, q])
            assert int(x[row, src, 0]) == key and int(x[row, src, 1]) == pairs[key]
            queried.append(key)
        assert len(set(queried)) == 3, "queries ask for distinct keys"


def test_interleaved_layout_by_hand() -> None:
    task = AssocRecall(
        num_pairs=4, num_queries=4, num_keys=6, num_values=3, layout="interleaved", **SMALL
    )
    data = task.load(0)
    value0 = FIRST_TOKEN + 6
    assert data.spec.vocab_size == value0 + 3 and data.spec.channels == 1
    x, y, align = data.train.inputs, data.train.targets, data.train.align
    assert x.shape == (64, 12) and y.shape == (64, 12)
    for row in range(10):
        seq = x[row].tolist()
        pairs = dict(zip(seq[0:8:2], seq[1:8:2], strict=True))
        assert len(pairs) == 4
        assert y[row, :8].tolist() == [IGNORE] * 8
        for q in range(8, 12):
            key = seq[q]
            assert int(y[row, q]) == pairs[key] - value0
            src = int(align[row, q])
            assert src % 2 == 1 and seq[src - 1] == key and seq[src] == pairs[key]


def test_values_cover_the_classes() -> None:
    data = AssocRecall(**SMALL).load(0)
    labels = data.train.targets[data.train.targets != IGNORE]
    assert set(labels.tolist()) == set(range(32))


def test_splits_are_independent_streams() -> None:
    a = AssocRecall(n_train=64, n_val=8, n_test=8).load(0)
    b = AssocRecall(n_train=128, n_val=8, n_test=8).load(0)
    assert torch.equal(a.val.inputs, b.val.inputs) and torch.equal(a.test.inputs, b.test.inputs)
    assert not torch.equal(a.train.inputs, a.val.inputs[:1].expand(64, -1, -1))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(num_pairs=0), "'task.num_pairs' = 0"),
        (dict(num_queries=0), "'task.num_queries' = 0"),
        (dict(num_pairs=4, num_queries=5), "[1, num_pairs = 4]"),
        (dict(num_pairs=10, num_keys=8), "'task.num_keys' = 8"),
        (dict(num_values=1), "'task.num_values' = 1"),
        (dict(n_train=-5), "'task.n_train' = -5"),
        (dict(layout="mixed"), "'paired', 'interleaved'"),
    ],
)
def test_bad_arguments(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        AssocRecall(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)

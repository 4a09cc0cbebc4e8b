"""ListOps labels agree with an independent evaluator of the token strings."""

from __future__ import annotations

import statistics

import pytest

from attnbench.tasks import TASKS
from attnbench.tasks.base import PAD

ListOps = TASKS.get("listops")


def evaluate(tokens: list[str]) -> tuple[int, int, int]:
    """(value, depth, largest argument count) of a prefix expression, via an explicit stack."""
    stack: list[tuple[str, list[int], int]] = []  # (operator, argument values, depth so far)
    result = None
    depth = max_args = 0
    for tok in tokens:
        if tok.startswith("["):
            stack.append((tok[1:], [], 0))
            depth = max(depth, len(stack))
            continue
        if tok == "]":
            op, args, _ = stack.pop()
            max_args = max(max_args, len(args))
            value = {
                "MAX": max,
                "MIN": min,
                "MED": lambda a: int(statistics.median(a)),
                "SM": lambda a: sum(a) % 10,
            }[op](args)
        else:
            value = int(tok)
        if stack:
            stack[-1][1].append(value)
        else:
            result = value
    assert not stack and result is not None
    return result, depth + 1, max_args  # + 1: digits are the leaves below the deepest operator


def test_labels_match_independent_evaluator() -> None:
    task = ListOps(max_depth=5, max_args=4, max_len=60, min_len=8, n_train=400, n_val=50, n_test=50)
    data = task.load(0)
    itos = data.extra["input_itos"]
    assert data.spec.vocab_size == len(itos) == 4 + 10 + 4 + 1
    seen = set()
    for split in (data.train, data.val, data.test):
        for x, y in zip(split.inputs.tolist(), split.targets.tolist(), strict=True):
            ids = [i for i in x if i != PAD]
            assert x[len(ids) :] == [PAD] * (60 - len(ids))
            tokens = [itos[i] for i in ids]
            assert tokens[0].startswith("["), "the root is an operator"
            value, depth, max_args = evaluate(tokens)
            assert y == value
            assert 8 <= len(tokens) <= 60 and depth <= 5 and 2 <= max_args <= 4
            seen.add(tuple(ids))
    assert len(seen) == 500, "examples are distinct across splits"
    assert len(set(data.train.targets.tolist())) == 10


def test_median_rounds_down_like_lra() -> None:
    assert evaluate(["[MED", "1", "2", "]"])[0] == 1
    from attnbench.tasks.listops import apply_op

    assert apply_op(2, [1, 2]) == 1 and apply_op(2, [3, 9, 4]) == 4
    assert apply_op(3, [9, 8, 7]) == 4 and apply_op(0, [1, 5]) == 5 and apply_op(1, [3, 2]) == 2


def test_too_few_distinct_expressions_is_a_clear_error() -> None:
    # Only "[OP d d ]" fits in 4 tokens: 4 * 10 * 10 = 400 distinct expressions.
    task = ListOps(max_len=4, min_len=4, n_train=450, n_val=1, n_test=1)
    with pytest.raises(ValueError, match="only 400 of 452 distinct"):
        task.load(0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(max_depth=1), "'task.max_depth' = 1"),
        (dict(max_args=1), "'task.max_args' = 1"),
        (dict(max_len=3), "'task.max_len' = 3"),
        (dict(max_len=50, min_len=60), "[1, max_len = 50]"),
        (dict(n_test=0), "'task.n_test' = 0"),
    ],
)
def test_bad_arguments(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        ListOps(**kwargs)
    assert needle in str(err.value)

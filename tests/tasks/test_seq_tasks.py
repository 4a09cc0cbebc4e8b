"""copy / reverse / sort: targets are the transformed inputs + EOS + PAD, align points back."""

from __future__ import annotations

import pytest
import torch

from attnbench.tasks import TASKS
from attnbench.tasks._synthetic import transform_split
from attnbench.tasks.base import EOS, FIRST_TOKEN, PAD

SMALL = dict(n_train=50, n_val=5, n_test=5)


def expected(tokens: list[int], name: str) -> tuple[list[int], list[int]]:
    """(output tokens, source positions) computed the slow, obvious way."""
    positions = list(range(len(tokens)))
    if name == "reverse":
        positions = positions[::-1]
    elif name == "sort":
        positions = sorted(positions, key=lambda i: tokens[i])  # Python's sort is stable
    return [tokens[i] for i in positions], positions


@pytest.mark.parametrize("name", ["copy", "reverse", "sort"])
@pytest.mark.parametrize("min_len", [None, 1])
def test_targets_and_align(name: str, min_len: int | None) -> None:
    data = TASKS.get(name)(length=9, min_len=min_len, vocab=4, **SMALL).load(0)
    assert data.spec.vocab_size == data.spec.target_vocab_size == FIRST_TOKEN + 4
    assert data.spec.max_len == 9 and data.spec.max_target_len == 10
    lengths = set()
    for x, y, align in zip(data.train.inputs, data.train.targets, data.train.align, strict=True):
        tokens = [t for t in x.tolist() if t != PAD]
        n = len(tokens)
        lengths.add(n)
        assert x.tolist() == tokens + [PAD] * (9 - n), "PAD only on the right"
        out, src = expected(tokens, name)
        assert y.tolist() == out + [EOS] + [PAD] * (9 - n)
        assert align.tolist() == src + [-1] * (10 - n)
    if min_len is None:
        assert lengths == {9}
    else:
        assert len(lengths) > 3 and min(lengths) >= 1


def test_hand_example() -> None:
    symbols = torch.tensor([[2, 0, 2, 1]])
    lengths = torch.tensor([3])
    a, b, c = FIRST_TOKEN + 2, FIRST_TOKEN, FIRST_TOKEN + 2
    rev = transform_split(symbols, lengths, "reverse")
    assert rev.inputs.tolist() == [[a, b, c, PAD]]
    assert rev.targets.tolist() == [[c, b, a, EOS, PAD]]
    assert rev.align.tolist() == [[2, 1, 0, -1, -1]]
    srt = transform_split(symbols, lengths, "sort")
    assert srt.targets.tolist() == [[b, a, c, EOS, PAD]]
    assert srt.align.tolist() == [[1, 0, 2, -1, -1]]  # stable: the first 2 comes first


def test_itos_and_fingerprint() -> None:
    task = TASKS.get("reverse")(vocab=3, **SMALL)
    data = task.load(5)
    assert data.target_itos == ["<pad>", "<bos>", "<eos>", "<unk>", "0", "1", "2"]
    assert data.primary_metric == "exact_match"
    assert data.fingerprint != TASKS.get("copy")(vocab=3, **SMALL).load(5).fingerprint


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(length=0), "'task.length' = 0"),
        (dict(length=5, min_len=6), "[1, length = 5]"),
        (dict(min_len=0), "'task.min_len' = 0"),
        (dict(vocab=0), "'task.vocab' = 0"),
        (dict(n_val=0), "'task.n_val' = 0"),
    ],
)
def test_bad_arguments(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match="out of range") as err:
        TASKS.get("reverse")(**kwargs)
    assert needle in str(err.value)

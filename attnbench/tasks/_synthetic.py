"""Shared generator of the sequence transduction tasks copy, reverse and sort.

Notation: N examples, T input length (= ``length``), U = T + 1 target length, L a row's length.

Inputs ``(N, T)``: L random symbols then PAD, L uniform in ``[min_len, length]`` (fixed L = length
when ``min_len`` is None). Length extrapolation: with ``test_length`` set, the test split is drawn
with ``test_length`` in place of ``length`` (fixed L = test_length when ``min_len`` is None, else
uniform in ``[min_len, test_length]``) and is ``test_length`` wide, while train and val keep
``length``: the model is selected on validation at the training length and tested on longer (or
shorter) inputs. The spec's lengths are the larger of the two.

Targets ``(N, U)``: the transformed L symbols, EOS, then PAD. Input and target share ids: symbol s
is ``FIRST_TOKEN + s``. ``align`` ``(N, U)``: the input position each output symbol comes from
(copy: j, reverse: L-1-j, sort: its position in a stable sort), -1 at EOS and PAD.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from attnbench.tasks._common import (
    SPECIAL_ITOS,
    SPLITS,
    check_between,
    check_min,
    fingerprint,
    generator,
    out_of_range,
)
from attnbench.tasks.base import (
    EOS,
    FIRST_TOKEN,
    INT64,
    PAD,
    DataSize,
    Kind,
    Split,
    Task,
    TaskData,
    TaskSpec,
)

Transform = Literal["copy", "reverse", "sort"]


def transform_split(symbols: torch.Tensor, lengths: torch.Tensor, transform: Transform) -> Split:
    """symbols (N, T) in [0, V), lengths (N,) in [1, T] -> inputs, targets with EOS, align."""
    n, t = symbols.shape
    valid = torch.arange(t) < lengths[:, None]  # (N, T)
    inputs = torch.where(valid, symbols + FIRST_TOKEN, PAD)  # (N, T)
    j = torch.arange(t + 1).expand(n, t + 1)  # (N, U)
    if transform == "copy":
        src = j
    elif transform == "reverse":
        src = lengths[:, None] - 1 - j
    elif transform == "sort":
        key = torch.where(valid, symbols, 2**62)  # padding sorts last
        order = key.argsort(dim=1, stable=True)  # (N, T)
        src = torch.cat([order, order.new_zeros(n, 1)], dim=1)  # (N, U)
    else:
        raise ValueError(f"unknown transform {transform!r}")
    out_valid = j < lengths[:, None]  # (N, U)
    align = torch.where(out_valid, src, -1)
    targets = inputs.gather(1, align.clamp(0, t - 1))  # (N, U)
    targets = torch.where(out_valid, targets, PAD)
    targets = torch.where(j == lengths[:, None], EOS, targets)
    return Split(inputs, targets, align)


class SequenceTask(Task):
    """Base of copy/reverse/sort: the subclass sets ``transform`` and registers itself."""

    name: ClassVar[str]
    transform: ClassVar[Transform]
    kind: ClassVar[Kind] = "transduce"
    metrics: ClassVar[tuple[str, ...]] = ("token_acc", "exact_match")
    length_key: ClassVar[str] = "length"

    def __init__(
        self,
        *,
        length: int = 20,
        min_len: int | None = None,
        vocab: int = 10,
        n_train: int = 10000,
        n_val: int = 1000,
        n_test: int = 1000,
        test_length: int | None = None,
    ) -> None:
        check_min("length", length, 1)
        if min_len is not None:
            check_between("min_len", min_len, 1, length, f"must be in [1, length = {length}]")
        if test_length is not None:
            rule = f"must be >= min_len = {min_len}" if min_len else "must be >= 1"
            if test_length < (min_len or 1):
                raise out_of_range("test_length", test_length, rule)
        check_min("vocab", vocab, 1)
        for key, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_min(key, n, 1)
        self.length = length
        self.min_len = length if min_len is None else min_len
        self.fixed = min_len is None  # every example is its split's length
        self.vocab = vocab
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.lengths = {"train": length, "val": length, "test": test_length or length}

    def spec(self) -> TaskSpec:
        longest = max(self.lengths.values())
        return TaskSpec(
            kind="transduce",
            vocab_size=FIRST_TOKEN + self.vocab,
            max_len=longest,
            target_vocab_size=FIRST_TOKEN + self.vocab,
            max_target_len=longest + 1,
        )

    def planned_size(self) -> DataSize:
        """Drawing a split holds its symbols, positions and masks: ~4 (N, U) int64 tensors."""
        spec = self.spec()
        transient = 4 * max(self.sizes.values()) * spec.max_target_len * INT64
        return DataSize(spec, dict(self.sizes), transient)

    def itos(self) -> list[str]:
        return [*SPECIAL_ITOS, *(str(s) for s in range(self.vocab))]

    def _split(self, split: str, seed: int) -> Split:
        n, length, g = self.sizes[split], self.lengths[split], generator(seed, self.name, split)
        shortest = length if self.fixed else self.min_len
        lengths = torch.randint(shortest, length + 1, (n,), generator=g)  # (N,)
        symbols = torch.randint(self.vocab, (n, length), generator=g)  # (N, T)
        return transform_split(symbols, lengths, self.transform)

    def load(self, seed: int) -> TaskData:
        splits = {s: self._split(s, seed) for s in SPLITS}
        itos = self.itos()
        return TaskData(
            spec=self.spec(),
            **splits,
            primary_metric="exact_match",
            metrics=self.metrics,
            target_itos=itos,
            fingerprint=fingerprint(
                t for s in splits.values() for t in (s.inputs, s.targets, s.align)
            ),
            extra={"input_itos": itos},
        )

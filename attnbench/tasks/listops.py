"""ListOps (Nangia & Bowman 2018), as generated for the Long Range Arena (Tay et al. 2021):
evaluate a nested prefix expression over digits, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` -> 9.

Notation: N examples, T = ``max_len`` (inputs padded with PAD), K = 10 classes.

Grammar and sampling follow LRA's ``lra_benchmarks/data/listops.py``: a node at depth d <
``max_depth`` is an operator with probability 0.25 (else a digit 0-9); a node at ``max_depth`` is
a digit; an operator takes ``randint(2, max_args)`` arguments and is one of MAX, MIN, MED (median
of the arguments, rounded down), SM (sum modulo 10). Tokens are as in LRA: the operators with
their opening bracket (``[MAX``, ``[MIN``, ``[MED``, ``[SM``), ``]`` and the ten digits. Unlike
LRA the root is always an operator (a bare digit is not a list operation). Expressions are kept
when ``min_len <= length <= max_len`` tokens, and are distinct across train, val and test.

Length extrapolation: with ``test_max_len`` (and optionally ``test_min_len``) set, the test
expressions are drawn from their own stream and kept when ``test_min_len <= length <=
test_max_len`` (each defaults to the training bound), still distinct from every training and
validation expression; e.g. ``max_len=64 test_min_len=65 test_max_len=128`` tests only on longer
expressions than any seen in training. Train and val are padded to ``max_len``, test to
``test_max_len``; the spec's T is the larger. Unset, all three splits come from one stream as
before.

Inputs ``(N, T)``; targets ``(N,)`` = the value in [0, 10).
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np
import torch

from attnbench.tasks import TASKS
from attnbench.tasks._common import (
    SPECIAL_ITOS,
    SPLITS,
    check_between,
    check_min,
    fingerprint,
    pad_rows,
    split_seed,
)
from attnbench.tasks.base import FIRST_TOKEN, INT64, DataSize, Kind, Split, Task, TaskData, TaskSpec

OPERATORS: tuple[str, ...] = ("[MAX", "[MIN", "[MED", "[SM")
CLOSE = "]"
# Token ids: digits 0-9 first, then the operators, then the closing bracket.
DIGIT0 = FIRST_TOKEN
OP0 = FIRST_TOKEN + 10
CLOSE_ID = OP0 + len(OPERATORS)
VOCAB_SIZE = CLOSE_ID + 1
ITOS: tuple[str, ...] = (*SPECIAL_ITOS, *(str(d) for d in range(10)), *OPERATORS, CLOSE)
VALUE_P = 0.25  # probability that a node above max_depth is an operator (LRA's VALUE_P)


def apply_op(op: int, args: list[int]) -> int:
    """Value of operator ``op`` (index into OPERATORS) on digit arguments."""
    if op == 0:
        return max(args)
    if op == 1:
        return min(args)
    if op == 2:  # LRA: int(np.median(args)); the mean of the middle two rounds down
        s = sorted(args)
        m = len(s) // 2
        return s[m] if len(s) % 2 else (s[m - 1] + s[m]) // 2
    return sum(args) % 10


class _TooLong(Exception):
    pass


class _Sampler:
    """Draws expressions token by token, abandoning one as soon as it exceeds ``max_len``."""

    def __init__(self, rng: np.random.Generator, max_depth: int, max_args: int, max_len: int):
        self.max_depth, self.max_args, self.max_len = max_depth, max_args, max_len
        # Uniforms in [0, 1), drawn from numpy in blocks: one numpy call per number is slow.
        blocks = iter(lambda: rng.random(1 << 16).tolist(), None)
        self._u = itertools.chain.from_iterable(blocks).__next__

    def _node(self, depth: int, out: list[int]) -> int:
        u = self._u
        if depth > 1 and (depth >= self.max_depth or u() > VALUE_P):
            digit = int(u() * 10)
            out.append(DIGIT0 + digit)
            return digit
        op = int(u() * len(OPERATORS))
        out.append(OP0 + op)
        n_args = 2 + int(u() * (self.max_args - 1))  # randint(2, max_args)
        args = []
        for _ in range(n_args):
            if len(out) >= self.max_len:  # this argument and the "]" cannot fit any more
                raise _TooLong
            args.append(self._node(depth + 1, out))
        out.append(CLOSE_ID)
        return apply_op(op, args)

    def sample(self) -> tuple[list[int], int] | None:
        out: list[int] = []
        try:
            value = self._node(1, out)
        except _TooLong:
            return None
        return (out, value) if len(out) <= self.max_len else None


@TASKS.register("listops")
class ListOps(Task):
    kind: ClassVar[Kind] = "classify"
    metrics: ClassVar[tuple[str, ...]] = ("acc", "f1")
    length_key: ClassVar[str] = "max_len"

    def __init__(
        self,
        *,
        max_depth: int = 6,
        max_args: int = 6,
        max_len: int = 128,
        min_len: int | None = 32,
        n_train: int = 10000,
        n_val: int = 1000,
        n_test: int = 1000,
        test_min_len: int | None = None,
        test_max_len: int | None = None,
    ) -> None:
        check_min("max_depth", max_depth, 2)
        check_min("max_args", max_args, 2)
        check_min("max_len", max_len, 4)  # the shortest expression: [OP d d ]
        if min_len is not None:
            check_between("min_len", min_len, 1, max_len, f"must be in [1, max_len = {max_len}]")
        for key, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_min(key, n, 1)
        self.max_depth, self.max_args, self.max_len = max_depth, max_args, max_len
        self.min_len = 0 if min_len is None else min_len
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        # the test split's (min, max) expression length: the training bounds unless set
        self.extrapolate = test_min_len is not None or test_max_len is not None
        test_max = max_len if test_max_len is None else test_max_len
        check_min("test_max_len", test_max, 4)
        if test_min_len is not None:
            check_between("test_min_len", test_min_len, 1, test_max,
                          f"must be in [1, test_max_len = {test_max}]")
        self.test_bounds = (self.min_len if test_min_len is None else test_min_len, test_max)

    def spec(self) -> TaskSpec:
        return TaskSpec(
            kind="classify",
            vocab_size=VOCAB_SIZE,
            max_len=max(self.max_len, self.test_bounds[1]),
            num_classes=10,
        )

    def planned_size(self) -> DataSize:
        """Drawing holds every expression as token lists before padding: ~4 (N, T) int64."""
        spec = self.spec()
        transient = 4 * sum(self.sizes.values()) * spec.max_len * INT64
        return DataSize(spec, dict(self.sizes), transient)

    def sample(
        self,
        seed: int,
        n: int,
        stream: str = "all",
        bounds: tuple[int, int] | None = None,
        seen: set[tuple[int, ...]] | None = None,
    ) -> list[tuple[list[int], int]]:
        """``n`` distinct (token ids, value) pairs in generation order, from the random stream
        ``stream`` of ``seed``, with ``bounds`` = (min, max) tokens (default the training
        bounds), none of them in ``seen`` (which they are added to)."""
        low, high = bounds or (self.min_len, self.max_len)
        sampler = _Sampler(
            np.random.default_rng(split_seed(seed, "listops", stream)),
            self.max_depth,
            self.max_args,
            high,
        )
        seen = set() if seen is None else seen
        out: list[tuple[list[int], int]] = []
        attempts, budget = 0, 200 * n + 10_000
        while len(out) < n:
            attempts += 1
            if attempts > budget:
                raise ValueError(
                    f"listops: only {len(out)} of {n} distinct expressions with "
                    f"{low} <= length <= {high} tokens after {budget} draws; "
                    "lower task.min_len, raise task.max_len / max_depth / max_args, "
                    "or ask for fewer examples"
                )
            drawn = sampler.sample()
            if drawn is None or len(drawn[0]) < low:
                continue
            key = tuple(drawn[0])
            if key not in seen:
                seen.add(key)
                out.append(drawn)
        return out

    def _examples(self, seed: int) -> dict[str, list[tuple[list[int], int]]]:
        """Each split's (token ids, value) pairs: one stream for all three splits, or with a test
        length of its own, train and val from it and test from its own stream."""
        order = list(SPLITS) if not self.extrapolate else ["train", "val"]
        seen: set[tuple[int, ...]] = set()
        drawn = self.sample(seed, sum(self.sizes[s] for s in order), seen=seen)
        out: dict[str, list[tuple[list[int], int]]] = {}
        for s in order:
            out[s], drawn = drawn[: self.sizes[s]], drawn[self.sizes[s] :]
        if self.extrapolate:
            out["test"] = self.sample(seed, self.sizes["test"], "test", self.test_bounds, seen)
        return out

    def load(self, seed: int) -> TaskData:
        widths = {"train": self.max_len, "val": self.max_len, "test": self.test_bounds[1]}
        splits: dict[str, Split] = {}
        for s, examples in self._examples(seed).items():
            splits[s] = Split(
                pad_rows([tokens for tokens, _ in examples], widths[s]),  # (N, T)
                torch.tensor([v for _, v in examples], dtype=torch.long),  # (N,)
            )
        if self.extrapolate:
            parts = [t for s in SPLITS for t in (splits[s].inputs, splits[s].targets)]
        else:  # the fingerprint of the data as one block, as before test lengths existed
            parts = [torch.cat([splits[s].inputs for s in SPLITS]),
                     torch.cat([splits[s].targets for s in SPLITS])]
        return TaskData(
            spec=self.spec(),
            **splits,
            primary_metric="acc",
            metrics=self.metrics,
            fingerprint=fingerprint(parts),
            extra={"input_itos": list(ITOS), "labels": [str(d) for d in range(10)]},
        )

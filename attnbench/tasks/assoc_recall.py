"""Multi-query associative recall (MQAR; Arora et al. 2023, "Zoology"): after a list of
key-value pairs, recall the value bound to each queried key.

Notation: N examples, P pairs, Q queries, T positions, C channels.

- ``layout="paired"``: inputs ``(N, T, 2)``, T = P + Q. Position i < P holds (key_i, value_i);
  each query position holds (key, EMPTY). ``align`` points a query at its pair's position.
- ``layout="interleaved"``: inputs ``(N, T)``, T = 2P + Q: ``k1 v1 k2 v2 ... kP vP q1 ... qQ``.
  ``align`` points a query at the position of the value token it must recall.

Targets ``(N, T)``: the value index in ``[0, num_values)`` at query positions, IGNORE elsewhere.
Keys of one example are distinct; values are drawn with replacement; the queries ask for Q
distinct keys of the example, in random order. Token ids: keys ``FIRST_TOKEN + [0, num_keys)``,
values right after them, then EMPTY (paired layout only).

Length extrapolation: with ``test_num_pairs`` set, the test split holds that many pairs per
example (same Q queries; Zoology's longer test sequences) while train and val keep ``num_pairs``;
the spec's T is the larger.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor

from attnbench.tasks import TASKS
from attnbench.tasks._common import (
    SPECIAL_ITOS,
    SPLITS,
    check_min,
    fingerprint,
    generator,
    out_of_range,
)
from attnbench.tasks.base import (
    FIRST_TOKEN,
    IGNORE,
    INT64,
    DataSize,
    Kind,
    SequenceFormat,
    Split,
    Task,
    TaskData,
    TaskSpec,
)


@TASKS.register("assoc_recall")
class AssocRecall(Task):
    kind: ClassVar[Kind] = "classify"
    metrics: ClassVar[tuple[str, ...]] = ("acc", "f1")
    length_key: ClassVar[str] = "num_pairs"
    # Each answer depends on its query and the pairs before it: Zoology's MQAR reading for a
    # causal LM (keys-values then queries, the loss on the answers at the query positions).
    lm_format: ClassVar[SequenceFormat | None] = "per_position"

    def __init__(
        self,
        *,
        num_pairs: int = 16,
        num_queries: int = 8,
        num_keys: int = 64,
        num_values: int = 32,
        layout: Literal["paired", "interleaved"] = "paired",
        n_train: int = 1600,
        n_val: int = 500,
        n_test: int = 1000,
        test_num_pairs: int | None = None,
    ) -> None:
        check_min("num_pairs", num_pairs, 1)
        if not 1 <= num_queries <= num_pairs:
            raise out_of_range(
                "num_queries", num_queries, f"must be in [1, num_pairs = {num_pairs}]"
            )
        if num_keys < num_pairs:
            raise out_of_range(
                "num_keys", num_keys, f"must be >= num_pairs = {num_pairs} (keys are distinct)"
            )
        if test_num_pairs is not None and not num_queries <= test_num_pairs <= num_keys:
            raise out_of_range(
                "test_num_pairs",
                test_num_pairs,
                f"must be in [num_queries = {num_queries}, num_keys = {num_keys}] (keys are "
                "distinct and each query asks for a different one)",
            )
        check_min("num_values", num_values, 2)
        if layout not in ("paired", "interleaved"):
            raise out_of_range("layout", layout, "must be one of 'paired', 'interleaved'")
        for key, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_min(key, n, 1)
        self.num_pairs, self.num_queries = num_pairs, num_queries
        self.num_keys, self.num_values = num_keys, num_values
        self.layout = layout
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.pairs = {"train": num_pairs, "val": num_pairs, "test": test_num_pairs or num_pairs}

    @property
    def _value0(self) -> int:
        return FIRST_TOKEN + self.num_keys

    @property
    def _empty(self) -> int:
        return FIRST_TOKEN + self.num_keys + self.num_values

    def spec(self) -> TaskSpec:
        paired = self.layout == "paired"
        p, q = max(self.pairs.values()), self.num_queries
        return TaskSpec(
            kind="classify",
            vocab_size=self._empty + (1 if paired else 0),
            max_len=p + q if paired else 2 * p + q,
            num_classes=self.num_values,
            target_per_position=True,
            channels=2 if paired else 1,
            lm_format=self.lm_format,
        )

    def planned_size(self) -> DataSize:
        """Drawing a split holds an (N, num_keys) float64 key per example and its argsort."""
        transient = max(self.sizes.values()) * self.num_keys * (8 + INT64)
        return DataSize(self.spec(), dict(self.sizes), transient)

    def _split(self, n: int, p: int, g: torch.Generator) -> Split:
        """``n`` examples of ``p`` pairs each."""
        q = self.num_queries
        # P distinct keys per row: the first P of a random permutation of the K keys.
        noise = torch.rand(n, self.num_keys, generator=g, dtype=torch.float64)
        keys = noise.argsort(dim=1, stable=True)[:, :p]  # (N, P)
        values = torch.randint(self.num_values, (n, p), generator=g)  # (N, P)
        noise = torch.rand(n, p, generator=g, dtype=torch.float64)
        which = noise.argsort(dim=1, stable=True)[:, :q]  # (N, Q) queried pair index
        query_keys = keys.gather(1, which)  # (N, Q)
        labels = values.gather(1, which)  # (N, Q)

        key_tok, value_tok = FIRST_TOKEN + keys, self._value0 + values
        if self.layout == "paired":
            t, first_query, source = p + q, p, which
            inputs = torch.empty(n, t, 2, dtype=torch.long)  # (N, T, 2)
            inputs[:, :p, 0], inputs[:, :p, 1] = key_tok, value_tok
            inputs[:, p:, 0], inputs[:, p:, 1] = FIRST_TOKEN + query_keys, self._empty
        else:
            t, first_query, source = 2 * p + q, 2 * p, 2 * which + 1
            inputs = torch.empty(n, t, dtype=torch.long)  # (N, T)
            inputs[:, 0 : 2 * p : 2], inputs[:, 1 : 2 * p : 2] = key_tok, value_tok
            inputs[:, 2 * p :] = FIRST_TOKEN + query_keys
        targets = torch.full((n, t), IGNORE, dtype=torch.long)  # (N, T)
        targets[:, first_query:] = labels
        align = torch.full((n, t), -1, dtype=torch.long)  # (N, T)
        align[:, first_query:] = source
        return Split(inputs, targets, align)

    def itos(self) -> list[str]:
        out = list(SPECIAL_ITOS)
        out += [f"k{i}" for i in range(self.num_keys)]
        out += [f"v{i}" for i in range(self.num_values)]
        if self.layout == "paired":
            out.append("<empty>")
        return out

    def load(self, seed: int) -> TaskData:
        splits = {
            s: self._split(self.sizes[s], self.pairs[s], generator(seed, "assoc_recall", s))
            for s in SPLITS
        }
        parts: list[Tensor] = [t for s in splits.values() for t in (s.inputs, s.targets, s.align)]
        return TaskData(
            spec=self.spec(),
            **splits,
            primary_metric="acc",
            metrics=self.metrics,
            fingerprint=fingerprint(parts),
            extra={"input_itos": self.itos(), "labels": [f"v{i}" for i in range(self.num_values)]},
        )

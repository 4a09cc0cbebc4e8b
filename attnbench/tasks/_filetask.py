"""The settings every file task shares, declared once, and what the tasks do with them.

``FileTask`` is a keyword-only dataclass: its fields are the constructor arguments (= the YAML
keys) that the text and translation tasks share: where the splits come from (``path``,
``val_path``, ``test_path``, the carve-out ``val_fraction`` / ``test_fraction`` / ``split_seed``,
``val_dedup``), the tokeniser (``tokenizer``, ``lowercase``, ``min_freq``, ``max_vocab``,
``bpe_vocab_size``) and the length cap ``max_len``. A task subclasses it as a dataclass too,
adding its own fields and redeclaring a shared one where its default differs (translation's
``tokenizer: TokenizerKind = "punct"``); ``__post_init__`` checks the shared values once.

This module does not use ``from __future__ import annotations``: a subclass's generated
``__init__`` carries the inherited fields' annotations, and the config check resolves them
(``typing.get_type_hints``) in the subclass's module, where a string such as ``"TokenizerKind"``
may not be defined. Real type objects need no resolving.
"""

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from attnbench.errors import DataError
from attnbench.tasks._common import check_min, check_split_fractions
from attnbench.tasks._common import split_seed as derive_seed
from attnbench.tasks._files import Rows, assemble_splits, required_test_path
from attnbench.tasks._tokenize import TokenizerKind, TokenizerSettings, check_unchanged
from attnbench.tasks.base import Kind, Task
from attnbench.tasks.overlap import seen_in_training


@dataclass(kw_only=True, eq=False)
class FileTask(Task):
    """Base of the tasks that read data files (see the module docstring)."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    metrics: ClassVar[tuple[str, ...]]
    length_key: ClassVar[str] = "max_len"  # the cap on a tokenised example's length
    example: ClassVar[str] = "text"  # what `val_dedup` compares, for its note

    path: str | None = None
    val_path: str | None = None
    test_path: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int | None = 0
    val_dedup: bool = False
    tokenizer: TokenizerKind = "whitespace"
    lowercase: bool = True
    min_freq: int = 1
    max_vocab: int | None = 20000
    bpe_vocab_size: int = 8000
    max_len: int = 256

    def __post_init__(self) -> None:
        check_split_fractions(self.val_fraction, self.test_fraction)
        check_min("max_len", self.max_len, 1)
        self.tokens = TokenizerSettings(
            self.tokenizer, self.lowercase, self.min_freq, self.max_vocab, self.bpe_vocab_size
        )
        self.tokens.check()

    def seed_used(self, seed: int) -> int:
        """The seed of the val/test carve-out: ``split_seed``, or the run's seed when None."""
        return self.split_seed if self.split_seed is not None else seed

    def settings(self, seed: int, carving: bool) -> dict:
        """The shared settings that shape the data, for the data fingerprint."""
        return {
            "task": self.name,
            "max_len": self.max_len,
            "fractions": [self.val_fraction, self.test_fraction],
            "split_seed": self.seed_used(seed) if carving else None,
            **({"val_dedup": True} if self.val_dedup else {}),
            **self.tokens.as_dict(),
        }

    def assemble(
        self,
        train: Rows,
        val: Rows | None,
        test: Rows | None,
        seed: int,
        examples: Callable[[Rows], Sequence[Hashable]],
        notes: list[str],
    ) -> tuple[dict[str, Rows], int]:
        """train/val/test rows (missing splits carved from train, see ``_files.assemble_splits``)
        and how many validation examples ``val_dedup`` dropped: those whose ``examples`` key
        (a text, or a (source, target) pair) occurs in the training split once normalised
        (``overlap.normalise``), with a note saying how many. DataError when none is left."""
        splits = assemble_splits(
            train,
            val,
            test,
            derive_seed(self.seed_used(seed), self.name, "split"),
            self.val_fraction,
            self.test_fraction,
        )
        if not self.val_dedup:
            return splits, 0
        rows = splits["val"]
        seen = seen_in_training(examples(splits["train"]), examples(rows))
        keep = [i for i, s in enumerate(seen) if not s]
        if not keep:
            raise DataError(
                f"{rows.origin}: all {len(rows)} validation examples occur in the training split "
                "(task.val_dedup=true would leave none); give a task.val_path file disjoint from "
                "training, or set task.val_dedup=false"
            )
        dropped = len(rows) - len(keep)
        splits["val"] = rows.subset(keep)
        notes.append(
            f"task.val_dedup: dropped {dropped} of {len(rows)} validation examples whose "
            f"{self.example} occurs in the training split (lower case, no punctuation); "
            f"{len(keep)} left"
        )
        return splits, dropped

    def saved_encoder(self, state: dict) -> str:
        """The file ``attnbench evaluate`` scores (``task.test_path``), after checking that the
        tokeniser settings and ``max_len`` are those the saved encoder ``state`` was fitted with
        (one-line DataError otherwise)."""
        path = required_test_path(self.test_path)
        check_unchanged(
            {**state["input"]["tokenizer"], "max_len": state["max_len"]},
            {**self.tokens.as_dict(), "max_len": self.max_len},
        )
        return path

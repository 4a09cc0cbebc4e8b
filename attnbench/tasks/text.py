"""Text classification from a local CSV, TSV or JSONL file (e.g. GLUE SST-2's ``train.tsv``),
or from a named Hugging Face corpus (imdb, sst2, ag_news; optional extra ``attnbench[hf]``).

Notation: N examples, T = the longest tokenised text, capped at ``max_len``; K classes.

CSV and TSV files need a header row naming ``text_column`` and ``label_column``; JSONL files
hold one object per line with those fields. Validation and test rows come from ``val_path`` /
``test_path`` when given, otherwise they are carved from the training file at random
(``val_fraction``, ``test_fraction``) seeded by ``split_seed`` alone (default 0), so the run's
seed varies initialisation and batch order but never the split, the vocabulary or the parameter
count; ``split_seed=None`` seeds the carve-out with the run's seed instead. Labels (strings or
integers) become class ids in sorted order (numeric order when all are integers). The tokeniser
and vocabulary are fitted on the training split only.

Inputs ``(N, T)``: token ids, PAD on the right (an empty text is one UNK); targets ``(N,)``.
``extra["labels"]``: class id -> label; ``extra["input_itos"]``: token id -> token.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar, Literal

import torch

from attnbench.errors import DataError
from attnbench.tasks import TASKS
from attnbench.tasks._common import (
    SPLITS,
    check_min,
    check_split_fractions,
    fingerprint,
    out_of_range,
)
from attnbench.tasks._common import split_seed as derive_seed
from attnbench.tasks._files import Rows, assemble_splits, detect_format, read_columns
from attnbench.tasks._tokenize import TokenizerKind, TokenizerSettings, fit, pad
from attnbench.tasks.base import Kind, Split, TaskData, TaskSpec

FORMATS: tuple[str, ...] = ("auto", "csv", "tsv", "jsonl")
_INT = re.compile(r"[+-]?\d+")


def label_order(labels: set[str]) -> list[str]:
    """Sorted class labels: numerically when every label is an integer, else as strings."""
    if all(_INT.fullmatch(x) for x in labels):
        return sorted(labels, key=lambda x: (int(x), x))
    return sorted(labels)


def label_of(rows: Rows) -> list[str]:
    return [y.strip() for y in rows.column(1)]


@TASKS.register("text")
class TextClassification:
    kind: ClassVar[Kind] = "classify"
    metrics: ClassVar[tuple[str, ...]] = ("acc", "f1")

    def __init__(
        self,
        *,
        path: str | None = None,
        format: Literal["auto", "csv", "tsv", "jsonl"] = "auto",
        text_column: str = "text",
        label_column: str = "label",
        val_path: str | None = None,
        test_path: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int | None = 0,
        tokenizer: TokenizerKind = "whitespace",
        lowercase: bool = True,
        min_freq: int = 1,
        max_vocab: int | None = 20000,
        bpe_vocab_size: int = 8000,
        max_len: int = 256,
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        hf_train_split: str = "train",
        hf_val_split: str | None = None,
        hf_test_split: str = "test",
    ) -> None:
        if path is None and hf_dataset is None:
            raise ValueError(
                "'task.path' is required: the text task reads a data file "
                "(task.path=train.csv, .tsv or .jsonl) or a Hugging Face corpus "
                "(task.hf_dataset=imdb, sst2 or ag_news)"
            )
        if path is not None and hf_dataset is not None:
            raise ValueError(
                f"'task.hf_dataset' = {hf_dataset!r} conflicts with 'task.path' = {path!r}: "
                "set only one of them"
            )
        if format not in FORMATS:
            raise out_of_range("format", format, f"must be one of {', '.join(FORMATS)}")
        check_split_fractions(val_fraction, test_fraction)
        check_min("max_len", max_len, 1)
        self.tokens = TokenizerSettings(tokenizer, lowercase, min_freq, max_vocab, bpe_vocab_size)
        self.tokens.check()
        self.path, self.format = path, format
        self.text_column, self.label_column = text_column, label_column
        self.val_path, self.test_path = val_path, test_path
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.max_len = max_len
        self.hf = (hf_dataset, hf_config, hf_train_split, hf_val_split, hf_test_split)

    # -- reading ---------------------------------------------------------------------------

    def _read_file(self, path: str, knob: str) -> Rows:
        fmt = detect_format(path, self.format)
        columns = [(self.text_column, "text_column"), (self.label_column, "label_column")]
        return read_columns(path, fmt, columns, knob)

    def _read(self) -> tuple[Rows, Rows | None, Rows | None]:
        if self.path is not None:
            val = self._read_file(self.val_path, "val_path") if self.val_path else None
            test = self._read_file(self.test_path, "test_path") if self.test_path else None
            return self._read_file(self.path, "path"), val, test
        from attnbench.tasks._hf import PRESETS, load_split

        name, config, train_split, val_split, test_split = self.hf
        text_col, label_col = self.text_column, self.label_column
        preset = PRESETS.get(name)  # type: ignore[arg-type]
        if preset is not None:  # the preset fills in whatever was left at its default
            name, config = preset.repo, config if config is not None else preset.config
            text_col = preset.text_column if text_col == "text" else text_col
            label_col = preset.label_column if label_col == "label" else label_col
            test_split = preset.test_split if test_split == "test" else test_split

        def get(split: str) -> Rows:
            return load_split(name, config, split, text_col, label_col)

        return get(train_split), get(val_split) if val_split else None, get(test_split)

    # -- loading ---------------------------------------------------------------------------

    def load(self, seed: int) -> TaskData:
        train, val, test = self._read()
        seed_used = self.split_seed if self.split_seed is not None else seed
        carving = val is None or test is None
        # Classes come from the training file (before any split is carved out of it).
        train_labels = label_of(train)
        for i, label in enumerate(train_labels):
            if not label:
                raise DataError(f"{train.where(i)}: empty label (column {self.label_column!r})")
        labels = set(train_labels)
        if len(labels) < 2:
            raise DataError(
                f"{train.origin}: column {self.label_column!r} has one class only "
                f"({next(iter(labels))!r}); a classifier needs at least 2"
            )
        classes = label_order(labels)
        class_id = {c: i for i, c in enumerate(classes)}
        for rows in (val, test):
            for i, label in enumerate(label_of(rows) if rows is not None else []):
                if label not in class_id:
                    shown = ", ".join(repr(c) for c in classes[:20])
                    raise DataError(
                        f"{rows.where(i)}: label {label!r} does not occur in the training data "
                        f"({train.origin}); training labels: {shown}"
                    )
        splits = assemble_splits(
            train,
            val,
            test,
            derive_seed(seed_used, "text", "split"),
            self.val_fraction,
            self.test_fraction,
        )
        encoder = fit(splits["train"].column(0), self.tokens)
        ids = {s: encoder.encode(splits[s].column(0)) for s in SPLITS}
        width = min(self.max_len, max(max((len(x) for x in ids[s]), default=1) for s in SPLITS))
        width = max(width, 1)
        data = {
            s: Split(
                inputs=pad(ids[s], width),  # (N, T)
                targets=torch.tensor([class_id[y] for y in label_of(splits[s])], dtype=torch.long),
            )
            for s in SPLITS
        }
        settings = {
            "task": "text",
            "format": self.format,
            "columns": [self.text_column, self.label_column],
            "hf": list(self.hf),
            "max_len": self.max_len,
            "fractions": [self.val_fraction, self.test_fraction],
            "split_seed": seed_used if carving else None,
            **self.tokens.as_dict(),
        }
        # The file bytes and settings, plus the tensors (a tokenizers upgrade shows up too).
        contents = [r.content if r is not None else None for r in (train, val, test)]
        return TaskData(
            spec=TaskSpec(
                kind="classify",
                vocab_size=encoder.vocab_size,
                max_len=width,
                num_classes=len(classes),
            ),
            **data,
            primary_metric="acc",
            metrics=self.metrics,
            fingerprint=fingerprint(
                [json.dumps(settings, sort_keys=True), *contents]
                + [t for split in data.values() for t in (split.inputs, split.targets)]
            ),
            extra={"labels": classes, "input_itos": encoder.itos},
        )

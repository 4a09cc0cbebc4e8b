"""Text classification from a local CSV, TSV or JSONL file (e.g. GLUE SST-2's ``train.tsv``),
or from a named Hugging Face corpus (imdb, sst2, ag_news; optional extra ``attnbench[hf]``).

Notation: N examples, T = the longest tokenised text, capped at ``max_len``; K classes.

CSV and TSV files need a header row naming ``text_column`` and ``label_column``; JSONL files
hold one object per line with those fields. A val/test file is read with its own
``{val,test}_{text,label}_column`` when set, else with the training file's columns. A column the
user did not name is detected when the file lacks it and has exactly two columns, one of them a
label name (``LABEL_NAMES``): the choice is logged and listed in ``extra["notes"]`` (GLUE SST-2's
``sentence``/``label`` train.tsv needs no setting). Validation and test rows come from
``val_path`` / ``test_path`` when given, otherwise they are carved from the training file at random
(``val_fraction``, ``test_fraction``) seeded by ``split_seed`` alone (default 0), so the run's
seed varies initialisation and batch order but never the split, the vocabulary or the parameter
count; ``split_seed=None`` seeds the carve-out with the run's seed instead; ``val_dedup`` drops the
validation texts that also occur in training (``_filetask.FileTask.assemble``). Labels (strings or
integers) become class ids in sorted order (numeric order when all are integers). The tokeniser
and vocabulary are fitted on the training split only. The settings shared with translation are
declared once, in ``_filetask.FileTask``; a file whose every text is empty, or a text column that
is the label column, is refused in one line.

Inputs ``(N, T)``: token ids, PAD on the right (an empty text is one UNK); targets ``(N,)``.
``extra``: ``"labels"`` class id -> label; ``"input_itos"`` token id -> token; ``"tokenizer"``
the tokeniser's name; ``"notes"`` one-line notes for the run log (detected columns);
``"overlap"`` the val/test texts that also occur in train (``attnbench.tasks.overlap``);
``"encoder"`` the JSON-serialisable encoder state ``encode_test`` takes: ``{"task": "text",
"max_len": the task.max_len cap, "columns": the training file's (text, label) columns as read,
"labels": class id -> label, "input": Encoder.state()}`` (tokeniser settings, ``itos``, the bpe
model as JSON).

``encode_test(state, spec)`` reads the ``test_path`` file (with its ``test_*_column`` settings,
else the training file's columns, detected as ``load`` does) and encodes it with a trained run's
state: its vocabulary (unknown words become UNK), its classes (an unknown label is an error) and
its width ``spec.max_len``: the file a run was tested on gives that run's test tensors exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from attnbench.errors import DataError
from attnbench.tasks import TASKS
from attnbench.tasks._common import SPLITS, fingerprint, out_of_range
from attnbench.tasks._files import Rows, column_names, detect_format, read_columns
from attnbench.tasks._filetask import FileTask
from attnbench.tasks._tokenize import Encoder, fit, pad
from attnbench.tasks.base import Kind, Split, TaskData, TaskSpec
from attnbench.tasks.overlap import overlap_counts

FORMATS: tuple[str, ...] = ("auto", "csv", "tsv", "jsonl")
_INT = re.compile(r"[+-]?\d+")
# Column names recognised as the label when a file's columns are detected (any letter case).
LABEL_NAMES: tuple[str, ...] = ("label", "labels", "target", "class", "sentiment", "y")
DEFAULT_COLUMNS: tuple[str, str] = ("text", "label")  # text_column, label_column defaults


def label_order(labels: set[str]) -> list[str]:
    """Sorted class labels: numerically when every label is an integer, else as strings."""
    if all(_INT.fullmatch(x) for x in labels):
        return sorted(labels, key=lambda x: (int(x), x))
    return sorted(labels)


def label_of(rows: Rows) -> list[str]:
    return [y.strip() for y in rows.column(1)]


def class_ids(rows: Rows, classes: Sequence[str], source: str) -> list[int]:
    """The class id of each row's label; DataError naming the row, the label and the known
    ``classes`` (those of ``source``, e.g. "the training data (train.tsv)") for any other."""
    class_id = {c: i for i, c in enumerate(classes)}
    ids = []
    for i, label in enumerate(label_of(rows)):
        if label not in class_id:
            shown = ", ".join(repr(c) for c in classes[:20])
            more = f" and {len(classes) - 20} more" if len(classes) > 20 else ""
            raise DataError(
                f"{rows.where(i)}: label {label!r} does not occur in {source}; "
                f"training labels: {shown}{more}"
            )
        ids.append(class_id[label])
    return ids


def text_of(rows: Rows) -> list[str]:
    """The texts of the rows (what ``val_dedup`` and the overlap counts compare)."""
    return rows.column(0)


def same_column(prefix: str, name: str) -> str:
    return (
        f"'task.{prefix}text_column' = 'task.{prefix}label_column' = {name!r}: the model would "
        "read its own label; name the column that holds the text"
    )


def check_some_text(rows: Rows, column: str) -> None:
    """DataError when every text of ``rows`` is empty (a classifier would learn the majority
    class from nothing but the padding)."""
    if not any(t.strip() for t in rows.column(0)):
        raise DataError(
            f"{rows.origin}: every text in column {column!r} is empty ({len(rows)} rows); "
            "name the column that holds the text (task.text_column)"
        )


def detect_columns(header: Sequence[str]) -> tuple[str, str] | None:
    """(text, label) of a file with exactly two columns, one of them a known label name
    (LABEL_NAMES, any case); None otherwise."""
    if len(header) != 2:
        return None
    is_label = [h.lower() in LABEL_NAMES for h in header]
    if sum(is_label) != 1:
        return None
    return header[is_label.index(False)], header[is_label.index(True)]


def choose_columns(
    header: Sequence[str], wanted: tuple[str, str], named: tuple[bool, bool]
) -> tuple[str, str] | None:
    """Detected (text, label) columns to use instead of ``wanted`` when a wanted column is not in
    ``header`` and ``detect_columns`` finds a pair agreeing with every column the user ``named``
    explicitly; None = read ``wanted`` as it is (a missing column then gets its one-line error)."""
    if not header or set(wanted) <= set(header):
        return None
    found = detect_columns(header)
    if found is None or any(n and w != f for n, w, f in zip(named, wanted, found, strict=True)):
        return None
    return found


@TASKS.register("text")
@dataclass(kw_only=True, eq=False)
class TextClassification(FileTask):
    """The shared file settings (``FileTask``: paths, carve-out, tokeniser, ``max_len``) plus the
    file's format and columns and the Hugging Face corpus settings."""

    kind: ClassVar[Kind] = "classify"
    metrics: ClassVar[tuple[str, ...]] = ("acc", "f1", "precision", "recall")

    format: Literal["auto", "csv", "tsv", "jsonl"] = "auto"
    text_column: str = "text"
    label_column: str = "label"
    val_text_column: str | None = None
    val_label_column: str | None = None
    test_text_column: str | None = None
    test_label_column: str | None = None
    hf_dataset: str | None = None
    hf_config: str | None = None
    hf_train_split: str = "train"
    hf_val_split: str | None = None
    hf_test_split: str = "test"

    def __post_init__(self) -> None:
        path, hf_dataset = self.path, self.hf_dataset
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
        if self.format not in FORMATS:
            raise out_of_range("format", self.format, f"must be one of {', '.join(FORMATS)}")
        if self.text_column == self.label_column:
            raise ValueError(same_column("", self.text_column))
        self.split_columns = {
            "val": (self.val_text_column, self.val_label_column),
            "test": (self.test_text_column, self.test_label_column),
        }
        for split, split_path in (("val", self.val_path), ("test", self.test_path)):
            for side, name in zip(("text", "label"), self.split_columns[split], strict=True):
                if name is not None and (split_path is None or hf_dataset is not None):
                    raise ValueError(
                        f"'task.{split}_{side}_column' = {name!r} names a column of the "
                        f"task.{split}_path file: set task.{split}_path too (not with hf_dataset)"
                    )
        super().__post_init__()

    @property
    def hf(self) -> tuple[str | None, str | None, str, str | None, str]:
        """(hf_dataset, hf_config, hf_train_split, hf_val_split, hf_test_split)."""
        return (self.hf_dataset, self.hf_config, self.hf_train_split, self.hf_val_split,
                self.hf_test_split)

    # -- reading ---------------------------------------------------------------------------

    def _read_file(
        self, path: str, split: str, inherited: tuple[str, str], notes: list[str]
    ) -> tuple[Rows, tuple[str, str]]:
        """The rows of the training file (split "train") or a val/test file, and the (text, label)
        columns read. A split file reads its own ``{split}_*_column`` or else the training
        file's columns; columns left unnamed are detected when the file lacks them
        (``choose_columns``), with a note saying so."""
        knob = "path" if split == "train" else f"{split}_path"
        prefix = "" if split == "train" else f"{split}_"
        if split == "train":
            wanted = (self.text_column, self.label_column)
            named = (wanted[0] != DEFAULT_COLUMNS[0], wanted[1] != DEFAULT_COLUMNS[1])
        else:
            own = self.split_columns[split]
            wanted = (own[0] or inherited[0], own[1] or inherited[1])
            named = (own[0] is not None, own[1] is not None)
        fmt = detect_format(path, self.format)
        found = choose_columns(column_names(path, fmt, knob), wanted, named)
        if found is not None:
            missing = ", ".join(repr(c) for c in wanted if c not in found)
            note = (
                f"{path} (task.{knob}): no column {missing}; using the detected text column "
                f"{found[0]!r} and label column {found[1]!r} "
                f"(set task.{prefix}text_column / task.{prefix}label_column to choose)"
            )
            notes.append(note)
            wanted = found
        if wanted[0] == wanted[1]:
            raise DataError(f"{path} (task.{knob}): {same_column(prefix, wanted[0])}")
        knobs = (f"{prefix}text_column", f"{prefix}label_column")
        rows = read_columns(path, fmt, list(zip(wanted, knobs, strict=True)), knob)
        check_some_text(rows, wanted[0])
        return rows, wanted

    def _read(
        self, notes: list[str]
    ) -> tuple[Rows, Rows | None, Rows | None, dict[str, tuple[str, str]]]:
        """(train, val, test) rows and the (text, label) columns read per split."""
        if self.path is not None:
            train, columns = self._read_file(self.path, "train", DEFAULT_COLUMNS, notes)
            used = {"train": columns}
            split_rows: dict[str, Rows | None] = {"val": None, "test": None}
            for split, path in (("val", self.val_path), ("test", self.test_path)):
                if path:
                    split_rows[split], used[split] = self._read_file(path, split, columns, notes)
            return train, split_rows["val"], split_rows["test"], used
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

        val = get(val_split) if val_split else None
        train = get(train_split)
        check_some_text(train, text_col)
        return train, val, get(test_split), {"train": (text_col, label_col)}

    # -- loading ---------------------------------------------------------------------------

    def load(self, seed: int) -> TaskData:
        notes: list[str] = []
        train, val, test, columns = self._read(notes)
        classes = self._classes(train, columns["train"][1])
        source = f"the training data ({train.origin})"
        for rows in (val, test):
            if rows is not None:
                class_ids(rows, classes, source)
        splits, dropped = self.assemble(train, val, test, seed, text_of, notes)
        encoder = fit(splits["train"].column(0), self.tokens)
        ids = {s: encoder.encode(splits[s].column(0)) for s in SPLITS}
        width = min(self.max_len, max(max((len(x) for x in ids[s]), default=1) for s in SPLITS))
        width = max(width, 1)
        data = {
            s: Split(
                inputs=pad(ids[s], width),  # (N, T)
                targets=torch.tensor(class_ids(splits[s], classes, source), dtype=torch.long),
            )
            for s in SPLITS
        }
        settings = {
            **self.settings(seed, carving=val is None or test is None),
            "format": self.format,
            "columns": {split: list(names) for split, names in columns.items()},
            "hf": list(self.hf),
        }
        # The file bytes and settings, plus the tensors (a tokenizers upgrade shows up too).
        contents = [r.content if r is not None else None for r in (train, val, test)]
        overlap = overlap_counts(*(text_of(splits[s]) for s in SPLITS))
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
            extra={
                "labels": classes,
                "input_itos": encoder.itos,
                "tokenizer": self.tokens.tokenizer,
                "notes": notes,
                "overlap": {**overlap, **({"val_dropped": dropped} if self.val_dedup else {})},
                "encoder": {
                    "task": "text",
                    "max_len": self.max_len,
                    "columns": list(columns["train"]),
                    "labels": classes,
                    "input": encoder.state(),
                },
            },
        )

    @staticmethod
    def _classes(train: Rows, label_column: str) -> list[str]:
        """The class labels of the training file (before any split is carved out of it), in
        ``label_order``; DataError for an empty label or a single class."""
        train_labels = label_of(train)
        for i, label in enumerate(train_labels):
            if not label:
                raise DataError(f"{train.where(i)}: empty label (column {label_column!r})")
        labels = set(train_labels)
        if len(labels) < 2:
            raise DataError(
                f"{train.origin}: column {label_column!r} has one class only "
                f"({next(iter(labels))!r}); a classifier needs at least 2"
            )
        return label_order(labels)

    # -- a trained model on another file -----------------------------------------------------

    def encode_test(self, state: dict, spec: TaskSpec) -> Split:
        """The ``test_path`` file as a test split for a run trained with encoder ``state``
        (``extra["encoder"]`` of its ``load``) and ``spec``: inputs ``(N, spec.max_len)``,
        targets ``(N,)``, encoded exactly as that run's ``load`` encoded its own test split."""
        if self.hf[0] is not None:
            raise DataError(
                f"task.hf_dataset={self.hf[0]}: evaluate reads no other file for a Hugging Face "
                "corpus task; run 'attnbench evaluate RUN_ID' without task settings to score its "
                "own test split"
            )
        path = self.saved_encoder(state)
        encoder = Encoder.from_state(state["input"])
        train_columns = (state["columns"][0], state["columns"][1])
        rows, _ = self._read_file(path, "test", train_columns, [])
        targets = class_ids(rows, state["labels"], "the trained run's training data")
        return Split(
            inputs=pad(encoder.encode(rows.column(0)), spec.max_len),  # (N, T)
            targets=torch.tensor(targets, dtype=torch.long),  # (N,)
        )

"""Optional loader of named corpora through Hugging Face ``datasets`` (extra: attnbench[hf]).

``datasets`` is imported only when a task asks for it. Short names of the corpora the design
names map to their Hub repositories and columns (PRESETS); any other name is passed to
``datasets.load_dataset`` as is, with the columns and splits the task is given: a Hub name, or a
local folder of split files (``train.csv``, ``test.jsonl``, ...), read without a network.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from attnbench.errors import DataError
from attnbench.tasks._files import Rows


@dataclass(frozen=True)
class Preset:
    repo: str
    config: str | None
    text_column: str
    label_column: str
    test_split: str  # a split with labels (SST-2's "test" split is unlabeled: label -1)


PRESETS: dict[str, Preset] = {
    "imdb": Preset("stanfordnlp/imdb", None, "text", "label", "test"),
    "sst2": Preset("stanfordnlp/sst2", None, "sentence", "label", "validation"),
    "ag_news": Preset("fancyzhx/ag_news", None, "text", "label", "test"),
}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_split(
    name: str, config: str | None, split: str, text_column: str, label_column: str
) -> Rows:
    """(text, label) rows of one split; ``lines`` are 1-based row numbers."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"task.hf_dataset={name} needs Hugging Face datasets: pip install 'attnbench[hf]'"
        ) from None
    origin = f"{name}[{split}]"
    if not sys.stderr.isatty():  # download bars are for a terminal, not logs or error output
        datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # network, unknown name/config/split: all reported in one line
        raise DataError(
            f"{origin}: cannot load from the Hugging Face Hub: {_first_line(err)}"
        ) from None
    for column, knob in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in ds.column_names:
            found = ", ".join(repr(c) for c in ds.column_names)
            raise DataError(f"{origin}: no column {column!r} (task.{knob}); columns found: {found}")
    texts, labels = ds[text_column], ds[label_column]
    if len(texts) == 0:
        raise DataError(f"{origin}: the split is empty")
    if all(label == -1 for label in labels):
        raise DataError(f"{origin}: the split has no labels (all -1); choose another split")
    fingerprint = getattr(ds, "_fingerprint", "") or ""
    return Rows(
        origin,
        list(range(1, len(texts) + 1)),
        [(str(t), str(y)) for t, y in zip(texts, labels, strict=True)],
        f"hf:{name}:{config}:{split}:{fingerprint}".encode(),
    )

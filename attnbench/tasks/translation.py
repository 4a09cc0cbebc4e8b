"""Translation from sentence pairs in a local tab-separated file (e.g. a Tatoeba / manythings.org
export: ``Go.<TAB>Va !<TAB>CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) ...``).

Notation: N pairs, T = the longest tokenised source, U = the longest tokenised target + 1 (EOS),
both capped by ``max_len`` (+ 1 for U).

Columns ``source_column`` and ``target_column`` (0-based; default the first two) hold the two
sentences; further columns are ignored; ``header`` skips a first line. Validation and test pairs
come from ``val_path`` / ``test_path`` (same layout) when given, otherwise they are carved from
the training file at random (``val_fraction``, ``test_fraction``) seeded by ``split_seed`` alone
(default 0): the run's seed varies initialisation and batch order, never the split or the
vocabularies; ``split_seed=None`` seeds the carve-out with the run's seed instead; ``val_dedup``
drops the validation pairs whose source and target both occur in training. The settings shared
with the text task are declared once, in ``_filetask.FileTask``. Source and target vocabularies
are separate, fitted on the training split only. The default tokeniser is
``punct``: sentences end in punctuation glued to a word ("Run!"), which whitespace tokens would
make a rare word of its own (an ``<unk>`` in the references); ``punct`` splits it off and
detokenises exactly for BLEU.

Inputs ``(N, T)``: source ids, PAD on the right. Targets ``(N, U)``: target ids, EOS, PAD.
``target_itos`` turns predictions back into text for BLEU (``metrics.detokenize``); each split's
``references`` are its target sentences as written in the file (lower-cased with ``lowercase``):
``bleu`` scores against them, ``bleu_tok`` against the targets decoded from ids (``<unk>`` for
out-of-vocabulary words). ``extra``: ``"input_itos"`` source id -> token; ``"tokenizer"`` the
tokeniser's name; ``"notes"`` one-line notes for the run log; ``"overlap"`` the val/test pairs
seen in train, with the same target and (``*_source``) with another target only
(``attnbench.tasks.overlap``); ``"encoder"`` the JSON-serialisable encoder state ``encode_test``
takes: ``{"task": "translation", "max_len": the task.max_len cap, "input": the source side's
Encoder.state(), "target": the target side's}`` (tokeniser settings, ``itos``, the bpe model as
JSON).

``encode_test(state, spec)`` reads the ``test_path`` file (same layout: ``header``, columns) and
encodes it with a trained run's state: its two vocabularies (unknown words become UNK) and its
widths ``spec.max_len`` and ``spec.max_target_len`` (EOS kept), with the file's target sentences
as references: the file a run was tested on gives that run's test tensors exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from attnbench.errors import DataError
from attnbench.tasks import TASKS
from attnbench.tasks._common import SPLITS, check_min, fingerprint, out_of_range
from attnbench.tasks._files import Rows, read_columns
from attnbench.tasks._filetask import FileTask
from attnbench.tasks._tokenize import Encoder, TokenizerKind, fit, pad
from attnbench.tasks.base import Kind, Split, TaskData, TaskSpec
from attnbench.tasks.overlap import overlap_counts, overlap_notes


def pairs_of(rows: Rows) -> list[tuple[str, str]]:
    """The (source, target) pairs of the rows (what ``val_dedup`` and the overlap counts
    compare)."""
    return [(src, tgt) for src, tgt in rows.fields]


@TASKS.register("translation")
@dataclass(kw_only=True, eq=False)
class Translation(FileTask):
    """The shared file settings (``FileTask``; punct tokens, case kept and 50 tokens by default)
    plus the TSV layout."""

    kind: ClassVar[Kind] = "transduce"
    metrics: ClassVar[tuple[str, ...]] = ("token_acc", "exact_match", "bleu", "bleu_tok")
    example: ClassVar[str] = "source and target pair"

    header: bool = False
    source_column: int = 0
    target_column: int = 1
    tokenizer: TokenizerKind = "punct"
    lowercase: bool = False
    max_len: int = 50

    def __post_init__(self) -> None:
        if self.path is None:
            raise ValueError(
                "'task.path' is required: the translation task reads a TSV file of sentence "
                "pairs (task.path=pairs.tsv, source<TAB>target per line)"
            )
        check_min("source_column", self.source_column, 0)
        check_min("target_column", self.target_column, 0)
        if self.source_column == self.target_column:
            raise out_of_range(
                "target_column",
                self.target_column,
                f"must differ from source_column = {self.source_column}",
            )
        super().__post_init__()

    def _read(self, path: str, knob: str) -> Rows:
        columns = [(self.source_column, "source_column"), (self.target_column, "target_column")]
        rows = read_columns(path, "tsv", columns, knob, header=self.header)
        for i, (src, tgt) in enumerate(rows.fields):
            for text, side in ((src, "source"), (tgt, "target")):
                if not text.strip():
                    raise DataError(f"{rows.where(i)}: empty {side} sentence")
        return rows

    def references(self, rows: Rows) -> list[str]:
        """The target sentences as written in the file (lower-cased when ``lowercase`` is set,
        as the model's output then is): what BLEU scores the detokenised output against."""
        targets = rows.column(1)
        return [t.lower() for t in targets] if self.lowercase else targets

    def load(self, seed: int) -> TaskData:
        train = self._read(self.path, "path")  # type: ignore[arg-type]
        val = self._read(self.val_path, "val_path") if self.val_path else None
        test = self._read(self.test_path, "test_path") if self.test_path else None
        notes: list[str] = []
        splits, dropped = self.assemble(train, val, test, seed, pairs_of, notes)
        source = fit(splits["train"].column(0), self.tokens)
        target = fit(splits["train"].column(1), self.tokens)
        src_ids = {s: source.encode(splits[s].column(0)) for s in SPLITS}
        tgt_ids = {s: target.encode(splits[s].column(1)) for s in SPLITS}
        t = min(self.max_len, max(max(map(len, src_ids[s]), default=1) for s in SPLITS))
        u = min(self.max_len, max(max(map(len, tgt_ids[s]), default=0) for s in SPLITS)) + 1
        data = {
            s: Split(
                inputs=pad(src_ids[s], max(t, 1)),  # (N, T)
                targets=pad(tgt_ids[s], u, eos=True),  # (N, U)
                references=self.references(splits[s]),
            )
            for s in SPLITS
        }
        settings = {
            **self.settings(seed, carving=val is None or test is None),
            "header": self.header,
            "columns": [self.source_column, self.target_column],
        }
        # The file bytes and settings, plus the tensors (a tokenizers upgrade shows up too).
        contents = [r.content if r is not None else None for r in (train, val, test)]
        overlap = overlap_counts(*(pairs_of(splits[s]) for s in SPLITS))
        notes += overlap_notes(overlap)
        return TaskData(
            spec=TaskSpec(
                kind="transduce",
                vocab_size=source.vocab_size,
                max_len=max(t, 1),
                target_vocab_size=target.vocab_size,
                max_target_len=u,
            ),
            **data,
            primary_metric="bleu",
            metrics=self.metrics,
            target_itos=target.itos,
            fingerprint=fingerprint(
                [json.dumps(settings, sort_keys=True), *contents]
                + [t for split in data.values() for t in (split.inputs, split.targets)]
            ),
            extra={
                "input_itos": source.itos,
                "tokenizer": self.tokens.tokenizer,
                "notes": notes,
                "overlap": {**overlap, **({"val_dropped": dropped} if self.val_dedup else {})},
                "encoder": {
                    "task": "translation",
                    "max_len": self.max_len,
                    "input": source.state(),
                    "target": target.state(),
                },
            },
        )

    def encode_test(self, state: dict, spec: TaskSpec) -> Split:
        """The ``test_path`` file as a test split for a run trained with encoder ``state``
        (``extra["encoder"]`` of its ``load``) and ``spec``: inputs ``(N, spec.max_len)``,
        targets ``(N, spec.max_target_len)``, encoded exactly as that run's ``load`` encoded its
        own test split, with the file's target sentences as BLEU's references."""
        path = self.saved_encoder(state)
        source, target = Encoder.from_state(state["input"]), Encoder.from_state(state["target"])
        rows = self._read(path, "test_path")
        return Split(
            inputs=pad(source.encode(rows.column(0)), spec.max_len),  # (N, T)
            targets=pad(target.encode(rows.column(1)), spec.max_target_len, eos=True),  # (N, U)
            references=self.references(rows),
        )

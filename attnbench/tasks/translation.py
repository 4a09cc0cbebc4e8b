"""Translation from sentence pairs in a local tab-separated file (e.g. a Tatoeba / manythings.org
export: ``Go.<TAB>Va !<TAB>CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) ...``).

Notation: N pairs, T = the longest tokenised source, U = the longest tokenised target + 1 (EOS),
both capped by ``max_len`` (+ 1 for U).

Columns ``source_column`` and ``target_column`` (0-based; default the first two) hold the two
sentences; further columns are ignored; ``header`` skips a first line. Validation and test pairs
come from ``val_path`` / ``test_path`` (same layout) when given, otherwise they are carved from
the training file at random (``val_fraction``, ``test_fraction``) seeded by ``split_seed`` alone
(default 0): the run's seed varies initialisation and batch order, never the split or the
vocabularies; ``split_seed=None`` seeds the carve-out with the run's seed instead. Source and
target vocabularies are separate, fitted on the training split only. The default tokeniser is
``punct``: sentences end in punctuation glued to a word ("Run!"), which whitespace tokens would
make a rare word of its own (an ``<unk>`` in the references); ``punct`` splits it off and
detokenises exactly for BLEU.

Inputs ``(N, T)``: source ids, PAD on the right. Targets ``(N, U)``: target ids, EOS, PAD.
``target_itos`` turns predictions back into text for BLEU (``metrics.detokenize``).
``extra``: ``"input_itos"`` source id -> token; ``"tokenizer"`` the tokeniser's name;
``"overlap"`` the val/test pairs whose source sentence also occurs in train
(``attnbench.tasks.overlap``); ``"encoder"`` the JSON-serialisable encoder state ``encode_test``
takes: ``{"task": "translation", "max_len": the task.max_len cap, "input": the source side's
Encoder.state(), "target": the target side's}`` (tokeniser settings, ``itos``, the bpe model as
JSON).

``encode_test(state, spec)`` reads the ``test_path`` file (same layout: ``header``, columns) and
encodes it with a trained run's state: its two vocabularies (unknown words become UNK) and its
widths ``spec.max_len`` and ``spec.max_target_len`` (EOS kept): the file a run was tested on gives
that run's test tensors exactly.
"""

from __future__ import annotations

import json
from typing import ClassVar

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
from attnbench.tasks._files import Rows, assemble_splits, read_tsv_fields, required_test_path
from attnbench.tasks._tokenize import (
    Encoder,
    TokenizerKind,
    TokenizerSettings,
    check_unchanged,
    fit,
    pad,
)
from attnbench.tasks.base import Kind, Split, Task, TaskData, TaskSpec
from attnbench.tasks.overlap import overlap_counts


@TASKS.register("translation")
class Translation(Task):
    kind: ClassVar[Kind] = "transduce"
    length_key: ClassVar[str] = "max_len"
    metrics: ClassVar[tuple[str, ...]] = ("token_acc", "exact_match", "bleu")

    def __init__(
        self,
        *,
        path: str | None = None,
        header: bool = False,
        source_column: int = 0,
        target_column: int = 1,
        val_path: str | None = None,
        test_path: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int | None = 0,
        tokenizer: TokenizerKind = "punct",
        lowercase: bool = False,
        min_freq: int = 1,
        max_vocab: int | None = 20000,
        bpe_vocab_size: int = 8000,
        max_len: int = 50,
    ) -> None:
        if path is None:
            raise ValueError(
                "'task.path' is required: the translation task reads a TSV file of sentence "
                "pairs (task.path=pairs.tsv, source<TAB>target per line)"
            )
        check_min("source_column", source_column, 0)
        check_min("target_column", target_column, 0)
        if source_column == target_column:
            raise out_of_range(
                "target_column", target_column, f"must differ from source_column = {source_column}"
            )
        check_split_fractions(val_fraction, test_fraction)
        check_min("max_len", max_len, 1)
        self.tokens = TokenizerSettings(tokenizer, lowercase, min_freq, max_vocab, bpe_vocab_size)
        self.tokens.check()
        self.path, self.header = path, header
        self.columns = (source_column, target_column)
        self.val_path, self.test_path = val_path, test_path
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.max_len = max_len

    def _read(self, path: str, knob: str) -> Rows:
        rows = read_tsv_fields(path, self.columns, self.header, knob)
        for i, (src, tgt) in enumerate(rows.fields):
            for text, side in ((src, "source"), (tgt, "target")):
                if not text.strip():
                    raise DataError(f"{rows.where(i)}: empty {side} sentence")
        return rows

    def load(self, seed: int) -> TaskData:
        train = self._read(self.path, "path")  # type: ignore[arg-type]
        val = self._read(self.val_path, "val_path") if self.val_path else None
        test = self._read(self.test_path, "test_path") if self.test_path else None
        seed_used = self.split_seed if self.split_seed is not None else seed
        splits = assemble_splits(
            train,
            val,
            test,
            derive_seed(seed_used, "translation", "split"),
            self.val_fraction,
            self.test_fraction,
        )
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
            )
            for s in SPLITS
        }
        settings = {
            "task": "translation",
            "header": self.header,
            "columns": list(self.columns),
            "max_len": self.max_len,
            "fractions": [self.val_fraction, self.test_fraction],
            "split_seed": seed_used if val is None or test is None else None,
            **self.tokens.as_dict(),
        }
        # The file bytes and settings, plus the tensors (a tokenizers upgrade shows up too).
        contents = [r.content if r is not None else None for r in (train, val, test)]
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
                "overlap": overlap_counts(*(splits[s].column(0) for s in SPLITS)),
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
        own test split."""
        path = required_test_path(self.test_path)
        check_unchanged(
            {**state["input"]["tokenizer"], "max_len": state["max_len"]},
            {**self.tokens.as_dict(), "max_len": self.max_len},
        )
        source, target = Encoder.from_state(state["input"]), Encoder.from_state(state["target"])
        rows = self._read(path, "test_path")
        return Split(
            inputs=pad(source.encode(rows.column(0)), spec.max_len),  # (N, T)
            targets=pad(target.encode(rows.column(1)), spec.max_target_len, eos=True),  # (N, U)
        )

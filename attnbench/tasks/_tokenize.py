r"""Tokenisers and vocabularies for the file tasks, fitted on the training split only.

- ``whitespace``: tokens are the whitespace-separated words.
- ``punct``: words (``\w+``) and punctuation marks (each ``[^\w\s]`` character) are separate
  tokens, so "Run!" and "Run." share the word; a token that starts a word (text start or after
  whitespace) carries the SentencePiece word mark: "Run!" -> ``▁Run``, ``!``; "Va !" -> ``▁Va``,
  ``▁!``; "l'aide" -> ``▁l``, ``'``, ``aide``. Detokenising (``metrics.detokenize``) restores the
  original spacing exactly, so BLEU sees the text as written.
- ``char``: tokens are characters; runs of whitespace become one WORD_MARK (``▁``) token.
- ``bpe``: byte-pair encoding trained with Hugging Face ``tokenizers`` (SentencePiece-style
  ``▁`` word marks, so pieces detokenise exactly; see ``metrics.detokenize``).

Ids: PAD, BOS, EOS, UNK = 0..3, then the vocabulary by decreasing training frequency (ties in
string order), keeping tokens seen at least ``min_freq`` times, at most ``max_vocab`` of them.

A fitted ``Encoder`` saves itself as plain JSON (``Encoder.state``: the settings, ``itos`` and, for
bpe, the trained ``tokenizers`` model as its JSON string; no pickle) and ``Encoder.from_state``
rebuilds it to encode new text exactly as training did (``attnbench evaluate``).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from attnbench.errors import DataError
from attnbench.tasks._common import SPECIAL_ITOS, check_min, out_of_range, pad_rows
from attnbench.tasks.base import EOS, UNK
from attnbench.tasks.metrics import WORD_MARK

TokenizerKind = Literal["whitespace", "punct", "char", "bpe"]
TOKENIZERS: tuple[str, ...] = ("whitespace", "punct", "char", "bpe")
_WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")  # the punct tokeniser's tokens


@dataclass(frozen=True)
class TokenizerSettings:
    tokenizer: TokenizerKind = "whitespace"
    lowercase: bool = True
    min_freq: int = 1
    max_vocab: int | None = 20000
    bpe_vocab_size: int = 8000

    def check(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise out_of_range(
                "tokenizer", self.tokenizer, f"must be one of {', '.join(TOKENIZERS)}"
            )
        check_min("min_freq", self.min_freq, 1)
        if self.max_vocab is not None:
            check_min("max_vocab", self.max_vocab, 1)
        check_min("bpe_vocab_size", self.bpe_vocab_size, 16)

    def as_dict(self) -> dict:
        return asdict(self)


class Encoder:
    """Text -> token ids with a fixed vocabulary (``itos``: id -> token string)."""

    def __init__(self, settings: TokenizerSettings, itos: list[str], bpe: object | None = None):
        self.settings = settings
        self.itos = itos
        self._stoi = {s: i for i, s in enumerate(itos)}
        self._bpe = bpe  # a tokenizers.Tokenizer for "bpe"

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if self._bpe is not None:
            return [e.ids for e in self._bpe.encode_batch(list(texts))]  # type: ignore[attr-defined]
        stoi = self._stoi
        return [[stoi.get(t, UNK) for t in split(text, self.settings)] for text in texts]

    def state(self) -> dict:
        """Everything ``from_state`` needs, JSON-serialisable: ``{"tokenizer": settings,
        "itos": id -> token, "bpe": the trained tokenizers model as JSON (bpe) or None}``."""
        bpe = self._bpe.to_str() if self._bpe is not None else None  # type: ignore[attr-defined]
        return {"tokenizer": self.settings.as_dict(), "itos": list(self.itos), "bpe": bpe}

    @classmethod
    def from_state(cls, state: Mapping) -> Encoder:
        """The encoder ``state()`` saved: same settings, same ids for every text."""
        settings = TokenizerSettings(**state["tokenizer"])
        bpe = None
        if state.get("bpe") is not None:
            from tokenizers import Tokenizer

            bpe = Tokenizer.from_str(state["bpe"])
        return cls(settings, list(state["itos"]), bpe=bpe)


def check_unchanged(saved: Mapping[str, object], current: Mapping[str, object]) -> None:
    """DataError naming the first ``task.KEY`` whose value differs from the trained run's: a
    saved encoder encodes with the settings it was trained with, so changing one is refused."""
    for key, old in saved.items():
        new = current.get(key, old)
        if new != old:
            raise DataError(
                f"task.{key}={new!r} differs from the trained run's {old!r}: a saved model "
                f"encodes text with its own settings; leave task.{key} out"
            )


def split(text: str, settings: TokenizerSettings) -> list[str]:
    """Word, word-and-punctuation or character tokens of ``text`` (not used for bpe)."""
    if settings.lowercase:
        text = text.lower()
    if settings.tokenizer == "char":
        return [WORD_MARK if c == " " else c for c in " ".join(text.split())]
    if settings.tokenizer == "punct":
        return [
            WORD_MARK + m.group() if m.start() == 0 or text[m.start() - 1].isspace() else m.group()
            for m in _WORD_OR_MARK.finditer(text)
        ]
    return text.split()


def fit(texts: Sequence[str], settings: TokenizerSettings) -> Encoder:
    """Build the tokeniser's vocabulary from the training texts."""
    if settings.tokenizer == "bpe":
        return _fit_bpe(texts, settings)
    counts = Counter(itertools.chain.from_iterable(split(t, settings) for t in texts))
    kept = [(c, s) for s, c in counts.items() if c >= settings.min_freq and s not in SPECIAL_ITOS]
    kept.sort(key=lambda cs: (-cs[0], cs[1]))
    tokens = [s for _, s in kept[: settings.max_vocab]]
    if settings.tokenizer == "char" and WORD_MARK not in tokens:
        tokens.append(WORD_MARK)  # always present: it marks the vocabulary as char pieces
    return Encoder(settings, [*SPECIAL_ITOS, *tokens])


def _fit_bpe(texts: Sequence[str], settings: TokenizerSettings) -> Encoder:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_ITOS[UNK]))
    if settings.lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_MARK)
    tok.decoder = decoders.Metaspace(replacement=WORD_MARK)
    trainer = trainers.BpeTrainer(
        vocab_size=settings.bpe_vocab_size,
        min_frequency=settings.min_freq,
        special_tokens=list(SPECIAL_ITOS),  # ids 0..3, in this order
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    itos = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    if tuple(itos[: len(SPECIAL_ITOS)]) != SPECIAL_ITOS:  # the contract's ids, checked once here
        raise RuntimeError(f"bpe special tokens got ids {itos[: len(SPECIAL_ITOS)]}")
    return Encoder(settings, itos, bpe=tok)


def pad(seqs: Sequence[Sequence[int]], width: int, eos: bool = False) -> torch.Tensor:
    """Truncate each sequence to ``width`` (minus one for EOS), append EOS, right-pad with PAD.

    Returns ``(N, width)`` long. An empty input sequence (no EOS wanted) becomes ``[UNK]`` so
    that every row has at least one real token.
    """
    keep = width - 1 if eos else width
    rows = [list(s[:keep]) + [EOS] if eos else (list(s[:keep]) or [UNK]) for s in seqs]
    return pad_rows(rows, width)

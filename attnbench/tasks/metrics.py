"""Evaluation metrics the trainer calls: plain functions of predictions and targets.

Notation: N examples, T positions, U target length, U' predicted length, K classes, V vocabulary.

``pred`` may be class/token ids with the shape of ``target`` or scores with one more trailing
dimension (``(N, K)``, ``(N, T, K)``, ``(N, U, V)``), which are reduced with argmax.
All metrics are "higher is better"; ``acc``, ``f1``, ``precision``, ``recall``, ``token_acc`` and
``exact_match`` are in [0, 1], ``bleu`` and ``bleu_tok`` in [0, 100] (sacrebleu's scale).

``bleu`` scores the detokenised output against the reference sentences as written in the data
file (sacrebleu's intended use: its own 13a tokenisation on raw text), so the number does not move
with the vocabulary settings. ``bleu_tok`` scores it against the references decoded back from the
target token ids, where every out-of-vocabulary word is ``<unk>``: the model's ceiling under its
vocabulary. Without raw references (``Split.references`` None) ``bleu`` equals ``bleu_tok``.
``classification_report`` gives the per-class view (a report dict and the confusion matrix) for
artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from attnbench.tasks.base import BOS, EOS, IGNORE, PAD, UNK

CLASSIFY_METRICS: tuple[str, ...] = ("acc", "f1", "precision", "recall")
TRANSDUCE_METRICS: tuple[str, ...] = ("token_acc", "exact_match")
BLEU_METRICS: tuple[str, ...] = ("bleu", "bleu_tok")
METRIC_NAMES: tuple[str, ...] = (*CLASSIFY_METRICS, *TRANSDUCE_METRICS, *BLEU_METRICS)
# SentencePiece's word-boundary marker: target vocabularies whose pieces carry it (the bpe, punct
# and char tokenisers) are detokenised by concatenation, others by joining tokens with spaces.
WORD_MARK = "\u2581"


def _ids(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(pred ids, target) on the CPU; scores are reduced with argmax."""
    if pred.dim() == target.dim() + 1:  # scores -> ids
        pred = pred.argmax(dim=-1)
    return pred.detach().long().cpu(), target.detach().long().cpu()


def _scored(pred: Tensor, target: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(y_pred, y_true) class ids at the positions where ``target != IGNORE``, flattened."""
    pred, target = _ids(pred, target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    mask = target != IGNORE
    return pred[mask].numpy(), target[mask].numpy()


def classify_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Accuracy and macro F1, precision and recall over the positions where ``target != IGNORE``.

    ``target`` ``(N,)`` or ``(N, T)``; ``pred`` the same shape (ids) or with a trailing K (scores).
    The macro averages run over the classes present in ``target`` or ``pred`` (scikit-learn's
    default); a class never predicted has precision 0. With no scored position all are 0.
    """
    from sklearn.metrics import precision_recall_fscore_support  # heavy import, when scoring

    y_pred, y_true = _scored(pred, target)
    if y_true.size == 0:
        return dict.fromkeys(CLASSIFY_METRICS, 0.0)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    return {
        "acc": float((y_pred == y_true).mean()),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
    }


def _plain(value: Any) -> Any:
    """numpy scalars in nested dicts -> Python int/float (JSON-ready)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def classification_report(
    pred: Tensor, target: Tensor, labels: Sequence[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """Per-class precision, recall, F1 and support (scikit-learn's ``classification_report`` as a
    dict keyed by the class names ``labels``, id order, plus "accuracy", "macro avg" and
    "weighted avg") and the ``(K, K)`` confusion matrix of counts (row = true class, column =
    predicted class), over the positions where ``target != IGNORE``. Every class in ``labels``
    has its row, predicted or not, so the report's "macro avg" runs over all K classes where the
    ``f1``/``precision``/``recall`` metrics average over the classes that occur. ValueError when
    no position is scored."""
    from sklearn.metrics import classification_report as report
    from sklearn.metrics import confusion_matrix

    y_pred, y_true = _scored(pred, target)
    if y_true.size == 0:
        raise ValueError("classification_report: no scored position (every target is IGNORE)")
    ids = list(range(len(labels)))
    out = report(
        y_true,
        y_pred,
        labels=ids,
        target_names=[str(name) for name in labels],
        output_dict=True,
        zero_division=0,
    )
    matrix = confusion_matrix(y_true, y_pred, labels=ids)  # (K, K)
    return _plain(out), matrix


def _canonical(pred: Tensor, width: int) -> Tensor:
    """PAD after the first EOS, then right-pad with PAD / truncate to ``width`` columns."""
    is_eos = pred == EOS
    after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0  # strictly after first EOS
    pred = pred.masked_fill(after_eos, PAD)
    if pred.shape[1] < width:
        pred = torch.nn.functional.pad(pred, (0, width - pred.shape[1]), value=PAD)
    return pred[:, :width]


def transduce_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Token accuracy and exact match of predicted sequences against EOS-terminated targets.

    ``target`` ``(N, U)``: tokens, EOS, PAD. ``pred`` ``(N, U')`` ids (any U'; e.g. greedy
    decoding stopped early) or ``(N, U, V)`` scores. Tokens of ``pred`` after its first EOS do
    not count. ``token_acc``: the fraction of target positions up to and including EOS that
    ``pred`` matches. ``exact_match``: the fraction of rows whose prediction up to its EOS equals
    the target up to its EOS.
    """
    pred, target = _ids(pred, target)
    if pred.dim() != 2 or target.dim() != 2 or pred.shape[0] != target.shape[0]:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be (N, U') and (N, U)"
        )
    if target.shape[0] == 0:
        return {"token_acc": 0.0, "exact_match": 0.0}
    pred = _canonical(pred, target.shape[1])  # (N, U)
    mask = target != PAD
    hit = pred == target
    token_acc = float((hit & mask).sum()) / max(int(mask.sum()), 1)
    exact = float(hit.all(dim=1).float().mean())
    return {"token_acc": token_acc, "exact_match": exact}


def detokenize(ids: Sequence[int], itos: Sequence[str], pieces: bool | None = None) -> str:
    """Token ids up to the first EOS -> text (PAD and BOS skipped).

    ``pieces``: concatenate and turn WORD_MARK into spaces (SentencePiece-style vocabularies:
    punctuation goes back where it was, "▁Run" "!" -> "Run!", "▁Va" "▁!" -> "Va !") instead of
    joining with spaces; None = decide from ``itos``. Among pieces an unknown token (UNK) stands as
    a word of its own rather than gluing onto its neighbour, which would cost that word its
    BLEU match.
    """
    if pieces is None:
        pieces = uses_word_mark(itos)
    tokens: list[str] = []
    for i in ids:
        if i == EOS:
            break
        if i in (PAD, BOS):
            continue
        token = itos[i] if 0 <= i < len(itos) and i != UNK else "<unk>"
        tokens.append(WORD_MARK + token if pieces and token == "<unk>" else token)
    if pieces:
        return "".join(tokens).replace(WORD_MARK, " ").strip()
    return " ".join(tokens)


def uses_word_mark(itos: Sequence[str]) -> bool:
    return any(s.startswith(WORD_MARK) for s in itos)


def bleu(
    pred: Tensor, target: Tensor, itos: Sequence[str], references: Sequence[str] | None = None
) -> float:
    """Corpus BLEU-4 (sacrebleu: 13a tokenisation, exp smoothing) of detokenised text.

    ``pred`` ``(N, U')`` ids or ``(N, U, V)`` scores, cut at its first EOS and turned into text
    with ``itos`` (see ``detokenize``). The references are ``references`` (N raw sentences) when
    given, else ``target`` ``(N, U)`` decoded the same way.
    """
    import sacrebleu

    pred, target = _ids(pred, target)
    pieces = uses_word_mark(itos)
    hyps = [detokenize(row, itos, pieces) for row in pred.tolist()]
    if references is None:
        refs = [detokenize(row, itos, pieces) for row in target.tolist()]
    else:
        refs = [str(r) for r in references]
        if len(refs) != len(hyps):
            raise ValueError(f"bleu: {len(hyps)} predictions but {len(refs)} references")
    if not refs:
        return 0.0
    # Effective order only matters when the whole corpus has no n-grams of some order (e.g. all
    # sentences shorter than 4 tokens): standard BLEU-4 is then 0 whatever the output.
    score = sacrebleu.corpus_bleu(hyps, [refs], use_effective_order=True).score
    return min(100.0, float(score))  # a perfect corpus scores 100.00000000000004 in floating point


def compute_metrics(
    names: Sequence[str],
    pred: Tensor,
    target: Tensor,
    itos: Sequence[str] | None = None,
    references: Sequence[str] | None = None,
) -> dict[str, float]:
    """The metrics ``names`` (from METRIC_NAMES) of ``pred`` against ``target``; ``references``
    (one raw sentence per row) are ``bleu``'s (see the module docstring)."""
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"Unknown metric {unknown[0]!r}. Valid metrics: {', '.join(METRIC_NAMES)}")
    out: dict[str, float] = {}
    if any(n in CLASSIFY_METRICS for n in names):
        out.update(classify_metrics(pred, target))
    if any(n in TRANSDUCE_METRICS for n in names):
        out.update(transduce_metrics(pred, target))
    for name in BLEU_METRICS:
        if name not in names:
            continue
        if itos is None:
            raise ValueError(f"metric {name!r} needs the target vocabulary (TaskData.target_itos)")
        out[name] = bleu(pred, target, itos, references if name == "bleu" else None)
    return {n: out[n] for n in names}

"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from attnbench.tasks.base import EOS, IGNORE, PAD
from attnbench.tasks.base import UNK as UNK_ID
from attnbench.tasks.metrics import (
    METRIC_NAMES,
    bleu,
    classification_report,
    classify_metrics,
    compute_metrics,
    detokenize,
    transduce_metrics,
)

T = torch.tensor


def test_classify_per_sequence() -> None:
    # class 0: P 1, R 1 -> F 1; class 1: P 1/2, R 1 -> 2/3; class 2: P 1, R 1/2 -> 2/3.
    out = classify_metrics(T([0, 1, 1, 2]), T([0, 1, 2, 2]))
    assert out["acc"] == pytest.approx(0.75)
    assert out["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert out["precision"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert out["recall"] == pytest.approx((1 + 1 + 1 / 2) / 3)


def test_classify_per_position_ignores_positions_and_takes_scores() -> None:
    target = T([[IGNORE, 1, IGNORE], [0, IGNORE, 1]])
    pred = T([[5, 1, 5], [1, 0, 1]])  # the IGNORE positions would all be wrong
    out = classify_metrics(pred, target)
    # scored: (1,1) (1,0) (1,1): acc 2/3; class 0: P 0 R 0 -> 0; class 1: P 2/3 R 1 -> 0.8.
    assert out["acc"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(0.4)
    scores = torch.nn.functional.one_hot(pred.clamp(max=2), 3).float()  # (N, T, K)
    assert classify_metrics(scores, target) == out
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(0.5)
    assert classify_metrics(T([[1]]), T([[IGNORE]])) == dict.fromkeys(
        ("acc", "f1", "precision", "recall"), 0.0
    )


def test_transduce_hand_values() -> None:
    a, b, c = 4, 5, 6
    target = T([[a, b, c, EOS, PAD], [a, EOS, PAD, PAD, PAD], [b, b, EOS, PAD, PAD]])
    pred = T(
        [
            [a, b, c, EOS, a, a],  # exact; junk after EOS does not count; longer than target
            [a, a, EOS, PAD, PAD, PAD],  # 1 of 2 target positions right
            [b, EOS, b, EOS, PAD, PAD],  # stops early: b right, EOS at 1 wrong, 2 wrong
        ]
    )
    out = transduce_metrics(pred, target)
    assert out["token_acc"] == pytest.approx((4 + 1 + 1) / (4 + 2 + 3))
    assert out["exact_match"] == pytest.approx(1 / 3)
    short = T([[a, b], [a, EOS], [b, b]])  # no EOS where one is due
    out = transduce_metrics(short, target)
    assert out["token_acc"] == pytest.approx((2 + 2 + 2) / 9)
    assert out["exact_match"] == pytest.approx(1 / 3)
    scores = torch.nn.functional.one_hot(target, 8).float()  # (N, U, V)
    assert transduce_metrics(scores, target) == {"token_acc": 1.0, "exact_match": 1.0}


def test_bleu_hand_values() -> None:
    itos = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "c", "d", "e", "x"]
    ref = T([[4, 5, 6, 7, 8, EOS]])  # "a b c d e"
    assert bleu(ref, ref, itos) == pytest.approx(100.0)
    # "a b c d": every n-gram precision is 1, brevity penalty exp(1 - 5/4).
    hyp = T([[4, 5, 6, 7, EOS, 9]])
    assert bleu(hyp, ref, itos) == pytest.approx(100 * math.exp(1 - 5 / 4), abs=1e-6)
    assert bleu(T([[9, 9, 9, EOS]]), ref, itos) == pytest.approx(0.0)


def test_detokenize_word_pieces() -> None:
    itos = ["<pad>", "<bos>", "<eos>", "<unk>", "\u2581Va", "\u2581!", "\u2581Sal", "ut"]
    assert detokenize([1, 6, 7, 5, EOS, 4], itos) == "Salut !"
    words = ["<pad>", "<bos>", "<eos>", "<unk>", "Va", "!"]
    assert detokenize([4, 5, PAD, EOS], words) == "Va !"


def test_compute_metrics_dispatch_and_errors() -> None:
    target = T([0, 1, 1])
    assert compute_metrics(["f1", "acc"], T([0, 1, 0]), target) == {
        "f1": pytest.approx((2 / 3 + 2 / 3) / 2),
        "acc": pytest.approx(2 / 3),
    }
    itos = ["<pad>", "<bos>", "<eos>", "<unk>", "a"]
    seq = T([[4, EOS]])
    assert compute_metrics(["bleu", "exact_match"], seq, seq, itos) == {
        "bleu": pytest.approx(100.0),  # no 2-grams at all: only the orders present count
        "exact_match": 1.0,
    }
    with pytest.raises(ValueError, match="Unknown metric 'rouge'. Valid metrics: acc"):
        compute_metrics(["rouge"], target, target)
    with pytest.raises(ValueError, match="target_itos"):
        compute_metrics(["bleu"], seq, seq)


def test_precision_and_recall_are_metric_names_of_the_text_task() -> None:
    from attnbench.tasks import TASKS

    assert {"precision", "recall"} <= set(METRIC_NAMES)
    assert TASKS.get("text").metrics == ("acc", "f1", "precision", "recall")
    out = compute_metrics(["recall", "acc"], T([0, 0, 1]), T([0, 1, 1]))
    assert out == {"recall": pytest.approx(0.75), "acc": pytest.approx(2 / 3)}


def test_classification_report_and_confusion_matrix() -> None:
    # true 0 0 1 2 2 2, pred 0 1 1 2 2 0; class "none" (id 3) never occurs
    target = T([0, 0, 1, 2, 2, 2])
    scores = torch.nn.functional.one_hot(T([0, 1, 1, 2, 2, 0]), 4).float()  # (N, K)
    report, matrix = classification_report(scores, target, ["neg", "neu", "pos", "none"])
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert report["neg"] == {
        "precision": pytest.approx(0.5),
        "recall": pytest.approx(0.5),
        "f1-score": pytest.approx(0.5),
        "support": 2,
    }
    assert report["pos"]["precision"] == 1.0 and report["pos"]["recall"] == pytest.approx(2 / 3)
    assert report["none"]["support"] == 0 and report["accuracy"] == pytest.approx(4 / 6)
    assert {"macro avg", "weighted avg"} <= set(report)
    assert all(type(v) in (int, float) for v in report["neu"].values()), "JSON-ready"
    per_position, _ = classification_report(T([[0, 1, 1]]), T([[0, IGNORE, 1]]), ["a", "b"])
    assert per_position["accuracy"] == 1.0 and per_position["b"]["support"] == 1
    with pytest.raises(ValueError, match="no scored position"):
        classification_report(T([[1]]), T([[IGNORE]]), ["a", "b"])


def test_confusion_matrix_plot(tmp_path) -> None:
    from attnbench.analysis.plots import confusion_matrix_plot

    _, matrix = classification_report(T([0, 1, 1, 2]), T([0, 1, 2, 2]), ["a", "b", "c"])
    png = confusion_matrix_plot(matrix, ["a", "b", "c"], tmp_path / "plots" / "confusion.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="does not match"):
        confusion_matrix_plot(matrix, ["a", "b"], tmp_path / "bad.png")


def test_punct_tokens_detokenize_exactly_and_unk_stands_alone() -> None:
    from attnbench.tasks._tokenize import TokenizerSettings, fit, split

    settings = TokenizerSettings("punct", lowercase=False)
    assert split("Run!", settings) == ["\u2581Run", "!"]
    assert split("À l'aide !", settings) == ["\u2581À", "\u2581l", "'", "aide", "\u2581!"]
    texts = ["Run!", "Va !", "À l'aide !", "Arrête-toi, vite...", "  Hi\tthere . "]
    encoder = fit(texts, settings)
    for text, ids in zip(texts, encoder.encode(texts), strict=True):
        assert detokenize(ids, encoder.itos) == " ".join(text.split())
    [ids] = encoder.encode(["Va demain !"])  # "▁demain" unseen in training
    assert ids[1] == UNK_ID
    assert detokenize(ids, encoder.itos) == "Va <unk> !"  # not glued: "Va<unk> !"
    assert detokenize([4, 3, 5], ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"]) == "a <unk> b"

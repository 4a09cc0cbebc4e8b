"""Attention diagnostics: values on cases whose attention is known, then real backbones."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.analysis.plots import attention_heatmap
from attnbench.attention import ATTENTION
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import BackboneOutput, padding_mask
from attnbench.config.build import attention_factory
from attnbench.config.run_config import ComponentConfig
from attnbench.tasks import TASKS
from attnbench.tasks.base import PAD, Split, TaskData, TaskSpec
from attnbench.training.diagnostics import (
    HEATMAP_POOL,
    Sums,
    accumulate,
    attention_diagnostics,
    heatmap_examples,
    heatmap_indices,
)


def test_one_hot_weights_on_the_source_give_alignment_1_entropy_0() -> None:
    align = torch.tensor([[2, 0, 3]])  # (1, Tq)
    weights = F.one_hot(align, 4).float()  # (1, Tq, Tk)
    sums = Sums()
    accumulate(sums, weights, torch.ones(1, 3, dtype=torch.bool), align)
    assert sums.metrics() == {
        "attn/entropy": 0.0,
        "attn/alignment": 1.0,
        "attn/alignment_pm1": 1.0,
    }


def test_uniform_weights_give_entropy_log_tk() -> None:
    weights = torch.full((2, 3, 4), 0.25)
    sums = Sums()
    accumulate(
        sums, weights, torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.long)
    )
    m = sums.metrics()
    assert m["attn/entropy"] == pytest.approx(math.log(4))
    assert m["attn/alignment"] == pytest.approx(0.25)
    assert m["attn/alignment_pm1"] == pytest.approx(0.5)  # source 0: keys 0 and 1 exist


def test_one_position_off_scores_zero_exact_and_one_within_pm1() -> None:
    """A reverse-style anti-diagonal shifted by one (what a bidirectional encoder may learn):
    exact alignment 0, alignment within one position 1."""
    t = 6
    align = torch.arange(t - 1, -1, -1).unsqueeze(0)  # (1, Tq): reverse
    off = torch.where(align > 0, align - 1, align + 1)  # attends one position off everywhere
    weights = F.one_hot(off, t).float()  # (1, Tq, Tk)
    sums = Sums()
    accumulate(sums, weights, torch.ones(1, t, dtype=torch.bool), align)
    m = sums.metrics()
    assert m["attn/alignment"] == 0.0 and m["attn/alignment_pm1"] == 1.0
    two_off = F.one_hot((align + 2) % t, t).float()  # two positions off: outside the window
    sums = Sums()
    accumulate(sums, two_off, torch.ones(1, t, dtype=torch.bool), align)
    assert sums.metrics()["attn/alignment_pm1"] == 0.0


class KeyMatch(nn.Module):
    """A backbone whose queries match exactly one key each: query j is 60·e_{align[j]}, key i is
    e_i, so a real dot-product attention puts (numerically) all its mass on align[j]."""

    def __init__(self, align: Tensor) -> None:
        super().__init__()
        self.align = align
        self.attn = ATTENTION.get("dot")(align.shape[1], align.shape[1], align.shape[1])

    def forward(self, inputs: Tensor, targets: Tensor | None = None, need_weights: bool = False):
        b, t = inputs.shape
        keys = torch.eye(t).expand(b, t, t)  # (B, Tk, Tk): key i = e_i
        queries = 60.0 * F.one_hot(self.align[:b].clamp(min=0), t).float()  # (B, Tq, Tk)
        mask = padding_mask(inputs)[:, None, :]
        _, weights = self.attn(queries, keys, keys, mask=mask, need_weights=need_weights)
        return BackboneOutput(weights=weights)


def per_position_data(inputs: Tensor, align: Tensor | None) -> TaskData:
    spec = TaskSpec(
        kind="classify",
        vocab_size=10,
        max_len=inputs.shape[1],
        num_classes=2,
        target_per_position=True,
    )
    split = Split(inputs, torch.zeros_like(inputs), align)
    return TaskData(spec, split, split, split, primary_metric="acc")


def test_key_match_through_real_dot_attention() -> None:
    inputs = torch.tensor([[5, 6, 7, 8], [5, 6, 7, PAD]])  # (N, T); example 1 has padding
    align = torch.tensor([[-1, -1, 0, 1], [-1, 2, 1, -1]])  # only known rows count
    data = per_position_data(inputs, align)
    m = attention_diagnostics(KeyMatch(align), data, data.test)
    assert m is not None
    assert m["attn/alignment"] == pytest.approx(1.0, abs=1e-9)
    assert m["attn/alignment_pm1"] == pytest.approx(1.0, abs=1e-9)
    assert m["attn/entropy"] == pytest.approx(0.0, abs=1e-9)


def test_without_alignment_entropy_counts_real_query_rows_only() -> None:
    # rows 0 attend to key 0 (entropy 0); the other real rows spread over keys 0 and 1 (log 2)
    class Preset(nn.Module):
        def forward(
            self, inputs: Tensor, targets: Tensor | None = None, need_weights: bool = False
        ):
            w = torch.zeros(2, 3, 3)
            w[:, :, :2] = 0.5
            w[:, 0] = torch.tensor([1.0, 0.0, 0.0])
            w[1, 2] = torch.tensor([0.0, 0.0, 1.0])  # a padded query row: must not count
            return BackboneOutput(weights=w)

    inputs = torch.tensor([[5, 6, 7], [5, 6, PAD]])
    data = per_position_data(inputs, None)
    m = attention_diagnostics(Preset(), data, data.test)
    assert m is not None and "attn/alignment" not in m and "attn/alignment_pm1" not in m
    assert m["attn/entropy"] == pytest.approx(3 * math.log(2) / 5)  # 5 real rows, 3 of them log 2


def small(task: str, backbone: str, attention: str) -> tuple[nn.Module, TaskData]:
    task_params = {
        "assoc_recall": {"num_pairs": 4, "num_queries": 2, "num_keys": 8, "num_values": 4},
        "reverse": {"length": 6, "min_len": 3, "vocab": 4},
    }[task]
    data = TASKS.get(task)(**task_params, n_train=4, n_val=4, n_test=6).load(0)
    sizes = {
        "transformer": {"d_model": 16, "layers": 1, "decoder_layers": 1, "ffn_mult": 2},
        "seq2seq": {"embed_dim": 8, "hidden": 8},
        "rnn": {"embed_dim": 8, "hidden": 8},
    }
    torch.manual_seed(0)
    model = BACKBONES.get(backbone)(
        data.spec, attention_factory(ComponentConfig(attention)), **sizes[backbone]
    )
    return model, data


@pytest.mark.parametrize(
    ("task", "backbone", "attention"),
    [
        ("assoc_recall", "transformer", "dot"),
        ("assoc_recall", "rnn", "additive"),
        ("reverse", "seq2seq", "additive"),
        ("reverse", "transformer", "multihead"),
    ],
)
def test_real_backbones_give_bounded_values_and_a_heatmap(
    task: str, backbone: str, attention: str, tmp_path: Path
) -> None:
    model, data = small(task, backbone, attention)
    m = attention_diagnostics(model, data, data.test)
    assert m is not None
    tk = data.test.inputs.shape[1]
    assert 0.0 <= m["attn/entropy"] <= math.log(tk) + 1e-6
    assert 0.0 <= m["attn/alignment"] <= m["attn/alignment_pm1"] <= 1.0 + 1e-9
    examples = heatmap_examples(model, data, data.test)
    assert len(examples) == 3
    assert [ex.index for ex in examples] == heatmap_indices(data.test)
    for ex in examples:
        real = int(padding_mask(data.test.inputs[ex.index : ex.index + 1]).sum())
        assert ex.weights.shape[1] == real == len(ex.col_labels)
        assert ex.align is not None and int(ex.align.max()) < real
    png = attention_heatmap(examples, tmp_path / "attention.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_none_variant_has_no_diagnostics() -> None:
    model, data = small("reverse", "seq2seq", "none")
    assert attention_diagnostics(model, data, data.test) is None
    assert heatmap_examples(model, data, data.test) == []


def test_heatmap_shows_the_longest_of_a_fixed_sample() -> None:
    """The 3 longest real inputs among the first HEATMAP_POOL examples, longest first, ties in
    order; a longer example past the pool is not considered."""
    lengths = [2, 5, 3, 5, 1, 4] + [1] * (HEATMAP_POOL - 6) + [9]
    inputs = torch.zeros(len(lengths), 9, dtype=torch.long)  # (N, T)
    for row, n in enumerate(lengths):
        inputs[row, :n] = 5
    split = Split(inputs, torch.zeros(len(lengths), dtype=torch.long))
    assert heatmap_indices(split) == [1, 3, 5]
    assert heatmap_indices(split, n=1, pool=len(lengths)) == [len(lengths) - 1]
    short = Split(inputs[:2], torch.zeros(2, dtype=torch.long))
    assert heatmap_indices(short) == [1, 0]


def test_heatmap_examples_follow_the_rule_on_a_real_backbone() -> None:
    model, data = small("reverse", "seq2seq", "additive")  # lengths 3..6
    lengths = padding_mask(data.test.inputs).sum(-1)
    examples = heatmap_examples(model, data, data.test)
    shown = [int(lengths[ex.index]) for ex in examples]
    assert shown == sorted(shown, reverse=True)
    assert shown[0] == int(lengths.max())
    assert [len(ex.col_labels) for ex in examples] == shown

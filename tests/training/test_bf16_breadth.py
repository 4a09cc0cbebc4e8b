"""bf16 autocast on the CPU trains every attention variant on every backbone (issue 13).

Each (backbone, variant) pair trains 2 steps with the smoke trainer (conf/trainer/smoke.yaml:
batch 16, one evaluation batch, a loss logged every step) in ``trainer.precision=bf16`` on the
CPU, then validates and tests as a run does. Backbones and variants come from globbing conf/, so
a new YAML is covered here too; a backbone that classifies trains on associative recall (the
Transformer and the rnn), one that only transduces on copy (seq2seq). Tasks and the known
backbones are shrunk to a few batches and width 16 (as tests/training/conftest.py's cases).

The default run trains a covering subset (variant i on backbone i mod 3: every variant and every
backbone once); ``-m slow`` trains all pairs.

On CPUs without bfloat16 instructions, oneDNN has no bfloat16 LSTM, and PyTorch sends a batch of
equal lengths (associative recall's) there under autocast: "could not create a primitive
descriptor for the LSTM forward propagation primitive". The recurrent backbones therefore run
their recurrences in float32 under autocast (``backbones/rnn.py``,
``recurrence_in_float32``); ``test_rnn_lstm_trains_in_bf16`` checks the LSTM as the YAML has
it, on such a CPU or not.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from attnbench.training.loop import fit
from tests.conftest import CONF
from tests.training.conftest import Recorder, case

TASKS = {
    "classify": (
        "task=assoc_recall",
        "task.n_train=64",
        "task.n_val=32",
        "task.n_test=32",
        "task.num_pairs=8",
        "task.num_queries=4",
    ),
    "transduce": (
        "task=copy",
        "task.length=6",
        "task.n_train=64",
        "task.n_val=32",
        "task.n_test=32",
    ),
}
SMALL = {
    "transformer": ("backbone.d_model=16", "backbone.layers=1", "backbone.decoder_layers=1"),
    "lm": ("backbone.d_model=16", "backbone.layers=1"),
    "rnn": ("backbone.embed_dim=16", "backbone.hidden=16"),
    "seq2seq": ("backbone.embed_dim=16", "backbone.hidden=16"),
}
STEPS = 2


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _backbone_yaml(backbone: str) -> dict:
    return yaml.safe_load((CONF / "backbone" / f"{backbone}.yaml").read_text())


def _overrides(backbone: str, attention: str) -> tuple[str, ...]:
    from attnbench.backbones import BACKBONES

    kinds = BACKBONES.get(_backbone_yaml(backbone)["name"]).kinds
    task = TASKS["classify" if "classify" in kinds else "transduce"]
    return (
        *task,
        f"backbone={backbone}",
        *SMALL.get(backbone, ()),
        f"attention={attention}",
        "trainer=smoke",
    )


def refused(backbone: str, attention: str) -> bool:
    """The backbone's settings rule the variant out (e.g. lm: lowrank has no causal form)."""
    from attnbench.attention import ATTENTION
    from attnbench.backbones import BACKBONES

    node = _backbone_yaml(backbone)
    return BACKBONES.get(node.pop("name")).incompatible(ATTENTION.get(attention), node) is not None


def _pairs() -> list:
    backbones, variants = _names("backbone"), _names("attention")
    out = []
    for i, attention in enumerate(variants):
        for j, backbone in enumerate(backbones):
            if refused(backbone, attention):
                continue
            marks = () if i % len(backbones) == j else pytest.mark.slow
            name = f"{backbone}-{attention}"
            out.append(pytest.param(_overrides(backbone, attention), marks=marks, id=name))
    return out


def train_bf16(overrides: tuple[str, ...]) -> None:
    """Two bf16 steps, then validation and test: everything finite, weights float32 and moved."""
    c = case(overrides, max_steps=STEPS, precision="bf16", device="cpu")
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    sink = Recorder()
    result = fit(c.model, c.data, c.trainer, c.seed, sink)

    assert result.steps == STEPS
    losses = [m["train/loss"] for _, m in sink.logged if "train/loss" in m]
    assert len(losses) == STEPS and all(math.isfinite(x) and x > 0 for x in losses), losses
    assert math.isfinite(result.val["loss"]) and math.isfinite(result.test["loss"])
    assert all(p.dtype == torch.float32 for p in c.model.parameters())  # autocast, not casting
    assert all(torch.isfinite(v).all() for v in result.best_state.values() if v.is_floating_point())
    changed = [k for k, v in c.model.state_dict().items() if not torch.equal(before[k], v)]
    assert changed, "two optimiser steps changed no weight"


@pytest.mark.parametrize("overrides", _pairs())
def test_variant_trains_in_bf16_on_the_cpu(overrides: tuple[str, ...]) -> None:
    train_bf16(overrides)


def test_rnn_lstm_trains_in_bf16() -> None:
    """The rnn backbone as its YAML has it (an LSTM), on equal-length sequences."""
    assert _backbone_yaml("rnn")["cell"] == "lstm"
    train_bf16(_overrides("rnn", "scaled"))


def test_recurrences_run_in_float32_under_autocast() -> None:
    """What makes the LSTM above run: the recurrence leaves autocast, its inputs float32; outside
    autocast nothing changes."""
    from attnbench.backbones.rnn import recurrence_in_float32

    x = torch.randn(2, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with recurrence_in_float32(x.bfloat16()) as inner:
            assert inner.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            lstm = torch.nn.LSTM(4, 4, batch_first=True)
            out, _ = lstm(inner)
            assert out.dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")
    with recurrence_in_float32(x) as same:
        assert same is x

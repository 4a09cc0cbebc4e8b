"""Every attention variant under the masks the Transformer really builds.

The decoder's self-attention mask is causal & key padding (plus "see yourself"): the kernelised
variants (linear, lowrank) must recognise it and run their prefix-sum form without letting a
future token leak in, and ``local`` must combine its window with it. Greedy decoding re-runs the
decoder on every prefix, so it must compute what teacher forcing computes.

Notation: B batch, T source length, U target length, V target vocabulary, K classes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnbench.backbones import BACKBONES
from attnbench.tasks.base import EOS, PAD, TaskSpec
from tests.backbones.helpers import VARIANTS, Factory

VOCAB, T, V, U, K = 12, 11, 10, 9, 3
SIZES = {"d_model": 16, "layers": 2, "decoder_layers": 2, "ffn_mult": 2, "max_len": 32}
# Settings that make short test sequences take the chunked / blocked fast paths.
SMALL = {"linear": {"chunk": 3}, "lowrank": {"chunk": 3}, "local": {"window": 2, "block": 3}}
CASES = [
    *VARIANTS,
    *(
        pytest.param(p.values[0], {**p.values[1], **SMALL[p.values[0]]}, id=f"{p.id}-small")
        for p in VARIANTS
        if p.values[0] in SMALL
    ),
]


def transduce_spec() -> TaskSpec:
    return TaskSpec(
        kind="transduce", vocab_size=VOCAB, max_len=T, target_vocab_size=V, max_target_len=U
    )


def build(name: str, params: dict, spec: TaskSpec | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = BACKBONES.get("transformer")(spec or transduce_spec(), Factory(name, params), **SIZES)
    return model.eval()


def batch(b: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded sources (B, T) and targets (B, U): the source reversed, EOS, PAD."""
    g = torch.Generator().manual_seed(seed)
    lengths = [T - 3, 3, 1, 6][:b]
    x = torch.full((b, T), PAD)
    y = torch.full((b, U), PAD)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(4, V, (n,), generator=g)
        y[i, :n] = x[i, :n].flip(0)
        y[i, n] = EOS
    return x, y


@pytest.mark.parametrize(("name", "params"), CASES)
def test_decoder_sees_no_future_target(name: str, params: dict) -> None:
    model = build(name, params)
    x, y = batch()
    changed = y.clone()
    changed[:, 5:] = torch.randint(4, V, (4, U - 5), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        a, b = model(x, y).logits, model(x, changed).logits  # (B, U, V)
    # Position u reads BOS + targets[:u]: positions 0..5 cannot depend on targets[5:].
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_generate_computes_what_teacher_forcing_computes(name: str, params: dict) -> None:
    model = build(name, params)
    x, _ = batch()
    tokens = model.generate(x, max_len=U).tokens  # (B, U')
    with torch.no_grad():
        forced = model(x, tokens).logits.argmax(-1)  # (B, U')
    after_eos = (tokens == EOS).long().cumsum(1) - (tokens == EOS).long() > 0
    assert torch.all((forced == tokens) | after_eos)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_fast_path_equals_weights_path(name: str, params: dict) -> None:
    model = build(name, params)
    x, y = batch()
    with torch.no_grad():
        fast, slow = model(x, y), model(x, y, need_weights=True)
    torch.testing.assert_close(fast.logits, slow.logits, atol=1e-5, rtol=0)
    assert fast.weights is None


@pytest.mark.parametrize(("name", "params"), CASES)
def test_appending_pads_changes_nothing(name: str, params: dict) -> None:
    model = build(name, params)
    x, y = batch()
    with torch.no_grad():
        a = model(x, y).logits
        b = model(torch.cat([x, torch.full((4, 5), PAD)], dim=1), y).logits
        c = model(x, torch.cat([y, torch.full((4, 4), PAD)], dim=1)).logits[:, :U]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_encoder_classifier_trains(name: str, params: dict) -> None:
    spec = TaskSpec(kind="classify", vocab_size=VOCAB, max_len=T, num_classes=K)
    model = build(name, params, spec).train()
    x, _ = batch()
    target = x[:, 0] % K
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x).logits, target)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses

"""The seq2seq backbone (GRU encoder-decoder) with every attention variant in conf/attention."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from attnbench.attention import ATTENTION
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import padding_mask
from attnbench.tasks.base import EOS, PAD, TaskSpec
from tests.backbones.helpers import VARIANTS, Factory

CONF = Path(__file__).resolve().parents[2] / "conf"
VOCAB, T, V, U = 12, 7, 10, 8
SIZES = {"embed_dim": 8, "hidden": 8}  # decoder width 16: 1, 2, 4 or 8 heads all divide it
SPEC = TaskSpec(
    kind="transduce", vocab_size=VOCAB, max_len=T, target_vocab_size=V, max_target_len=U
)


def build(name: str, params: dict, **kw) -> tuple[nn.Module, Factory]:
    torch.manual_seed(0)
    factory = Factory(name, params)
    return BACKBONES.get("seq2seq")(SPEC, factory, **{**SIZES, **kw}), factory


def batch(b: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded sources (B, T) and targets (B, U): the source reversed, EOS, PAD."""
    g = torch.Generator().manual_seed(seed)
    lengths = [T, 3, 1, T - 1, 5, 2][:b] + [T] * max(0, b - 6)
    x = torch.full((b, T), PAD)
    y = torch.full((b, U), PAD)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(4, V, (n,), generator=g)
        y[i, :n] = x[i, :n].flip(0)
        y[i, n] = EOS
    return x, y


@pytest.mark.parametrize("heads", [1, 2, 4, 8])
def test_default_sizes_suit_common_head_counts(heads: int) -> None:
    if "multihead" not in ATTENTION.names():
        pytest.skip("multihead attention not registered")
    BACKBONES.get("seq2seq")(SPEC, Factory("multihead", {"heads": heads}))


@pytest.mark.parametrize("name,params", VARIANTS)
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
def test_teacher_forcing_shapes_and_weights(name: str, params: dict, bidirectional: bool) -> None:
    model, _ = build(name, params, bidirectional=bidirectional, layers=2)
    model.eval()
    x, y = batch()
    out = model(x, y, need_weights=True)
    assert out.logits.shape == (4, U, V)
    assert model(x, y).weights is None
    if ATTENTION.get(name).baseline:
        assert out.weights is None
        return
    w = out.weights
    assert w.shape == (4, U, T)
    pads = ~padding_mask(x)[:, None, :].expand_as(w)
    assert torch.all(w.masked_select(pads) == 0), "weight on a source PAD"
    torch.testing.assert_close(w.sum(-1), torch.ones(4, U), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,params", VARIANTS)
def test_generate_shapes_and_consistency(name: str, params: dict) -> None:
    model, _ = build(name, params)
    model.eval()
    x, _ = batch()
    gen = model.generate(x, need_weights=True)
    tokens = gen.tokens
    assert tokens.dtype == torch.long and tokens.shape[0] == 4 and 1 <= tokens.shape[1] <= U
    assert model.generate(x, max_len=3).tokens.shape[1] <= 3
    # After the first EOS only PAD.
    after_eos = (tokens == EOS).long().cumsum(1) - (tokens == EOS).long() > 0
    assert torch.all(tokens[after_eos] == PAD)
    # Greedy decoding computes what teacher forcing on its own output computes.
    with torch.no_grad():
        forced = model(x, tokens, need_weights=True)
    agree = forced.logits.argmax(-1) == tokens
    assert torch.all(agree | after_eos)
    if ATTENTION.get(name).baseline:
        assert gen.weights is None
        return
    w = gen.weights
    assert w.shape == (*tokens.shape, T)
    assert torch.all(w[after_eos] == 0)
    assert torch.all(w.masked_select(~padding_mask(x)[:, None, :].expand_as(w)) == 0)
    live = ~after_eos
    torch.testing.assert_close(w[live], forced.weights[live], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,params", VARIANTS)
def test_appending_source_pads_changes_nothing(name: str, params: dict) -> None:
    model, _ = build(name, params, layers=2)
    model.eval()
    x, y = batch()
    longer = torch.cat([x, torch.full((4, 4), PAD)], dim=1)
    a, b = model(x, y, need_weights=True), model(longer, y, need_weights=True)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    ga, gb = model.generate(x, need_weights=True), model.generate(longer, need_weights=True)
    assert torch.equal(ga.tokens, gb.tokens)
    if ga.weights is not None:
        torch.testing.assert_close(ga.weights, gb.weights[..., :T], atol=1e-5, rtol=0)
        assert torch.all(gb.weights[..., T:] == 0)


@pytest.mark.parametrize("name,params", VARIANTS)
def test_attention_module_is_called_unless_baseline(name: str, params: dict) -> None:
    model, factory = build(name, params)
    calls: list[str] = []
    for module in factory.built:
        module.register_forward_pre_hook(lambda *_: calls.append("called"))
    x, y = batch()
    model(x, y, need_weights=True)
    model.generate(x, need_weights=True)
    assert bool(calls) is not ATTENTION.get(name).baseline


@pytest.mark.parametrize("name,params", VARIANTS)
def test_learns_a_toy_batch(name: str, params: dict) -> None:
    model, _ = build(name, params)
    x, y = batch(b=16, seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(30):
        logits = model(x, y).logits
        loss = nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_forward_needs_targets() -> None:
    model, _ = build("none", {})
    with pytest.raises(ValueError, match="generate"):
        model(batch()[0])


def test_multichannel_sources() -> None:
    model, _ = build("scaled", {}) if "scaled" in ATTENTION.names() else (None, None)
    if model is None:
        pytest.skip("scaled attention not registered")
    x, y = batch()
    x2 = torch.stack([x, x.flip(1) * (x != PAD)], dim=-1)  # (B, T, 2), PAD in channel 0
    out = model.eval()(x2, y, need_weights=True)
    assert out.logits.shape == (4, U, V) and out.weights.shape == (4, U, T)
    assert model.generate(x2).tokens.shape[0] == 4


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"dropout": 1.0}, "dropout"),
        ({"hidden": 0}, "hidden"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"layers": -1}, "layers"),
    ],
)
def test_bad_values_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BACKBONES.get("seq2seq")(SPEC, Factory("none", {}), **kw)


def test_classify_spec_is_refused() -> None:
    classify = TaskSpec(kind="classify", vocab_size=VOCAB, max_len=T, num_classes=2)
    with pytest.raises(ValueError, match="transduce"):
        BACKBONES.get("seq2seq")(classify, Factory("none", {}))

"""The rnn backbone (BiLSTM/GRU + attention pooling) with every variant in conf/attention."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
from torch import nn

from attnbench.attention import ATTENTION
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import padding_mask
from attnbench.tasks.base import PAD, TaskSpec
from tests.backbones.helpers import VARIANTS, Factory

CONF = Path(__file__).resolve().parents[2] / "conf"
VOCAB, T, K = 12, 9, 3
SIZES = {"embed_dim": 8, "hidden": 8}  # 2*hidden = 16: 1, 2, 4 or 8 heads all divide it


def spec(per_position: bool = False, channels: int = 1) -> TaskSpec:
    return TaskSpec(
        kind="classify",
        vocab_size=VOCAB,
        max_len=T,
        num_classes=K,
        target_per_position=per_position,
        channels=channels,
    )


def build(name: str, params: dict, per_position: bool = False, **kw) -> tuple[nn.Module, Factory]:
    torch.manual_seed(0)
    factory = Factory(name, params)
    model = BACKBONES.get("rnn")(spec(per_position), factory, **{**SIZES, **kw})
    return model, factory


def batch(b: int = 4, t: int = T, seed: int = 1) -> torch.Tensor:
    """(B, T) right-padded tokens with lengths t, t-3, 1, ... (every row has a real token)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, VOCAB, (b, t), generator=g)
    lengths = torch.tensor([t, t - 3, 1, t - 1, 2, 5][:b] + [t] * max(0, b - 6))
    return x.masked_fill(torch.arange(t)[None] >= lengths[:, None], PAD)


@pytest.mark.parametrize("heads", [1, 2, 4, 8])
def test_default_sizes_suit_common_head_counts(heads: int) -> None:
    if "multihead" not in ATTENTION.names():
        pytest.skip("multihead attention not registered")
    BACKBONES.get("rnn")(spec(), Factory("multihead", {"heads": heads}))


@pytest.mark.parametrize("name,params", VARIANTS)
@pytest.mark.parametrize("per_position", [False, True], ids=["per_seq", "per_pos"])
def test_shapes_and_weights(name: str, params: dict, per_position: bool) -> None:
    model, _ = build(name, params, per_position)
    model.eval()
    x = batch()
    out = model(x, need_weights=True)
    assert out.logits.shape == ((4, T, K) if per_position else (4, K))
    assert model(x).weights is None
    if ATTENTION.get(name).baseline:
        assert out.weights is None
        return
    mask = padding_mask(x)
    assert out.weights.shape == ((4, T, T) if per_position else (4, 1, T))
    w = out.weights
    assert torch.all(w.masked_select(~mask[:, None, :].expand_as(w)) == 0), "weight on a PAD"
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:2]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,params", VARIANTS)
@pytest.mark.parametrize("per_position", [False, True], ids=["per_seq", "per_pos"])
def test_appending_pads_changes_nothing(name: str, params: dict, per_position: bool) -> None:
    model, _ = build(name, params, per_position, layers=2)
    model.eval()
    x = batch()
    longer = torch.cat([x, torch.full((4, 5), PAD)], dim=1)
    with torch.no_grad():
        a, b = model(x).logits, model(longer).logits
    if per_position:
        b = b[:, :T]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,params", VARIANTS)
def test_attention_module_is_called_unless_baseline(name: str, params: dict) -> None:
    calls: list[str] = []
    for per_position in (False, True):
        model, factory = build(name, params, per_position)
        for module in factory.built:
            module.register_forward_pre_hook(lambda *_: calls.append("called"))
        model(batch(), need_weights=True)
    assert bool(calls) is not ATTENTION.get(name).baseline


@pytest.mark.parametrize("name,params", VARIANTS)
@pytest.mark.parametrize("per_position", [False, True], ids=["per_seq", "per_pos"])
def test_learns_a_toy_batch(name: str, params: dict, per_position: bool) -> None:
    model, _ = build(name, params, per_position, dropout=0.0, cell="gru")
    x = batch(b=16, seed=2)
    # per sequence: the class of the first token; per position: each token's class.
    y = (x % K).masked_fill(x == PAD, -100) if per_position else x[:, 0] % K
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits = model(x).logits
        loss = nn.functional.cross_entropy(logits.reshape(-1, K), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_multichannel_inputs() -> None:
    torch.manual_seed(0)
    factory = Factory("additive", {}) if "additive" in ATTENTION.names() else None
    if factory is None:
        pytest.skip("additive attention not registered")
    model = BACKBONES.get("rnn")(spec(channels=2), factory, **SIZES).eval()
    x = torch.stack([batch(), batch(seed=3)], dim=-1)  # (B, T, 2)
    x[..., 1] = x[..., 1].masked_fill(x[..., 0] == PAD, PAD)
    out = model(x, need_weights=True)
    assert out.logits.shape == (4, K)
    assert torch.all(out.weights[..., T - 2 :][2] == 0)  # row 2 has one real token


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"hidden": 0}, "hidden"),
        ({"embed_dim": -4}, "embed_dim"),
        ({"layers": 0}, "layers"),
        ({"cell": "rnn"}, "cell"),
    ],
)
def test_bad_values_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BACKBONES.get("rnn")(spec(), Factory("none", {}), **kw)


def test_transduce_spec_is_refused() -> None:
    transduce = TaskSpec(kind="transduce", vocab_size=VOCAB, max_len=T, target_vocab_size=VOCAB)
    with pytest.raises(ValueError, match="classify"):
        BACKBONES.get("rnn")(transduce, Factory("none", {}))


def test_cell_choices_match_annotation() -> None:
    hints = typing.get_type_hints(BACKBONES.get("rnn").__init__)
    assert typing.get_args(hints["cell"]) == ("lstm", "gru")

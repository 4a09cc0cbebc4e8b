"""The positional schemes (attnbench/backbones/positions.py) against their papers' formulas, and
as the ``positions`` key of the Transformer backbones.

RoPE against a direct complex-number computation (Su et al. 2021 §3.2: position m multiplies the
pair (x_2k, x_2k+1), read as a complex number, by e^{i m θ_k}); ALiBi's slopes against the values
the paper gives (Press et al. 2022 §3: 8 heads -> 1/2 ... 1/256) and its authors' rule for other
head counts, worked out by hand; sinusoidal against Vaswani et al. 2017 §3.5 evaluated with
``math``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnbench.attention import ATTENTION
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import CONTEXT_ARGS
from attnbench.backbones.positions import (
    SCHEMES,
    Learned,
    alibi_bias,
    alibi_slopes,
    check_length,
    rope,
    sinusoid,
)
from attnbench.registry import check_params
from attnbench.tasks.base import PAD, TaskSpec

# --- RoPE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [8, 7], ids=["even", "odd"])
def test_rope_is_a_complex_rotation(d: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, d, generator=g, dtype=torch.float64)  # (B, H, T, Dh)
    pos = torch.tensor([[0, 1, 2, 7, 30], [3, 4, 5, 6, 1000]])  # (B, T)
    got = rope(x, pos)
    pairs = d // 2
    theta = torch.tensor([10000.0 ** (-2 * k / d) for k in range(pairs)], dtype=torch.float64)
    z = torch.view_as_complex(x[..., : 2 * pairs].reshape(2, 3, 5, pairs, 2).contiguous())
    turn = torch.polar(torch.ones(2, 1, 5, pairs, dtype=torch.float64),
                       pos[:, None, :, None].double() * theta)  # e^{i m θ_k}
    want = torch.view_as_real(z * turn).flatten(-2)
    if d % 2:
        want = torch.cat([want, x[..., -1:]], dim=-1)  # the odd feature is not rotated
    torch.testing.assert_close(got, want, atol=1e-9, rtol=0)


def test_rope_scores_depend_on_the_distance_only() -> None:
    """⟨R_m q, R_n k⟩ = ⟨R_{m+s} q, R_{n+s} k⟩ (Su et al. 2021 eq. 11)."""
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 16, generator=g), torch.randn(1, 1, 16, generator=g)
    for m, n, s in [(3, 1, 10), (0, 5, 123), (40, 40, 7)]:
        a = rope(q, torch.tensor([[m]])) @ rope(k, torch.tensor([[n]])).transpose(-2, -1)
        b = rope(q, torch.tensor([[m + s]])) @ rope(k, torch.tensor([[n + s]])).transpose(-2, -1)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


# --- ALiBi ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heads", "exponents"),
    [
        (8, [1, 2, 3, 4, 5, 6, 7, 8]),  # the paper's example: 1/2^1 ... 1/2^8
        (16, [k / 2 for k in range(1, 17)]),  # starts at 2^(-8/16) = 2^-0.5
        (4, [2, 4, 6, 8]),
        (1, [8]),
        (6, [2, 4, 6, 8, 1, 3]),  # 4 heads' slopes, then every other of 8 heads' (2^-1, 2^-3)
        (12, [1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5]),  # 8 heads', then 16 heads' odd ones
    ],
)
def test_alibi_slopes_follow_the_paper(heads: int, exponents: list[float]) -> None:
    assert alibi_slopes(heads) == pytest.approx([2.0 ** -e for e in exponents], rel=1e-12)


def test_alibi_bias_is_minus_slope_times_distance() -> None:
    """Row i of head h's causal bias is m_h·[-i, ..., -1, 0] (Press et al. 2022 Fig. 3)."""
    pos = torch.arange(5)
    bias = alibi_bias(pos[:, None] - pos[None, :], heads=2)  # (H, T, T)
    m = alibi_slopes(2)
    for h in range(2):
        for i in range(5):
            want = torch.tensor([-m[h] * (i - j) for j in range(i + 1)])
            torch.testing.assert_close(bias[h, i, : i + 1], want, atol=1e-7, rtol=0)


# --- sinusoidal -------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [6, 5])
def test_sinusoidal_follows_the_formula(d: int) -> None:
    pos = torch.tensor([[0, 1, 17, 511]])
    got = sinusoid(pos, d)  # (1, T, D)
    for t, p in enumerate(pos[0].tolist()):
        for c in range(d):
            angle = p / 10000 ** ((c - c % 2) / d)  # 2i = c rounded down to even
            want = math.sin(angle) if c % 2 == 0 else math.cos(angle)
            assert got[0, t, c].item() == pytest.approx(want, abs=2e-5)


# --- as a backbone key ------------------------------------------------------------------------

SPEC = TaskSpec(kind="transduce", vocab_size=12, max_len=7, target_vocab_size=11,
                max_target_len=6)


def make(name: str) -> object:
    return lambda dq, dk, dv: ATTENTION.get(name)(dq, dk, dv)


def test_learned_is_the_table_the_transformer_always_had() -> None:
    """positions=learned (the default) keeps the state-dict key ``pos.weight`` and its shape, so
    checkpoints and seeded runs from before the key existed are unchanged."""
    model = BACKBONES.get("transformer")(SPEC, make("scaled"), d_model=16, max_len=40)
    assert isinstance(model.pos, Learned) and isinstance(model.pos, nn.Embedding)
    assert model.state_dict()["pos.weight"].shape == (40, 16)
    assert {s: SCHEMES[s].bounded for s in SCHEMES} == {
        "learned": True, "sinusoidal": False, "rope": False, "alibi": False, "none": False}


@pytest.mark.parametrize("backbone", ["transformer", "lm"])
def test_only_learned_positions_bound_the_length(backbone: str) -> None:
    cls = BACKBONES.get(backbone)
    for scheme in SCHEMES:
        limit = cls.length_limit({"max_len": 16, "positions": scheme})
        assert limit == (("max_len", 16) if scheme == "learned" else None)
    with pytest.raises(ValueError, match="'backbone.max_len' = 8 .*positions=learned"):
        check_length("learned", 9, 8)
    check_length("alibi", 10_000, 8)  # no table, no limit
    with pytest.raises(ValueError, match="longer than .*'backbone.max_len' = 6"):
        cls(SPEC, make("scaled"), d_model=16, max_len=6)
    cls(SPEC, make("scaled"), d_model=16, max_len=6, positions="rope")  # builds


def test_an_unknown_scheme_is_refused_naming_the_schemes() -> None:
    problems = check_params(BACKBONES.get("lm"), {"positions": "xpos"}, "backbone", CONTEXT_ARGS)
    assert problems == ["'backbone.positions' = 'xpos' should be one of 'learned', "
                        "'sinusoidal', 'rope', 'alibi', 'none'"]


@pytest.mark.parametrize(
    ("scheme", "variant", "fact"),
    [("rope", "additive", "accepts_rotary"), ("rope", "linear", "accepts_rotary"),
     ("alibi", "linear", "accepts_bias")],
)
@pytest.mark.parametrize("backbone", ["transformer", "lm"])
def test_a_scheme_a_variant_cannot_take_is_refused(backbone: str, scheme: str, variant: str,
                                                   fact: str) -> None:
    cls = BACKBONES.get(backbone)
    message = cls.incompatible(ATTENTION.get(variant), {"positions": scheme})
    assert message is not None and "\n" not in message
    assert f"positions={scheme}" in message and f"{fact} is False" in message
    ok = message.split("Compatible variants: ")[1].split(", ")
    takers = {n for n in ATTENTION.names() if getattr(ATTENTION.get(n), fact)}
    assert variant not in ok and takers <= set(ok) and "none" in ok
    assert "backbone.positions=learned|sinusoidal|none" in message
    assert cls.incompatible(ATTENTION.get(variant), {"positions": "sinusoidal"}) is None


@pytest.mark.parametrize("scheme", list(SCHEMES))
@pytest.mark.parametrize("backbone", ["transformer", "lm"])
def test_every_scheme_builds_and_ignores_appended_padding(backbone: str, scheme: str) -> None:
    torch.manual_seed(0)
    model = BACKBONES.get(backbone)(SPEC, make("multihead"), d_model=16,
                                    positions=scheme).eval()
    x = torch.randint(4, 12, (2, 7))
    x[1, 4:] = PAD
    y = torch.randint(4, 11, (2, 6))
    padded = torch.cat([x, torch.full((2, 3), PAD)], dim=1)
    torch.testing.assert_close(model(padded, y).logits, model(x, y).logits, atol=1e-5, rtol=0)
    params = {n for n, _ in model.named_parameters()}
    assert ("pos.weight" in params) == (scheme == "learned")

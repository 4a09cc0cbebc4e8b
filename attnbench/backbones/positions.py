"""Positional schemes, the ``positions`` key of the Transformer backbones (``transformer``, ``lm``).

Notation: B batch, T positions, D width (``d_model``), Dh the rotated width (a head's), H heads,
p a position, i a query and j a key position.

- ``learned``: a learned vector per position, up to ``max_len``, added to the token embedding
  (Vaswani et al. 2017 §3.5, the learned variant of Gehring et al. 2017);
- ``sinusoidal``: PE(p, 2k) = sin(p / 10000^(2k/D)), PE(p, 2k+1) = cos(p / 10000^(2k/D)), added
  (Vaswani et al. 2017 §3.5);
- ``rope``: inside attention, queries and keys rotated pairwise by p·θ_k, θ_k = 10000^(-2k/Dh)
  (Su et al. 2021, RoFormer §3.4 eq. 34);
- ``alibi``: inside attention, −m_h·|i − j| added to head h's logits, m_h geometric in h (Press
  et al. 2022 §3);
- ``none``: nothing; order comes from the causal mask alone (Haviv et al. 2022).

A scheme that acts inside attention declares the attention fact a variant needs to take it
(``needs``: ``accepts_rotary`` or ``accepts_bias``); ``refusal`` names what works when a variant
does not declare it. Only ``learned`` has a length limit (its table of ``max_len`` rows); the
others compute any position. ALiBi's bias uses |i − j|: in a causal model j ≤ i and it is the
paper's −m·(i − j); in an encoder it is the symmetric form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from attnbench.attention.causal import Positions

SCHEMES: dict[str, type[PositionScheme]] = {}


class PositionScheme:
    """The facts of a scheme; each scheme is also an ``nn.Module`` built as ``Cls(d_model,
    max_len)`` and registered by its ``name``."""

    name: ClassVar[str]
    reference: ClassVar[str]
    needs: ClassVar[str | None] = None  # the attention fact a variant must declare to take it
    acts: ClassVar[str] = ""  # what it does inside attention, for the refusal
    bounded: ClassVar[bool] = False  # True: one row per position up to max_len (learned)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        SCHEMES[cls.name] = cls

    def embed(self, pos: Tensor) -> Tensor | None:
        """(B | 1, T) positions -> (B | 1, T, D) added to the token embeddings; None: nothing."""
        return None

    def inside(self, query: Tensor, key: Tensor) -> Positions | None:
        """What the scheme does inside attention for queries and keys at these positions
        ((B | 1, Tq), (B | 1, Tk)); None: nothing."""
        return None


class Learned(nn.Embedding, PositionScheme):
    name = "learned"
    reference = ("Vaswani et al. 2017, §3.5: learned positional embeddings (Gehring et al. 2017) "
                 "added to the input embeddings")
    bounded = True

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__(max_len, d_model)  # the Transformer's `pos` table, as it always was

    def embed(self, pos: Tensor) -> Tensor:
        return self(pos)  # (B | 1, T, D)


def sinusoid(pos: Tensor, d: int) -> Tensor:
    """Vaswani et al. 2017 §3.5: (..., T) positions -> (..., T, d), PE(p, 2k) = sin(p ω_k),
    PE(p, 2k+1) = cos(p ω_k), ω_k = 10000^(-2k/d)."""
    omega = torch.exp(torch.arange(0, d, 2, device=pos.device) * (-math.log(10000.0) / d))
    angle = pos[..., None].float() * omega  # (..., T, ⌈d/2⌉)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)[..., :d]


class Sinusoidal(nn.Module, PositionScheme):
    name = "sinusoidal"
    reference = ("Vaswani et al. 2017, §3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), "
                 "PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), added to the input embeddings")

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.d_model = d_model

    def embed(self, pos: Tensor) -> Tensor:
        return sinusoid(pos, self.d_model)  # (B | 1, T, D)


def rope(x: Tensor, pos: Tensor, base: float = 10000.0) -> Tensor:
    """Su et al. 2021 eq. 34: x (B[, H], T, Dh) with each pair (x_2k, x_2k+1) rotated by the angle
    p·θ_k, θ_k = base^(-2k/Dh), p the position (pos: (B | 1, T)). An odd last feature is left as
    it is. Angles in float32 (float64 for float64 x), the result in x's dtype."""
    d = x.shape[-1]
    pairs = d // 2
    exact = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 for float64 x
    theta = torch.exp(torch.arange(pairs, device=x.device, dtype=exact) * (-2 * math.log(base) / d))
    angle = pos[..., None].to(exact) * theta  # (B | 1, T, Dh/2)
    while angle.dim() < x.dim():
        angle = angle.unsqueeze(1)  # (B | 1, 1, T, Dh/2): shared by the heads
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    even, odd = x[..., 0 : 2 * pairs : 2], x[..., 1 : 2 * pairs : 2]
    turned = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
    return torch.cat([turned, x[..., 2 * pairs :]], dim=-1) if d % 2 else turned


class Rotary(nn.Module, PositionScheme):
    name = "rope"
    reference = ("Su et al. 2021, 'RoFormer: Enhanced Transformer with Rotary Position "
                 "Embedding', §3.4 eq. 34: q and k rotated pairwise by m·θ_i, "
                 "θ_i = 10000^(-2(i-1)/d)")
    needs = "accepts_rotary"
    acts = "rotates queries and keys inside attention"

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()

    def inside(self, query: Tensor, key: Tensor) -> Positions:
        return Positions(query, key, rotate=rope)


def alibi_slopes(heads: int) -> list[float]:
    """Press et al. 2022 §3: for H a power of 2, the geometric sequence starting at 2^(-8/H) with
    that ratio (H = 8: 1/2, 1/4, ..., 1/256); otherwise the 2^⌊log2 H⌋ slopes, then every other
    slope of 2·2^⌊log2 H⌋ heads (the authors' code: github.com/ofirpress/
    attention_with_linear_biases, ``get_slopes``).
    """

    def power_of_2(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (k + 1) for k in range(n)]

    if heads & (heads - 1) == 0:
        return power_of_2(heads)
    below = 2 ** int(math.floor(math.log2(heads)))
    return power_of_2(below) + alibi_slopes(2 * below)[0::2][: heads - below]


def alibi_bias(distance: Tensor, heads: int) -> Tensor:
    """(...) query minus key positions -> (H, ...) biases −m_h·|i − j|."""
    slopes = torch.tensor(alibi_slopes(heads), device=distance.device)  # (H,)
    return -slopes.view(-1, *([1] * distance.dim())) * distance.abs()


class ALiBi(nn.Module, PositionScheme):
    name = "alibi"
    reference = ("Press, Smith & Lewis 2022, 'Train Short, Test Long: Attention with Linear "
                 "Biases Enables Input Length Extrapolation', §3: softmax(q_i Kᵀ + m·[-(i-1), ..., "
                 "-1, 0]), head slopes m geometric from 2^(-8/n)")
    needs = "accepts_bias"
    acts = "adds a distance bias to the attention logits"

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()

    def inside(self, query: Tensor, key: Tensor) -> Positions:
        return Positions(query, key, bias=alibi_bias)


class NoPositions(nn.Module, PositionScheme):
    name = "none"
    reference = ("Haviv et al. 2022, 'Transformer Language Models without Positional Encodings "
                 "Still Learn Positional Information': a causal mask alone orders the tokens")

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()


SchemeName = Literal[tuple(SCHEMES)]  # type: ignore[valid-type]  # the constructors' annotation


def make_scheme(name: str, d_model: int, max_len: int) -> nn.Module:
    """The scheme ``name`` for a model of width d_model (ValueError naming the schemes)."""
    if name not in SCHEMES:
        raise ValueError(f"'backbone.positions' = {name!r} is not a positional scheme. Valid "
                         f"options: {', '.join(SCHEMES)}")
    return SCHEMES[name](d_model, max_len)  # type: ignore[call-arg]


def refusal(name: str, attention: type) -> str | None:
    """Why a variant cannot take the scheme ``name`` (one clause naming the variants that can),
    None when it can (or when it never attends: the ``none`` baseline)."""
    scheme = SCHEMES.get(name)
    if scheme is None or scheme.needs is None or attention.baseline:
        return None
    if getattr(attention, scheme.needs, False):
        return None
    outside = [s.name for s in SCHEMES.values() if s.needs is None]
    return (f"backbone.positions={name} {scheme.acts} and '{attention.name}' cannot take it "
            f"({scheme.needs} is False; or use backbone.positions={'|'.join(outside)})")


def table_limit(params: Mapping[str, Any]) -> tuple[str, int] | None:
    """A backbone's ``length_limit`` from its ``positions`` and ``max_len`` settings: the table's
    rows for a bounded scheme (learned), None (any length) for the others."""
    scheme = SCHEMES.get(str(params.get("positions", "learned")))
    return ("max_len", int(params["max_len"])) if scheme is None or scheme.bounded else None


def check_length(name: str, longest: int, max_len: int) -> None:
    """Refuse a sequence longer than a bounded scheme's table (learned: ``max_len`` rows)."""
    if SCHEMES[name].bounded and longest > max_len:
        raise ValueError(
            f"sequence length {longest} is longer than the model's maximum 'backbone.max_len' = "
            f"{max_len} (positions={name}: one learned row per position): raise "
            "backbone.max_len, shorten the task, or use backbone.positions=sinusoidal|rope|alibi"
        )

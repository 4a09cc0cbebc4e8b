"""The pre-norm Transformer block the ``transformer`` and ``lm`` backbones share (Vaswani et al.
2017, with the norm before each sublayer as in Xiong et al. 2020).

Notation: B batch, T length, S the newest positions of a decoding call, D d_model.

    x + mix(ln x) [+ cross(ln x, memory)] + mlp(ln x)

``Mixer`` is attention as a token mixer: q/k/v/o projections around variants that have none of
their own (dot, scaled, additive, ...), none around those that do (``attn.projects``:
multihead, local). The ``none`` variant (``attn.baseline``) skips the mixing: the block is its
MLP. Self-attention takes the positional scheme's ``Positions`` (causal.py) when the backbone
gives them; cross-attention never does (queries and keys are in different sequences).
``decode`` runs causal self-attention over the newest positions with the variant's state
(``Attention.decode``), for a decoder-only model's step-by-step decoding.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from attnbench.attention.causal import Positions
from attnbench.backbones.base import AttentionFactory


class Mixer(nn.Module):
    """Attention as a token mixer: projections around variants that have none of their own."""

    def __init__(self, make_attention: AttentionFactory, d_model: int) -> None:
        super().__init__()
        self.attn = make_attention(d_model, d_model, d_model)
        self.baseline = bool(self.attn.baseline)
        self.proj: nn.ModuleDict | None = None
        if not self.attn.projects:
            self.proj = nn.ModuleDict(
                {n: nn.Linear(d_model, d_model) for n in ("q", "k", "v")}
                | {"o": nn.Linear(self.attn.out_dim, d_model)}
            )

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None,
        need_weights: bool,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        extra = {} if positions is None else {"positions": positions}
        if self.proj is None:
            return self.attn(x, memory, memory, mask, need_weights, **extra)
        q, k, v = self.proj["q"](x), self.proj["k"](memory), self.proj["v"](memory)
        ctx, w = self.attn(q, k, v, mask, need_weights, **extra)  # (B, Tq, D), (B, Tq, Tk) | None
        return self.proj["o"](ctx), w

    def decode(
        self, x: Tensor, keep: Tensor, state: Any, positions: Positions | None
    ) -> tuple[Tensor, Any]:
        """Causal self-attention of the S newest positions x (B, S, D) (``keep`` (B, S): real
        tokens) given the variant's ``state``: (B, S, D) and the next state."""
        if self.proj is None:
            return self.attn.decode(x, x, x, keep, state, positions)
        q, k, v = self.proj["q"](x), self.proj["k"](x), self.proj["v"](x)
        ctx, state = self.attn.decode(q, k, v, keep, state, positions)  # (B, S, D)
        return self.proj["o"](ctx), state


class Block(nn.Module):
    """x + mix(ln x) [+ cross(ln x, memory)] + mlp(ln x); the `none` variant skips the mixing."""

    def __init__(
        self,
        make_attention: AttentionFactory,
        d_model: int,
        ffn_mult: int,
        dropout: float,
        cross: bool,
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.mix = Mixer(make_attention, d_model)
        self.cross = Mixer(make_attention, d_model) if cross else None
        self.ln_cross = nn.LayerNorm(d_model) if cross else None
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ffn_mult * d_model),
            nn.GELU(),
            nn.Linear(ffn_mult * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,  # (B, T, D)
        self_mask: Tensor | None,  # (B, T, T)
        memory: Tensor | None = None,  # (B, S, D)
        memory_mask: Tensor | None = None,  # (B, T, S)
        summary: Tensor | None = None,  # (B, 1, D): the `none` baseline's encoder summary
        need_weights: bool = False,
        positions: Positions | None = None,  # self-attention's, from the positional scheme
    ) -> tuple[Tensor, Tensor | None]:
        weights = None
        if not self.mix.baseline:
            h = self.ln1(x)
            ctx, weights = self.mix(h, h, self_mask, need_weights, positions)
            x = x + self.drop(ctx)
        if self.cross is not None:
            if self.cross.baseline:
                x = x + summary
            else:
                ctx, weights = self.cross(self.ln_cross(x), memory, memory_mask, need_weights)
                x = x + self.drop(ctx)
        return x + self.drop(self.mlp(self.ln2(x))), weights

    def saved_per_position(self) -> int:
        """Float values one position keeps for backward in this block outside attention: each
        sublayer's norm and residual sum (~2 D), the q/k/v/o projections the mixer adds around a
        variant without its own (4 D; ``multihead`` counts its own in its ``memory_bytes``), the
        MLP's hidden units and their GELU (2 ffn_mult D), and a cross-attention's (4 D); a
        ``none`` mixer keeps nothing."""
        d = self.ln1.normalized_shape[0]
        saved = 2 * d + 2 * self.mlp[0].out_features  # the MLP sublayer
        if not self.mix.baseline:
            saved += 2 * d + (4 * d if self.mix.proj is not None else 0)
        if self.cross is not None and not self.cross.baseline:
            saved += 4 * d
        return saved

    def decode(
        self, x: Tensor, keep: Tensor, state: Any, positions: Positions | None
    ) -> tuple[Tensor, Any]:
        """A self-attention block (no cross-attention) over the S newest positions x (B, S, D)
        given its mixer's state: (B, S, D) and the next state."""
        if not self.mix.baseline:
            ctx, state = self.mix.decode(self.ln1(x), keep, state, positions)
            x = x + self.drop(ctx)
        return x + self.drop(self.mlp(self.ln2(x))), state


def check_settings(dropout: float, **sizes: int) -> None:
    """Refuse a size below 1 or a dropout outside [0, 1), naming the backbone key."""
    for key, value in sizes.items():
        if value < 1:
            raise ValueError(f"'backbone.{key}' = {value} is out of range: must be >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"'backbone.dropout' = {dropout} is out of range: must be in [0, 1)")

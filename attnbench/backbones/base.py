"""The backbone contract: every backbone accepts every attention variant.

Notation: B batch, T input length, C token channels, U target length, D width, K classes,
V target vocabulary.

A backbone is an ``nn.Module`` registered with ``@BACKBONES.register("name")`` and built as
``Cls(spec, make_attention, **yaml_params)``:

- ``spec``: ``attnbench.tasks.base.TaskSpec`` (vocabulary sizes, lengths, task kind);
- ``make_attention(d_query, d_key, d_value) -> Attention``: builds one attention module of the
  chosen variant (call it once per place attention is used: per layer, self and cross);
- yaml params: plain typed keyword arguments (``d_model: int = 64``, ...) validated before training.

It declares ``kinds`` (the task kinds it supports); an incompatible task is refused before training.

Calls:
- ``forward(inputs, targets=None, need_weights=False) -> BackboneOutput``
  classify: ``logits`` ``(B, K)``, or ``(B, T, K)`` when ``spec.target_per_position``;
  transduce: teacher forcing on ``targets`` ``(B, U)``: ``logits`` ``(B, U, V)``.
  With ``need_weights``, ``weights`` ``(B, Tq, Tk)`` are the attention weights that matter for
  diagnostics (pooling weights, decoder->encoder cross attention, or the last self-attention
  layer), Tk indexing input positions; None for the ``none`` baseline.
- ``generate(inputs, max_len, need_weights=False) -> BackboneOutput`` (transduce only): greedy
  decoding, ``tokens`` ``(B, U')`` stopping at EOS or ``max_len``; ``weights`` ``(B, U', T)``.

Inputs use PAD = 0 (channel 0 when ``inputs`` is ``(B, T, C)``): ``padding_mask(inputs)`` gives
the True = real token mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from attnbench.attention.base import Attention
from attnbench.tasks.base import PAD, Kind

AttentionFactory = Callable[[int, int, int], Attention]

# Wiring arguments the builder passes; everything else comes from conf/backbone/<name>.yaml.
CONTEXT_ARGS: tuple[str, ...] = ("spec", "make_attention")


@dataclass
class BackboneOutput:
    logits: Tensor | None = None
    weights: Tensor | None = None
    tokens: Tensor | None = None


class Backbone(nn.Module):
    name: ClassVar[str]
    kinds: ClassVar[frozenset[Kind]]
    # The constructor argument that sets the model's width, which `match_params` adjusts to bring
    # a variant's parameter count to the reference's (config.build); None = not adjustable.
    width_key: ClassVar[str | None] = None


def padding_mask(inputs: Tensor) -> Tensor:
    """(B, T) or (B, T, C) token ids -> (B, T) bool, True where there is a real token."""
    tokens = inputs[..., 0] if inputs.dim() == 3 else inputs
    return tokens != PAD


class TokenEmbedding(nn.Module):
    """Embeds (B, T) or (B, T, C) token ids to (B, T, D), summing over channels."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=PAD)

    def forward(self, inputs: Tensor) -> Tensor:
        x = self.emb(inputs)  # (B, T, D) or (B, T, C, D)
        return x.sum(dim=2) if inputs.dim() == 3 else x

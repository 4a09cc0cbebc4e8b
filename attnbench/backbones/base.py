"""The backbone contract: every backbone accepts every attention variant, unless a setting rules
one out (``incompatible``: a causal model and a variant with no causal form, a positional scheme
a variant cannot take), and then it says so in one line before anything is built.

Notation: B batch, T input length, C token channels, U target length, D width, K classes,
V target vocabulary.

A backbone is a subclass of ``Backbone`` (below) registered with ``@BACKBONES.register("name")``
and built as ``Cls(spec, make_attention, **yaml_params)``:

- ``spec``: ``attnbench.tasks.base.TaskSpec`` (vocabulary sizes, lengths, task kind);
- ``make_attention(d_query, d_key, d_value) -> Attention``: builds one attention module of the
  chosen variant (call it once per place attention is used: per layer, self and cross);
- yaml params: plain typed keyword arguments (``d_model: int = 64``, ...) validated before training.

Facts a backbone declares (attributes and methods of ``Backbone``, with defaults; the resource
pre-flight reads them on a model built on the meta device, so no memory is allocated):
- ``kinds`` (required): the task kinds it supports; an incompatible task is refused before
  training.
- ``width``: the width of the states attention sees (its query width).
- ``causal`` (False): a position's output depends on the inputs up to it only (a decoder-only
  language model); the conformance suite then checks that a later token changes no earlier
  output. Every decoder is causal in its targets whatever this says.
- ``attention_calls()``: what it asks of attention in one training forward pass over a
  full-length example: one ``AttentionCall(module, Tq, Tk)`` per call, the module knowing the
  widths it was built with (default: none declared; the pre-flight then counts no attention
  memory). A conformance test checks the declared calls against the calls a forward pass makes.
- ``activations_per_example()``: float values one training example keeps for backward outside
  attention (default 0: a lower bound).
- ``length_limit(params)`` (a class method, read before anything is built): (setting, value) of
  the longest sequence it takes (default None: any length).
- ``sequence_length(spec)`` (a class method): the longest sequence it builds for a task, which
  ``length_limit`` bounds (default: the task's longest input or target; the ``lm`` reads input
  and target as one sequence).
- ``refusal(attention, params)`` (a class method, read before anything is built): why a backbone
  built with ``params`` cannot run the variant class ``attention`` (default None: it can);
  ``incompatible`` turns it into the one-line refusal that names the variants it does run, which
  validation raises as an ``IncompatibleError`` (a sweep skips the cell with a note).

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from attnbench.attention.base import Attention
from attnbench.tasks.base import PAD, Kind, TaskSpec

AttentionFactory = Callable[[int, int, int], Attention]

# Wiring arguments the builder passes; everything else comes from conf/backbone/<name>.yaml.
CONTEXT_ARGS: tuple[str, ...] = ("spec", "make_attention")


@dataclass
class BackboneOutput:
    logits: Tensor | None = None
    weights: Tensor | None = None
    tokens: Tensor | None = None


@dataclass(frozen=True)
class AttentionCall:
    """One attention call of a training forward pass: the module called (it knows its widths and
    costs), Tq queries and Tk keys per example."""

    module: Attention
    tq: int
    tk: int


class Backbone(nn.Module):
    """Base class of every backbone: the facts (module docstring) with their defaults."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[Kind]]
    # The constructor argument that sets the model's width, which `match_params` adjusts to bring
    # a variant's parameter count to the reference's (config.build); None = not adjustable.
    width_key: ClassVar[str | None] = None
    causal: ClassVar[bool] = False
    width: int = 0

    def attention_calls(self) -> list[AttentionCall]:
        """The attention calls of one training forward pass over a full-length example."""
        return []

    def activations_per_example(self) -> int:
        """Float values one training example keeps for backward outside attention."""
        return 0

    @classmethod
    def length_limit(cls, params: Mapping[str, Any]) -> tuple[str, int] | None:
        """(key in the backbone's group, value) of the longest sequence a backbone built with
        ``params`` (its YAML settings, defaults filled in) takes; None: any length."""
        return None

    @classmethod
    def sequence_length(cls, spec: TaskSpec) -> int:
        """The longest sequence the backbone builds for a task with ``spec``."""
        return max(spec.max_len, spec.max_target_len)

    @classmethod
    def refusal(cls, attention: type[Attention], params: Mapping[str, Any]) -> str | None:
        """Why a backbone built with ``params`` (its YAML settings, defaults filled in) cannot run
        the variant ``attention`` (a clause); None: it can."""
        return None

    @classmethod
    def incompatible(cls, attention: type[Attention], params: Mapping[str, Any]) -> str | None:
        """The one-line refusal of ``refusal`` for ``params`` (YAML settings, missing ones at
        their defaults), naming the variants the backbone runs with them; None: compatible."""
        from attnbench.attention import ATTENTION
        from attnbench.registry import params_of

        settings = {n: p.default for n, p in params_of(cls, CONTEXT_ARGS).items()} | dict(params)
        why = cls.refusal(attention, settings)
        if why is None:
            return None
        ok = [n for n in ATTENTION.names() if cls.refusal(ATTENTION.get(n), settings) is None]
        return (f"backbone '{cls.name}' cannot run attention '{attention.name}': {why}. "
                f"Compatible variants: {', '.join(ok)}")

    def check_compatible(self, attention: Attention, **params: Any) -> None:
        """Raise ``incompatible``'s one line as a ValueError when the constructor was given a
        variant its settings rule out (validation refuses the pair first; this guards direct
        use)."""
        why = self.incompatible(type(attention), params)
        if why is not None:
            raise ValueError(why)


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

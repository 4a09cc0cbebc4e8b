"""Bidirectional LSTM/GRU classifier with attention pooling (Jain & Wallace 2019).

Notation: B batch, T input length, C token channels, E embedding width, H hidden units per
direction (the encoder states are 2H wide), A attention output width (``attn.out_dim``),
K classes.

    inputs (B, T[, C]) -> embed (B, T, E) -> biRNN (B, T, 2H) -> pool -> Linear -> logits

Pooling, per sequence (``spec.target_per_position`` False):
  - attention variants: one LEARNED query vector q (2H) attends over the hidden states,
    padding masked: ``context = attn(q, h, h)`` (B, 1, A) -> classifier -> (B, K).
    Jain & Wallace 2019 use the additive form ``v^T tanh(W h_t)``; here the scoring function is
    whichever variant is chosen, so the pooling is the only thing that changes between runs.
  - ``none`` (``attn.baseline``): the concatenated final forward and backward states
    [h_fwd(T_b) ; h_bwd(1)] (B, 2H), taken at each sequence's true length (packed sequences).

Per position (``spec.target_per_position`` True, e.g. multi-query associative recall):
  - attention variants: each hidden state h_t queries all hidden states (padding masked), the
    classifier reads [h_t ; context_t] (B, T, 2H + A) -> (B, T, K).
  - ``none``: the classifier reads h_t alone (B, T, 2H) -> (B, T, K).

The query, key and value widths are all 2H; for ``multihead`` the heads must divide 2H, so
``hidden`` a multiple of 4 keeps 1, 2, 4 and 8 heads valid.
Sequences are packed (``pack_padded_sequence``) so PAD tokens appended to an input change
nothing: the recurrent states, the final states and the attention weights ignore them.
Padding is assumed to be on the right (PAD = 0 in channel 0).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnbench.backbones import BACKBONES
from attnbench.backbones.base import (
    AttentionCall,
    AttentionFactory,
    Backbone,
    BackboneOutput,
    TokenEmbedding,
    padding_mask,
)
from attnbench.tasks.base import TaskSpec


def check_sizes(owner: str, dropout: float, **sizes: int) -> None:
    """Raise ValueError naming every non-positive size and a dropout outside [0, 1)."""
    problems = [
        f"{owner}.{k} must be a positive integer, got {v!r}"
        for k, v in sizes.items()
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0
    ]
    if not 0.0 <= dropout < 1.0:
        problems.append(f"{owner}.dropout must be in [0, 1), got {dropout!r}")
    if problems:
        raise ValueError("; ".join(problems))


@contextlib.contextmanager
def recurrence_in_float32(x: Tensor) -> Iterator[Tensor]:
    """Under autocast, run the recurrent layer in float32 (yields `x` as float32).

    A recurrence is where rounding compounds over time steps, and autocast does not do what it
    says there: on CUDA, PyTorch's autocast wrapper for cuDNN RNNs runs them in float16 whatever
    dtype was asked for (a "bf16" run would train its LSTM/GRU in float16 without gradient
    scaling); on CPUs without bfloat16 instructions oneDNN has no bfloat16 LSTM at all ("could
    not create a primitive descriptor for the LSTM forward propagation primitive"). The layer's
    weights are float32 under autocast anyway; only its inputs are cast.
    """
    if not torch.is_autocast_enabled(x.device.type):
        yield x
        return
    with torch.autocast(x.device.type, enabled=False):
        yield x.float()


def run_packed(rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Run `rnn` on right-padded `x` (B, T, E) with true `lengths` (B,).

    Returns the outputs (B, T, dirs*H) (zero at padded positions) and the last layer's final
    states (B, dirs*H), each direction's state taken at the true end of its sequence.
    Zero-length sequences are run over one (padding) step so packing stays valid.
    """
    b, t, _ = x.shape
    with recurrence_in_float32(x) as x:
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, h_n = rnn(packed)
    if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
        h_n = h_n[0]
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, dirs*H)
    dirs = 2 if rnn.bidirectional else 1
    last = h_n.view(rnn.num_layers, dirs, b, rnn.hidden_size)[-1]  # (dirs, B, H)
    final = last.transpose(0, 1).reshape(b, dirs * rnn.hidden_size)  # (B, dirs*H)
    return out, final


@BACKBONES.register("rnn")
class RNNClassifier(Backbone):
    """Embedding -> bidirectional LSTM/GRU -> attention pooling -> linear classifier."""

    kinds = frozenset({"classify"})
    width_key = "hidden"

    def __init__(
        self,
        spec: TaskSpec,
        make_attention: AttentionFactory,
        *,
        cell: Literal["lstm", "gru"] = "lstm",
        embed_dim: int = 64,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if spec.kind not in self.kinds:
            raise ValueError(
                f"backbone 'rnn' supports task kinds {sorted(self.kinds)}, got a "
                f"{spec.kind!r} task (transduction tasks need an encoder-decoder, e.g. seq2seq)"
            )
        if cell not in ("lstm", "gru"):
            raise ValueError(f"rnn.cell must be 'lstm' or 'gru', got {cell!r}")
        check_sizes(
            "rnn",
            dropout,
            embed_dim=embed_dim,
            hidden=hidden,
            layers=layers,
            num_classes=spec.num_classes,
            vocab_size=spec.vocab_size,
        )
        self.spec = spec
        self.per_position = spec.target_per_position
        d = 2 * hidden  # width of the bidirectional states: query, key and value width
        self.width = d

        self.embed = TokenEmbedding(spec.vocab_size, embed_dim)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            embed_dim,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.attn = make_attention(d, d, d)
        self.baseline = bool(self.attn.baseline)
        if self.baseline:
            self.query = None
            features = d
        else:
            # Learned pooling query (per-sequence); per position the states themselves query.
            self.query = None if self.per_position else nn.Parameter(torch.empty(1, 1, d))
            if self.query is not None:
                nn.init.normal_(self.query, std=1.0 / math.sqrt(d))
            features = d + self.attn.out_dim if self.per_position else self.attn.out_dim
        self.classifier = nn.Linear(features, spec.num_classes)

    def attention_calls(self) -> list[AttentionCall]:
        """Per position every state queries all T states; per sequence one learned query does."""
        t = self.spec.max_len
        if self.baseline:
            return []
        return [AttentionCall(self.attn, t if self.per_position else 1, t)]

    def activations_per_example(self) -> int:
        """Per position: the embedding and its dropout (2 E), per layer and direction the gates
        and states the recurrence keeps (6 H for an LSTM, 4 H for a GRU); the logits (3 each)."""
        t, rnn = self.spec.max_len, self.rnn
        gates = 6 if rnn.mode == "LSTM" else 4
        per_token = 2 * rnn.input_size + 2 * gates * rnn.hidden_size * rnn.num_layers
        return t * per_token + 3 * (t if self.per_position else 1) * self.spec.num_classes

    def forward(
        self, inputs: Tensor, targets: Tensor | None = None, need_weights: bool = False
    ) -> BackboneOutput:
        mask = padding_mask(inputs)  # (B, T) True = real token
        x = self.drop(self.embed(inputs))  # (B, T, E)
        states, final = run_packed(self.rnn, x, mask.sum(dim=1))  # (B, T, 2H), (B, 2H)
        weights: Tensor | None = None
        if self.per_position:
            if self.baseline:
                feats = states  # (B, T, 2H)
            else:
                context, weights = self.attn(
                    states, states, states, mask=mask[:, None, :], need_weights=need_weights
                )  # (B, T, A), (B, T, T)
                feats = torch.cat([states, context], dim=-1)  # (B, T, 2H + A)
        elif self.baseline:
            feats = final  # (B, 2H)
        else:
            query = self.query.expand(inputs.shape[0], -1, -1)  # (B, 1, 2H)
            context, weights = self.attn(
                query, states, states, mask=mask[:, None, :], need_weights=need_weights
            )  # (B, 1, A), (B, 1, T)
            feats = context.squeeze(1)  # (B, A)
        logits = self.classifier(self.drop(feats))  # (B, K) or (B, T, K)
        return BackboneOutput(logits=logits, weights=weights if need_weights else None)

"""Pre-norm Transformer whose token mixer is the chosen attention variant (Vaswani et al. 2017).

Notation: B batch, T input length, U target length, C token channels, D d_model, K classes,
V target vocabulary.

- classify: encoder blocks, then a head per position (``spec.target_per_position``) or on the
  masked mean over positions.
- transduce: encoder-decoder; decoder self-attention (causal) and cross-attention both use the
  chosen variant.
- ``none``: no token mixing (each block is its MLP only); in the encoder-decoder the decoder
  receives the mean-pooled encoder output at every position instead of cross-attention (the
  fixed-summary baseline of Cho et al. 2014).

Variants that do not learn projections (dot, scaled, additive) get q/k/v/o projections here, so
every variant mixes projected tokens; ``multihead`` brings its own (``attn.projects``). The blocks
are blocks.py's, shared with the decoder-only ``lm``.

Positions (``positions``, positions.py): ``learned`` (the default, one row per position up to
``max_len``), ``sinusoidal`` (added to the embeddings), ``rope`` and ``alibi`` (inside every
self-attention call, encoder and decoder; cross-attention gets none), or ``none``. A scheme the
chosen variant cannot take inside attention is refused (``refusal``), naming what works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from attnbench.attention.base import Attention
from attnbench.attention.causal import Positions
from attnbench.backbones import BACKBONES
from attnbench.backbones.base import (
    AttentionCall,
    AttentionFactory,
    Backbone,
    BackboneOutput,
    TokenEmbedding,
    padding_mask,
)
from attnbench.backbones.blocks import Block, check_settings
from attnbench.backbones.positions import (
    SchemeName,
    check_length,
    make_scheme,
    refusal,
    table_limit,
)
from attnbench.tasks.base import BOS, EOS, PAD, TaskSpec


@BACKBONES.register("transformer")
class Transformer(Backbone):
    kinds = frozenset({"classify", "transduce"})
    width_key = "d_model"

    def __init__(
        self,
        spec: TaskSpec,
        make_attention: AttentionFactory,
        *,
        d_model: int = 64,
        layers: int = 2,
        decoder_layers: int = 2,
        ffn_mult: int = 4,
        dropout: float = 0.0,
        max_len: int = 512,
        positions: SchemeName = "learned",
    ) -> None:
        super().__init__()
        check_settings(dropout, d_model=d_model, layers=layers, ffn_mult=ffn_mult, max_len=max_len)
        check_length(positions, self.sequence_length(spec), max_len)
        if spec.kind == "transduce" and decoder_layers < 1:
            raise ValueError(f"'backbone.decoder_layers' = {decoder_layers}: must be >= 1")
        self.spec = spec
        self.width = d_model
        self.ffn_mult = ffn_mult
        self.embed = TokenEmbedding(spec.vocab_size, d_model)
        self.pos = make_scheme(positions, d_model, max_len)  # learned: the table it always had
        self.encoder = nn.ModuleList(
            Block(make_attention, d_model, ffn_mult, dropout, cross=False) for _ in range(layers)
        )
        self.check_compatible(self.encoder[0].mix.attn, positions=positions)
        self.ln_enc = nn.LayerNorm(d_model)
        if spec.kind == "classify":
            self.decoder = nn.ModuleList()  # no decoder blocks
            self.head = nn.Linear(d_model, spec.num_classes)
        else:
            self.tgt_embed = nn.Embedding(spec.target_vocab_size, d_model, padding_idx=PAD)
            self.decoder = nn.ModuleList(
                Block(make_attention, d_model, ffn_mult, dropout, cross=True)
                for _ in range(decoder_layers)
            )
            self.ln_dec = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, spec.target_vocab_size)

    @classmethod
    def length_limit(cls, params: Mapping[str, Any]) -> tuple[str, int] | None:
        return table_limit(params)  # learned: one row per position; the others: any length

    @classmethod
    def refusal(cls, attention: type[Attention], params: Mapping[str, Any]) -> str | None:
        return refusal(str(params.get("positions")), attention)

    def attention_calls(self) -> list[AttentionCall]:
        """Self-attention over T per encoder block; per decoder block, causal self-attention over
        U and cross-attention from U to T (blocks whose mixer is the `none` baseline call none)."""
        t, u = self.spec.max_len, self.spec.max_target_len
        calls = [AttentionCall(b.mix.attn, t, t) for b in self.encoder if not b.mix.baseline]
        for block in self.decoder:
            if not block.mix.baseline:
                calls.append(AttentionCall(block.mix.attn, u, u))
            if block.cross is not None and not block.cross.baseline:
                calls.append(AttentionCall(block.cross.attn, u, t))
        return calls

    def activations_per_example(self) -> int:
        """Per position, what each block keeps (``Block.saved_per_position``); the embeddings;
        then the logits, their log-softmax and gradient (3 per output)."""
        d, t, u = self.width, self.spec.max_len, self.spec.max_target_len
        out = 3 * (t if self.spec.target_per_position else 1) * self.spec.num_classes
        if self.spec.kind == "transduce":
            out = 3 * u * self.spec.target_vocab_size
        encoder = sum(b.saved_per_position() for b in self.encoder)
        decoder = sum(b.saved_per_position() for b in self.decoder)
        return t * encoder + u * decoder + (t + u) * d + out

    def _positioned(self, x: Tensor) -> tuple[Tensor, Positions | None]:
        """x (B, T, D) with the scheme's embedding added, and what it does inside attention."""
        pos = torch.arange(x.shape[1], device=x.device)[None]  # (1, T)
        added = self.pos.embed(pos)  # (1, T, D) or None
        return (x if added is None else x + added), self.pos.inside(pos, pos)

    def encode(
        self, inputs: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        keep = padding_mask(inputs)  # (B, T)
        x, inside = self._positioned(self.embed(inputs))  # (B, T, D)
        mask = keep[:, None, :]  # (B, 1, T): every query may see every real token
        weights = None
        for block in self.encoder:
            x, weights = block(x, mask, need_weights=need_weights, positions=inside)
        return self.ln_enc(x), keep, weights

    def forward(
        self, inputs: Tensor, targets: Tensor | None = None, need_weights: bool = False
    ) -> BackboneOutput:
        memory, keep, weights = self.encode(inputs, need_weights)
        if self.spec.kind == "classify":
            if self.spec.target_per_position:
                return BackboneOutput(logits=self.head(memory), weights=weights)  # (B, T, K)
            w = keep.unsqueeze(-1).to(memory.dtype)  # (B, T, 1)
            pooled = (memory * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, D)
            return BackboneOutput(logits=self.head(pooled), weights=weights)
        if targets is None:
            raise ValueError("transduce forward needs targets (teacher forcing); use generate()")
        bos = torch.full_like(targets[:, :1], BOS)
        dec_in = torch.cat([bos, targets[:, :-1]], dim=1)  # (B, U)
        h, cross = self._decode(dec_in, memory, keep, need_weights)
        return BackboneOutput(logits=self.head(h), weights=cross)  # (B, U, V)

    def _decode(
        self, dec_in: Tensor, memory: Tensor, keep: Tensor, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        u = dec_in.shape[1]
        y, inside = self._positioned(self.tgt_embed(dec_in))  # (B, U, D)
        causal = torch.ones(u, u, dtype=torch.bool, device=dec_in.device).tril()  # (U, U)
        self_mask = causal[None] & (dec_in != PAD)[:, None, :] | torch.eye(
            u, dtype=torch.bool, device=dec_in.device
        )  # (B, U, U): always see yourself
        memory_mask = keep[:, None, :]  # (B, 1, T)
        w = keep.unsqueeze(-1).to(memory.dtype)
        summary = ((memory * w).sum(1) / w.sum(1).clamp_min(1.0)).unsqueeze(1)  # (B, 1, D)
        weights = None
        for block in self.decoder:
            y, weights = block(y, self_mask, memory, memory_mask, summary, need_weights, inside)
        return self.ln_dec(y), weights

    @torch.no_grad()
    def generate(self, inputs: Tensor, max_len: int, need_weights: bool = False) -> BackboneOutput:
        memory, keep, _ = self.encode(inputs)
        b = inputs.shape[0]
        tokens = torch.full((b, 1), BOS, dtype=torch.long, device=inputs.device)
        done = torch.zeros(b, dtype=torch.bool, device=inputs.device)
        weights = None
        for _ in range(max_len):
            h, weights = self._decode(tokens, memory, keep, need_weights)
            nxt = self.head(h[:, -1]).argmax(-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return BackboneOutput(tokens=tokens[:, 1:], weights=weights)

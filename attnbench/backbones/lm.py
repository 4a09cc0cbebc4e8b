"""Decoder-only language model: the Transformer's pre-norm blocks (blocks.py) under a causal mask,
trained on next-token loss over the answer positions of one sequence per example.

Notation: B batch, T input length, L a row's real input length, U target length, S sequence
length, D width (``d_model``), K classes, V target vocabulary.

How a task reads as one sequence is the task's fact (``TaskSpec.sequence_format``, tasks/base.py);
this backbone never looks at a task's name:

- ``prefix_target`` (copy/reverse/sort, translation): x_1..x_L BOS y_1..y_U-1, and y_1..y_U (EOS
  included) are predicted at BOS..y_U-1: logits (B, U, V). Each row is packed: its answer starts
  right after its own last input token, so no position depends on the batch's padding;
- ``last_token`` (one label per sequence: listops, text): x_1..x_L BOS, the label predicted at
  BOS: logits (B, K);
- ``per_position`` (Zoology's MQAR, assoc_recall): x_1..x_T as they are, each position's label
  predicted from it and what precedes it: logits (B, T, K).

The trainer's cross-entropy on these logits is the next-token loss on the answers alone: the
prefix is given (a prefix LM's loss mask), so the head covers the answer vocabulary (the target
tokens or the class labels) and the target tokens have an embedding of their own, as in the
encoder-decoder. ``none`` is the identity mixer (each block its MLP): no token sees another.

Greedy decoding (``generate``) runs every block's attention step by step (``Attention.decode``):
the prompt x BOS once, then one token per step against the variant's state — a KV cache for the
softmax variants, linear's running (S, z), local's window of w positions. The prompt is padded
on the left, so every row's BOS sits in the same column and new tokens are appended together;
each row keeps its own positions (counted from its first real token, as in training).
``cache=False`` re-runs the whole sequence through ``forward``'s path at every step: the
reference the tests hold the cache to, and what a decoding benchmark times it against.

Refused before anything is built (``refusal``): a variant without a causal form (``causal``
False: lowrank), and a positional scheme the variant cannot take inside attention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from attnbench.attention.base import Attention
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


@BACKBONES.register("lm")
class LM(Backbone):
    kinds = frozenset({"classify", "transduce"})
    width_key = "d_model"
    causal = True

    def __init__(
        self,
        spec: TaskSpec,
        make_attention: AttentionFactory,
        *,
        d_model: int = 64,
        layers: int = 2,
        ffn_mult: int = 4,
        dropout: float = 0.0,
        max_len: int = 512,
        positions: SchemeName = "learned",
    ) -> None:
        super().__init__()
        check_settings(dropout, d_model=d_model, layers=layers, ffn_mult=ffn_mult, max_len=max_len)
        fmt = spec.sequence_format
        if fmt is None:
            raise ValueError("this task's labels per position are not declared causal (its "
                             "lm_format): backbone=lm cannot read it; use backbone=transformer")
        check_length(positions, self.sequence_length(spec), max_len)
        self.spec, self.format = spec, fmt
        self.width, self.ffn_mult = d_model, ffn_mult
        self.embed = TokenEmbedding(spec.vocab_size, d_model)
        self.pos = make_scheme(positions, d_model, max_len)
        self.tgt_embed = (nn.Embedding(spec.target_vocab_size, d_model, padding_idx=PAD)
                          if fmt == "prefix_target" else None)
        self.blocks = nn.ModuleList(
            Block(make_attention, d_model, ffn_mult, dropout, cross=False) for _ in range(layers)
        )
        self.check_compatible(self.blocks[0].mix.attn, positions=positions)
        self.ln = nn.LayerNorm(d_model)
        answers = spec.target_vocab_size if fmt == "prefix_target" else spec.num_classes
        self.head = nn.Linear(d_model, answers)

    # -- facts -------------------------------------------------------------------------------
    @classmethod
    def length_limit(cls, params: Mapping[str, Any]) -> tuple[str, int] | None:
        return table_limit(params)  # learned: one row per position; the others: any length

    @classmethod
    def sequence_length(cls, spec: TaskSpec) -> int:
        """S: input then answer, one sequence."""
        fmt = spec.sequence_format
        if fmt == "prefix_target":
            return spec.max_len + spec.max_target_len  # x, BOS, y_1..y_U-1
        return spec.max_len + 1 if fmt == "last_token" else spec.max_len

    @classmethod
    def refusal(cls, attention: type[Attention], params: Mapping[str, Any]) -> str | None:
        if not (attention.causal or attention.baseline):
            return (f"a causal language model needs a causal variant, and '{attention.name}' has "
                    "no causal form (its fact `causal` is False)")
        return refusal(str(params.get("positions")), attention)

    def attention_calls(self) -> list[AttentionCall]:
        """One causal self-attention over the S-token sequence per block (none for `none`)."""
        s = self.sequence_length(self.spec)
        return [AttentionCall(b.mix.attn, s, s) for b in self.blocks if not b.mix.baseline]

    def activations_per_example(self) -> int:
        """Per position, what each block keeps (``Block.saved_per_position``); the embeddings;
        the logits, their log-softmax and gradient (3 per output)."""
        s, d, spec = self.sequence_length(self.spec), self.width, self.spec
        outputs = {"prefix_target": spec.max_target_len * spec.target_vocab_size,
                   "last_token": spec.num_classes,
                   "per_position": spec.max_len * spec.num_classes}[self.format]
        return s * sum(b.saved_per_position() for b in self.blocks) + s * d + 3 * outputs

    # -- training forward ----------------------------------------------------------------------
    def forward(
        self, inputs: Tensor, targets: Tensor | None = None, need_weights: bool = False
    ) -> BackboneOutput:
        keep = padding_mask(inputs)  # (B, T)
        x = self.embed(inputs)  # (B, T, D)
        b, t = keep.shape
        if self.format == "per_position":
            h, weights = self._run(x, keep, torch.arange(t, device=x.device)[None], need_weights)
            return BackboneOutput(logits=self.head(h), weights=weights)  # (B, T, K), (B, T, T)
        if self.format == "last_token":
            answer = self.embed(torch.full((b, 1), BOS, device=x.device))  # (B, 1, D)
            real = torch.ones(b, 1, dtype=torch.bool, device=x.device)
        else:
            if targets is None:
                raise ValueError("prefix_target forward needs targets (teacher forcing); use "
                                 "generate()")
            dec_in = torch.cat([torch.full_like(targets[:, :1], BOS), targets[:, :-1]], dim=1)
            answer, real = self.tgt_embed(dec_in), dec_in != PAD  # (B, U, D), (B, U)
        seq, seq_keep, at = self._pack(x, keep, answer, real)  # (B, S, D), (B, S), (B, U)
        s = seq.shape[1]
        h, weights = self._run(seq, seq_keep, torch.arange(s, device=x.device)[None], need_weights)
        logits = self.head(h.gather(1, at[..., None].expand(-1, -1, h.shape[-1])))  # (B, U, ·)
        if weights is not None:  # answer rows over the input columns: (B, U, T)
            weights = weights.gather(1, at[..., None].expand(-1, -1, s))[..., :t]
        if self.format == "last_token":
            logits = logits[:, 0]  # (B, K)
        return BackboneOutput(logits=logits, weights=weights)

    @staticmethod
    def _pack(x: Tensor, keep: Tensor, answer: Tensor, real: Tensor
              ) -> tuple[Tensor, Tensor, Tensor]:
        """Each row's answer (B, U, D) right after its own L real inputs (x (B, T, D), keep
        (B, T)): the sequence (B, T + U, D), its real tokens (B, T + U) and the answer columns
        L..L + U - 1 (B, U)."""
        b, t, d = x.shape
        u = answer.shape[1]
        at = keep.sum(dim=1, keepdim=True) + torch.arange(u, device=x.device)  # (B, U)
        seq = torch.cat([x * keep[..., None], x.new_zeros(b, u, d)], dim=1)
        seq = seq.scatter(1, at[..., None].expand(-1, -1, d), answer.to(seq.dtype))
        kept = torch.cat([keep, keep.new_zeros(b, u)], dim=1).scatter(1, at, real)
        return seq, kept, at

    def _run(self, h: Tensor, keep: Tensor, pos: Tensor, need_weights: bool = False
             ) -> tuple[Tensor, Tensor | None]:
        """The blocks over a whole sequence h (B, S, D) under the causal mask of its real tokens
        ``keep`` (B, S), at positions ``pos`` (B | 1, S): the normed states (B, S, D) and the
        last block's weights (B, S, S) | None."""
        s = h.shape[1]
        added = self.pos.embed(pos)  # (B | 1, S, D) or None
        h = h if added is None else h + added
        causal = torch.ones(s, s, dtype=torch.bool, device=h.device).tril()  # (S, S)
        mask = causal[None] & keep[:, None, :]  # (B, S, S): real tokens up to oneself
        inside = self.pos.inside(pos, pos)
        weights = None
        for block in self.blocks:
            h, weights = block(h, mask, need_weights=need_weights, positions=inside)
        return self.ln(h), weights

    # -- greedy decoding -----------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, inputs: Tensor, max_len: int, need_weights: bool = False,
                 cache: bool = True) -> BackboneOutput:
        """Greedy decoding of up to ``max_len`` tokens per row, stopping when every row has
        produced EOS: ``tokens`` (B, U'); ``weights`` (B, U', T) (a teacher-forced pass over the
        output) with ``need_weights``. ``cache=False`` re-runs the whole sequence every step."""
        if self.format != "prefix_target":
            raise ValueError(f"generate() decodes prefix_target tasks; this one is {self.format}")
        seq, keep, pos = self._prompt(inputs)  # (B, T + 1, ·): left-padded x, BOS
        b = seq.shape[0]
        states: list[Any] = [None] * len(self.blocks)
        h = self._step(seq, keep, pos, pos, states) if cache else self._run(seq, keep, pos)[0]
        done = torch.zeros(b, dtype=torch.bool, device=seq.device)
        out: list[Tensor] = []
        for _ in range(max_len):
            nxt = self.head(h[:, -1]).argmax(-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            out.append(nxt)
            done |= nxt == EOS
            if bool(done.all()) or len(out) == max_len:
                break
            new, new_pos = self.tgt_embed(nxt[:, None]), pos[:, -1:] + 1  # (B, 1, D), (B, 1)
            real = nxt[:, None] != PAD  # as in training: a PAD token is no key
            pos = torch.cat([pos, new_pos], dim=1)
            if cache:
                h = self._step(new, real, new_pos, pos, states)
            else:
                seq, keep = torch.cat([seq, new], dim=1), torch.cat([keep, real], dim=1)
                h = self._run(seq, keep, pos)[0]
        tokens = torch.stack(out, dim=1) if out else inputs.new_zeros(b, 0)  # (B, U')
        weights = self(inputs, tokens, need_weights=True).weights if need_weights else None
        return BackboneOutput(tokens=tokens, weights=weights)

    def _prompt(self, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x BOS with each row's L real inputs moved to the right end (B, T + 1, D), its real
        tokens (B, T + 1) and each row's own positions 0..L (B, T + 1)."""
        keep = padding_mask(inputs)  # (B, T)
        b, t = keep.shape
        lengths = keep.sum(dim=1, keepdim=True)  # (B, 1)
        src = torch.arange(t, device=inputs.device)[None] - (t - lengths)  # (B, T) input column
        real = src >= 0
        x = self.embed(inputs)  # (B, T, D)
        x = x.gather(1, src.clamp(min=0)[..., None].expand(-1, -1, x.shape[-1])) * real[..., None]
        bos = self.tgt_embed(torch.full((b, 1), BOS, device=inputs.device))  # (B, 1, D)
        seq = torch.cat([x, bos.to(x.dtype)], dim=1)
        keep = torch.cat([real, torch.ones_like(real[:, :1])], dim=1)
        pos = torch.cat([src.clamp(min=0), lengths], dim=1)  # BOS at position L
        return seq, keep, pos

    def _step(self, h: Tensor, keep: Tensor, qpos: Tensor, kpos: Tensor, states: list[Any]
              ) -> Tensor:
        """The S newest positions h (B, S, D) through every block's ``decode`` (states updated
        in place): the normed states (B, S, D). ``qpos`` (B, S) their positions, ``kpos``
        (B, t + S) every position so far."""
        added = self.pos.embed(qpos)
        h = h if added is None else h + added
        inside = self.pos.inside(qpos, kpos)
        for i, block in enumerate(self.blocks):
            h, states[i] = block.decode(h, keep, states[i], inside)
        return self.ln(h)

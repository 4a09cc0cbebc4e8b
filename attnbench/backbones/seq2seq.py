"""GRU encoder-decoder with attention over the encoder outputs (Luong et al. 2015, §3.1).

Notation: B batch, T source length, C source channels, U target length, E embedding width,
H encoder hidden units per direction, S = dirs*H the encoder state width (dirs = 2 when
``bidirectional``), also the decoder width, A attention output width (``attn.out_dim``),
V target vocabulary, L layers.

Encoder: embed (B, T, E) -> (bi)GRU, packed so source PADs are ignored -> states h_s (B, T, S)
and the summary c (B, S) = [h_fwd(T_b) ; h_bwd(1)] of the last layer (Cho et al. 2014's c).

Decoder (the same for every variant, so runs differ only in how c_t is formed):

    s_0 = tanh(W_init c)                                   (L, B, S)
    s_t = GRU([emb(y_{t-1}) ; c], s_{t-1})                 Cho 2014 §2.2: c fed at every step
    c_t = attn(s_t, h_s, h_s) with the source padding mask  Luong 2015 eq. (7), global attention
        = c                          for ``none``           Cho 2014: the summary vector only
    h~_t = tanh(W_c [c_t ; s_t])                           Luong 2015 eq. (5)
    p(y_t) = softmax(W_o h~_t)                             Luong 2015 eq. (6)

Why Luong's output-side attention rather than Bahdanau's (context fed into the GRU input)?
The context does not feed back into the recurrence (no §3.3 input feeding), so with teacher
forcing the decoder GRU runs over all U steps in one call and attention is one batched
(B, U, T) call: training is several times faster on CPU, and every variant is used exactly the
way its contract describes (query (B, Tq, Dq)). Greedy ``generate`` steps the same modules one
token at a time, so it computes exactly what teacher forcing computes.

Widths: the decoder state is S wide, so query and key widths match (S) as ``dot`` requires; for
``multihead`` the heads must divide S (``hidden`` a multiple of 4 keeps 1, 2, 4, 8 heads valid).
Inputs are right-padded with PAD = 0; decoder inputs are BOS + targets[:, :-1].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnbench.backbones import BACKBONES
from attnbench.backbones.base import (
    AttentionCall,
    AttentionFactory,
    Backbone,
    BackboneOutput,
    TokenEmbedding,
    padding_mask,
)
from attnbench.backbones.rnn import check_sizes, recurrence_in_float32, run_packed
from attnbench.tasks.base import BOS, EOS, PAD, TaskSpec


@BACKBONES.register("seq2seq")
class Seq2Seq(Backbone):
    """(Bi)GRU encoder, GRU decoder whose state attends over the encoder outputs."""

    kinds = frozenset({"transduce"})
    width_key = "hidden"

    def __init__(
        self,
        spec: TaskSpec,
        make_attention: AttentionFactory,
        *,
        embed_dim: int = 64,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spec.kind not in self.kinds:
            raise ValueError(
                f"backbone 'seq2seq' supports task kinds {sorted(self.kinds)}, got a "
                f"{spec.kind!r} task (classification tasks need a classifier, e.g. rnn)"
            )
        check_sizes(
            "seq2seq",
            dropout,
            embed_dim=embed_dim,
            hidden=hidden,
            layers=layers,
            vocab_size=spec.vocab_size,
            target_vocab_size=spec.target_vocab_size,
        )
        self.spec = spec
        self.max_target_len = spec.max_target_len
        self.layers = layers
        s = hidden * (2 if bidirectional else 1)  # encoder state width = decoder width
        self.width = s

        self.src_embed = TokenEmbedding(spec.vocab_size, embed_dim)
        self.encoder = nn.GRU(
            embed_dim,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.init_state = nn.Linear(s, layers * s)  # W_init: c -> s_0 for every decoder layer
        self.tgt_embed = nn.Embedding(spec.target_vocab_size, embed_dim, padding_idx=PAD)
        self.decoder = nn.GRU(
            embed_dim + s,
            s,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.attn = make_attention(s, s, s)
        self.baseline = bool(self.attn.baseline)
        ctx_dim = s if self.baseline else self.attn.out_dim
        self.combine = nn.Linear(ctx_dim + s, s)  # W_c
        self.out = nn.Linear(s, spec.target_vocab_size)  # W_o
        self.drop = nn.Dropout(dropout)

    def attention_calls(self) -> list[AttentionCall]:
        """The decoder's U states attend over the T encoder states, in one batched call."""
        return [] if self.baseline else [AttentionCall(self.attn, self.max_target_len,
                                                       self.spec.max_len)]

    def activations_per_example(self) -> int:
        """Encoder positions: the embedding and its dropout (2 E), per layer and direction the
        GRU's gates and states (4 H); decoder positions: embedding, input [y ; c] (2 E + S), per
        layer its GRU (4 S), the combined state (3 S); the logits (3 per target word)."""
        t, u, s = self.spec.max_len, self.max_target_len, self.width
        enc, dec = self.encoder, self.decoder
        dirs = 2 if enc.bidirectional else 1
        source = t * (2 * enc.input_size + 4 * dirs * enc.hidden_size * enc.num_layers)
        target = u * (2 * dec.input_size + 4 * s * dec.num_layers + 3 * s)
        return source + target + 3 * u * self.spec.target_vocab_size

    # -- pieces shared by teacher forcing and greedy decoding ---------------------------------

    def encode(self, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Source (B, T[, C]) -> states (B, T, S), mask (B, T), summary c (B, S), s_0 (L, B, S)."""
        mask = padding_mask(inputs)  # (B, T)
        x = self.drop(self.src_embed(inputs))  # (B, T, E)
        states, summary = run_packed(self.encoder, x, mask.sum(dim=1))  # (B, T, S), (B, S)
        b = inputs.shape[0]
        s0 = torch.tanh(self.init_state(summary))  # (B, L*S)
        s0 = s0.view(b, self.layers, self.width).transpose(0, 1).contiguous()  # (L, B, S)
        return states, mask, summary, s0

    def decode(
        self,
        prev: Tensor,
        state: Tensor,
        enc: tuple[Tensor, Tensor, Tensor],
        need_weights: bool,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Decoder inputs (B, U) from state (L, B, S) -> logits (B, U, V), new state, weights."""
        states, mask, summary = enc
        u = prev.shape[1]
        y = self.drop(self.tgt_embed(prev))  # (B, U, E)
        x = torch.cat([y, summary[:, None, :].expand(-1, u, -1)], dim=-1)  # (B, U, E + S)
        with recurrence_in_float32(x) as x:
            dec, state = self.decoder(x, state.to(x.dtype))  # (B, U, S), (L, B, S)
        weights: Tensor | None = None
        if self.baseline:
            context = summary[:, None, :].expand(-1, u, -1)  # (B, U, S)
        else:
            context, weights = self.attn(
                dec, states, states, mask=mask[:, None, :], need_weights=need_weights
            )  # (B, U, A), (B, U, T)
        h = torch.tanh(self.combine(torch.cat([context, dec], dim=-1)))  # (B, U, S)
        return self.out(self.drop(h)), state, weights  # (B, U, V)

    # -- the backbone contract ------------------------------------------------------------------

    def forward(
        self, inputs: Tensor, targets: Tensor | None = None, need_weights: bool = False
    ) -> BackboneOutput:
        """Teacher forcing: targets (B, U) -> logits (B, U, V); weights (B, U, T)."""
        if targets is None:
            raise ValueError("seq2seq.forward needs targets (teacher forcing); use generate()")
        states, mask, summary, s0 = self.encode(inputs)
        bos = targets.new_full((targets.shape[0], 1), BOS)
        prev = torch.cat([bos, targets[:, :-1]], dim=1)  # (B, U) BOS + targets[:, :-1]
        logits, _, weights = self.decode(prev, s0, (states, mask, summary), need_weights)
        return BackboneOutput(logits=logits, weights=weights if need_weights else None)

    @torch.no_grad()
    def generate(
        self, inputs: Tensor, max_len: int | None = None, need_weights: bool = False
    ) -> BackboneOutput:
        """Greedy decoding from BOS: tokens (B, U') (PAD after EOS), weights (B, U', T).

        Stops when every sequence has produced EOS or after ``max_len`` tokens
        (default ``spec.max_target_len``).
        """
        max_len = self.max_target_len if max_len is None else max_len
        if max_len <= 0:
            raise ValueError(f"generate needs a positive max_len, got {max_len}")
        states, mask, summary, state = self.encode(inputs)
        enc = (states, mask, summary)
        b, t = mask.shape
        tokens = inputs.new_full((b, max_len), PAD)  # (B, max_len), filled column by column
        keep = need_weights and not self.baseline
        weights = states.new_zeros(b, max_len, t) if keep else None  # (B, max_len, T)
        done = torch.zeros(b, dtype=torch.bool, device=inputs.device)
        prev = inputs.new_full((b, 1), BOS)  # (B, 1)
        steps = 0
        for step in range(max_len):
            logits, state, w = self.decode(prev, state, enc, need_weights)  # (B, 1, V)
            prev = logits.argmax(dim=-1).masked_fill(done[:, None], PAD)  # (B, 1)
            tokens[:, step] = prev[:, 0]
            if weights is not None and w is not None:  # w: (B, 1, T)
                weights[:, step] = w[:, 0].masked_fill(done[:, None], 0.0)
            done |= prev[:, 0] == EOS
            steps = step + 1
            if bool(done.all()):
                break
        return BackboneOutput(
            tokens=tokens[:, :steps],
            weights=weights[:, :steps] if weights is not None else None,
        )

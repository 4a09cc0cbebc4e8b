"""The attention contract every variant follows, and the helpers they share.

Notation: B batch, Tq query length, Tk key length, Dq/Dk/Dv widths, H heads.

A variant is a subclass of ``Attention`` (this module) built as
``Cls(d_query, d_key, d_value, **yaml_params)`` and called as

    context, weights = attn(query, key, value, mask=None, need_weights=False)

- query ``(B, Tq, Dq)``, key ``(B, Tk, Dk)``, value ``(B, Tk, Dv)``;
- mask: bool, broadcastable to ``(B, Tq, Tk)``, True = may attend, or None (attend everywhere);
- context ``(B, Tq, attn.out_dim)``;
- weights ``(B, Tq, Tk)`` (averaged over heads) only when ``need_weights``; otherwise None, and the
  fast path must not materialise them (fused SDPA where the maths allows).
- Masked keys get exactly zero weight; a row with no key to attend to gives a zero context and
  zero weights, never NaN.

Facts a variant declares (class attributes and methods of ``Attention``, each with a default, so a
new variant states only what differs; the pre-flight, the bench and the tests read them here and
keep no list of names):
- ``name``: the registry name (set by ``@ATTENTION.register``).
- ``reference``: the paper equation the variant implements (required: no default).
- ``baseline`` (False): True only for ``none``; each backbone then uses its own no-attention path.
- ``projects`` (False): True when the variant learns its own input/output projections
  (``multihead``); backbones that work on projected queries/keys/values (the Transformer) add
  them around variants that do not.
- ``fused`` (False): the fast path is one fused SDPA call and the weights path one softmax.
- ``materialises`` (True): the training forward builds (B, Tq, Tk)-sized scores of its own (False:
  fused SDPA, or an O(T) form such as ``linear``'s sums).
- ``equal_widths`` (False): its score compares q with k directly, so d_query must equal d_key
  (``require_equal_widths`` refuses other widths and names the variants that take them).
- ``bounded_in_bf16`` (False): under bfloat16 autocast the fast path stays within 2e-2 of
  float32 even at large inputs (bounded scores, or sums kept in float32); dot-product scores of
  unbounded inputs do not.
- ``references`` (none): other ways to compute the same output that ``attnbench bench`` times
  beside the variant, by kind: ``naive`` (every intermediate materialised), ``bare`` (the bare
  SDPA call of the fast path), ``plain`` (the variant as plain torch calls), ``torch``
  (PyTorch's own module for it); see ``Reference``.
- ``memory_bytes(call, path)``: the bytes one forward+backward holds beyond its inputs, output
  and their gradients (default: from ``fused``/``materialises``);
- ``flops(call)``: the FLOPs of one forward+backward as torch's FLOP counter counts them (a
  written formula, cross-checked by a test against the counter; default None: the bench counts);
- ``length_limit()``: (setting, value) of the longest key sequence the module takes (default
  None: any length), checked by the pre-flight against the task.
- ``causal`` (True): it can be a causal language model's token mixer (``backbone=lm``): under a
  causal mask no output depends on a later key, and ``decode`` runs it step by step. False for
  ``lowrank``, whose Linformer projection spans the whole length; the LM refuses it.
- ``accepts_rotary`` (False) / ``accepts_bias`` (False): it applies a positional scheme inside
  attention (causal.py's ``Positions``): RoPE's rotation of its queries and keys, ALiBi's bias on
  its logits. Such a variant's ``forward`` takes a keyword ``positions`` (default None); a
  backbone passes it only to a variant that declares the fact, and refuses a scheme the variant
  cannot take, naming the variants that can.
- ``decode(query, key, value, keep, state, positions)``: causal self-attention of the S newest
  positions given what earlier calls kept (causal.py); default: a ``KVCache`` of every key and
  value, and ``forward`` over them.

Precision (``torch.autocast``, or 16-bit tensors as ``bench.dtype=bf16`` passes them): products
run in the dtype autocast gives them (the fused SDPA kernels take bfloat16/float16 and keep their
logits and softmax in float32 themselves); what normalises runs in float32, as CUDA autocast
treats softmax, norms and sums. So the weights path's logits (``dot_scores``: float32 products of
the operands SDPA would get), the softmax, additive's tanh scores, cosine's norms and linear's and
lowrank's length-wise kernel sums are float32. Contexts come back in the dtype a matmul would give
here (``mix_dtype``: the autocast dtype under autocast); weights come back in float32, so a row
sums to 1 within float32 rounding (bfloat16 weights missed 1 by up to 7e-3). In float32 and
float64 every step of this is a no-op: the same aten ops run as without it.

Helpers any variant (built-in or plugin) may use, so the same check or step reads the same
everywhere: ``check_widths``, ``require_equal_widths`` and ``check_dropout`` for the constructor;
``expand_mask``, ``masked_softmax``, ``softmax_mix``, ``dot_scores``, ``sdpa_mask`` and
causal.py's ``fold_bias`` for the forward pass; ``upcast``, ``mix_dtype`` and
``full_precision`` for precision.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnbench.attention.causal import KVCache, Positions, causal_rows

# Wiring arguments the backbone passes; everything else comes from conf/attention/<name>.yaml.
CONTEXT_ARGS: tuple[str, ...] = ("d_query", "d_key", "d_value")


@dataclass(frozen=True)
class Call:
    """The sizes of one attention call, for the cost facts: B batch, Tq queries, Tk keys, bytes
    per element (4 float32, 2 bfloat16/float16), and whether a bool mask is passed (backbones
    always pass one; the bench does not)."""

    batch: int
    tq: int
    tk: int
    element_bytes: int = 4
    masked: bool = True

    @property
    def pairs(self) -> int:
        """B·Tq·Tk: the elements of one (B, Tq, Tk) tensor."""
        return self.batch * self.tq * self.tk


@dataclass(frozen=True)
class Reference:
    """A way to compute what a variant computes, timed beside it by ``attnbench bench``:
    ``fn(attn, *inputs)``. ``inputs`` turns the case's random (B, T, D) queries, keys and values
    into the tensors the timed call takes (its gradient leaves); None means it takes them as
    they are and returns the variant's (B, T, out_dim) output. ``peer`` builds a module (e.g.
    PyTorch's own implementation) from the variant's weights: ``fn`` then gets it instead of the
    variant, and its parameters are the gradient leaves. ``causal``: ``fn`` also takes
    ``causal=True`` and then computes the variant's causal form (each query sees the keys up to
    its own position: SDPA's ``is_causal``, or causal.py's ``hide_future`` on materialised
    scores); ``bench.causal=true`` times only the references that declare it."""

    fn: Callable[..., Tensor]
    inputs: Callable[[Any, Tensor, Tensor, Tensor], tuple[Tensor, ...]] | None = None
    peer: Callable[[Any], nn.Module] | None = None
    causal: bool = False


class Attention(nn.Module):
    """Base class of every variant: the widths, and the facts (module docstring) with their
    defaults. A subclass sets ``reference``, overrides what differs and implements ``forward``."""

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    baseline: ClassVar[bool] = False
    projects: ClassVar[bool] = False
    fused: ClassVar[bool] = False
    materialises: ClassVar[bool] = True
    bounded_in_bf16: ClassVar[bool] = False
    equal_widths: ClassVar[bool] = False
    causal: ClassVar[bool] = True
    accepts_rotary: ClassVar[bool] = False
    accepts_bias: ClassVar[bool] = False
    references: ClassVar[Mapping[str, Reference]] = MappingProxyType({})
    heads: int = 1  # H: score matrices per call (multihead and local set theirs)

    def __init__(self, d_query: int, d_key: int, d_value: int) -> None:
        super().__init__()
        check_widths(d_query, d_key, d_value)
        self.d_query, self.d_key, self.d_value = d_query, d_key, d_value
        self.out_dim = d_value

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def decode(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        keep: Tensor,
        state: Any = None,
        positions: Positions | None = None,
    ) -> tuple[Tensor, Any]:
        """Causal self-attention of the S newest positions of a sequence: query (B, S, Dq), key
        (B, S, Dk), value (B, S, Dv) for them, ``keep`` (B, S) True where they are real tokens,
        ``state`` what the previous call returned (None at the start), ``positions`` the S
        queries' and all t + S keys' positions. Returns the (B, S, out_dim) contexts, which equal
        the last S rows of ``forward`` over the whole sequence under its causal mask (each
        position sees the real positions up to itself), and the state for the next call.

        Default: a ``KVCache`` of the keys and values given so far, and ``forward`` over them."""
        cache = KVCache.extend(state, key, value, keep)
        mask = causal_rows(cache.keep, query.shape[1])  # (B, S, t + S)
        extra = {} if positions is None else {"positions": positions}
        context, _ = self(query, cache.key, cache.value, mask, False, **extra)
        return context, cache

    def memory_bytes(self, call: Call, path: Literal["fast", "naive"] = "fast") -> int:
        """The most bytes one forward+backward of ``path`` holds at once beyond its inputs, its
        output and their gradients (scores, weights, saved activations, scratch), in
        ``call.element_bytes`` (16-bit operands keep float32 sums where the variant does).

        Default: a variant that materialises holds H (B, Tq, Tk) scores, weights and their
        gradients, as does every ``naive`` reference; a fused one the (B, H, Tq) log-sum-exp and,
        when masked, the (B, Tq, Tk) float mask SDPA makes of the bool one.
        """
        e = call.element_bytes
        if path == "naive" or self.materialises:
            return 4 * call.pairs * self.heads * e
        return (call.pairs if call.masked else 0) * e + 2 * call.batch * self.heads * call.tq * e

    def flops(self, call: Call) -> float | None:
        """FLOPs of one forward+backward of the fast path (inputs and weights get gradients),
        counted as ``torch.utils.flop_counter`` counts them: 2 per multiply-add of matmuls and
        SDPA, whose backward recomputes the scores (2.5x its forward); element-wise work is not
        counted. None (default): no written formula; the bench counts every variant anyway."""
        return None

    def length_limit(self) -> tuple[str, int] | None:
        """(key in the attention group, value) of the longest key sequence this module takes;
        None: any length."""
        return None


def check_widths(d_query: int, d_key: int, d_value: int) -> None:
    """Refuse a query, key or value width below 1, naming the argument."""
    for arg, dim in (("d_query", d_query), ("d_key", d_key), ("d_value", d_value)):
        if dim < 1:
            raise ValueError(f"{arg} must be a positive width (>= 1), got {dim}")


def require_equal_widths(
    name: str, d_query: int, d_key: int, why: str, alternatives: tuple[str, ...] | None = None
) -> None:
    """Refuse d_query != d_key for a variant whose score compares q and k directly (its fact
    ``equal_widths``).

    ``why`` says what the score does with q and k (``"scores qᵀk"``); ``alternatives`` names the
    variants that take different widths (default: every registered variant whose
    ``equal_widths`` is False, the baseline aside). The message reads "<name> attention <why>,
    so d_query must equal d_key; got d_query=.., d_key=.. (use 'a', 'b' or 'c' for different
    widths)".
    """
    if d_query != d_key:
        if alternatives is None:
            from attnbench.attention import ATTENTION

            variants = [ATTENTION.get(n) for n in ATTENTION.names()]
            alternatives = tuple(v.name for v in variants if not (v.equal_widths or v.baseline))
        quoted = [f"'{alt}'" for alt in alternatives]
        use = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)
        raise ValueError(
            f"{name} attention {why}, so d_query must equal d_key; got "
            f"d_query={d_query}, d_key={d_key} (use {use} for different widths)"
        )


def check_dropout(dropout: float) -> None:
    """Refuse a dropout probability outside [0, 1)."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def expand_mask(mask: Tensor | None, b: int, tq: int, tk: int) -> Tensor | None:
    """Broadcast a bool mask to (B, Tq, Tk); None stays None."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"attention mask must be bool (True = may attend), got {mask.dtype}")
    return mask.expand(b, tq, tk)


def upcast(x: Tensor) -> Tensor:
    """x in float32 if it is a 16-bit float (bfloat16, float16); any other tensor as it is."""
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype autocast casts x's matmuls to here, or None outside autocast (and for float64,
    which autocast leaves alone)."""
    device = x.device.type
    if x.dtype == torch.float64 or not _has_autocast(device):
        return None
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


@functools.cache
def _has_autocast(device: str) -> bool:
    """Whether autocast exists for this device type (``is_autocast_enabled`` raises if not)."""
    return torch.amp.is_autocast_available(device)


def mix_dtype(x: Tensor) -> torch.dtype:
    """The dtype a matmul with x returns here: the autocast dtype under autocast, else x's own."""
    return _autocast_dtype(x) or x.dtype


def full_precision(x: Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on x's device (ops then run in their inputs' dtypes); a no-op outside it."""
    if _autocast_dtype(x) is None:
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, enabled=False)


def attend_in_float32(
    attend: Callable[[Tensor, Tensor, Tensor, Tensor | None, bool], tuple[Tensor, Tensor | None]],
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None]:
    """``attend(q, k, v, mask, need_weights)`` with autocast off and 16-bit operands in float32
    (sums over the sequence and their normalisers lose too much in bfloat16); the context comes
    back in the dtype a matmul would give (``mix_dtype``), the weights as ``attend`` made them."""
    out = mix_dtype(value)  # the context's dtype: autocast's under autocast
    with full_precision(query):
        context, weights = attend(upcast(query), upcast(key), upcast(value), mask, need_weights)
    return context.to(out), weights


def dot_scores(query: Tensor, key: Tensor, scale: float) -> Tensor:
    """Logits scale · q kᵀ over the last two axes: (..., Tq, D), (..., Tk, D) -> (..., Tq, Tk).

    The operands are the ones fused SDPA would multiply (under autocast: rounded to the autocast
    dtype) and the products are summed and kept in float32, as SDPA keeps them, so the weights
    path sees the fast path's logits: a bfloat16 logit near 64 is off by up to 0.25 (weights
    off by 28%). Without autocast, in float32 or float64, this is ``query @ keyᵀ · scale``.
    """
    dtype = _autocast_dtype(query)
    if dtype is None:
        return upcast(query) @ upcast(key).transpose(-2, -1) * scale
    with torch.autocast(query.device.type, enabled=False):
        return query.to(dtype).float() @ key.to(dtype).float().transpose(-2, -1) * scale


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last axis with masked positions at exactly 0; empty rows give all zeros.

    16-bit scores are softmaxed in float32 and the weights returned in float32 (what CUDA
    autocast's softmax does), so they stay a distribution to float32 precision.
    """
    scores = upcast(scores)
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))
    has_any = mask.any(dim=-1, keepdim=True)
    # A fully masked row would be softmax(-inf...) = NaN: give it a finite row, then zero it.
    scores = torch.where(has_any, scores, torch.zeros_like(scores))
    return torch.softmax(scores, dim=-1) * has_any


def softmax_mix(
    scores: Tensor, mask: Tensor | None, value: Tensor, p: float
) -> tuple[Tensor, Tensor]:
    """Weights ``masked_softmax(scores, mask)`` and the values they mix: (context, weights).

    scores (..., Tq, Tk), mask broadcastable to it or None, value (..., Tk, Dv) ->
    context (..., Tq, Dv), weights (..., Tq, Tk). Dropout with probability ``p`` (0 = none)
    regularises the mixing only; the returned weights stay a distribution (float32 for 16-bit
    scores); the mixing runs in the values' dtype (or autocast's), like SDPA's.
    """
    weights = masked_softmax(scores, mask)  # (..., Tq, Tk)
    context = F.dropout(weights, p, training=p > 0).to(value.dtype) @ value  # (..., Tq, Dv)
    return context, weights


def sdpa_mask(mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """Prepare a bool mask for fused SDPA: returns (safe_mask, empty_rows).

    Fully masked rows are opened up (SDPA would return NaN for them) and reported in
    ``empty_rows`` (shape ``(..., Tq, 1)``) so the caller can zero their context afterwards.
    """
    if mask is None:
        return None, None
    empty = ~mask.any(dim=-1, keepdim=True)
    if not bool(empty.any()):
        return mask, None
    return mask | empty, empty

"""``bench.mode=decode``: one decoding step of a variant after a prefix of T positions, and the
state it holds there.

Notation: B batch (``bench.batch`` sequences decoded side by side), T the prefix length, P
positions per prefill call (``bench.prefill``; 0: ⌈T / 32⌉, at least 256), D width.

A case builds the variant (as training does), then the state of a T-position prefix through the
variant's own ``Attention.decode`` (a KV cache for the softmax variants, linear's running (S, z)
sums, local's window: attention/causal.py), P positions per call — a chunked prefill, so no call
holds more than a (B, P, T) mask. The timed call is the next step: one new position per sequence
(query, key and value (B, 1, D), all real) against that state, without autograd; its returned
state is dropped, so every repeat reads the same T-position state. Queries, keys and values are
independent random tensors (what the ``lm``'s mixer hands a variant after its q/k/v projections;
``bench.inputs`` does not apply).

The state's size is ``state_bytes``: the bytes of the tensors it holds (numel × element size,
each tensor once), found through dataclass fields, tuples, lists, dicts and object attributes, so
a plugin's own state is measured like a built-in's. A view counts its own elements (local's
window is a slice of the last step's cache: w positions, not the buffer it was cut from).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from attnbench.attention.base import Attention, Call
from attnbench.bench.device import DTYPES
from attnbench.bench.kernels import build_module
from attnbench.bench.plan import BenchSettings, Case

PREFILL_CALLS = 32  # bench.prefill=0: the prefix in this many decoding calls...
MIN_PREFILL = 256  # ...of at least this many positions each


def prefill_at(settings: BenchSettings, t: int) -> int:
    """P: positions per prefill call for a T-position prefix (never more than T)."""
    return min(t, settings.prefill or max(MIN_PREFILL, -(-t // PREFILL_CALLS)))


class DecodeRunner:
    """One decoding step of ``module`` against the fixed ``state`` of a T-position prefix: call
    it to run once (the runners' interface: ``phases``, ``clear``)."""

    def __init__(self, module: Attention, state: Any, step: tuple[Tensor, ...]) -> None:
        self.module = module
        self.state = state
        self.step = step  # query, key, value (B, 1, D) and keep (B, 1)
        self.state_bytes = state_bytes(state)

    def clear(self) -> None:
        """Nothing to clear: the step's new state is dropped as it returns."""

    def phases(self) -> tuple[Callable[[], None], ...]:
        return (self,)

    def __call__(self) -> None:
        with torch.inference_mode():
            self.module.decode(*self.step, self.state)


def build_decoder(case: Case, node: Mapping[str, Any], settings: BenchSettings,
                  device: str = "cpu") -> DecodeRunner:
    """The variant of `node` and the state of a ``case.n``-position prefix, built by its own
    ``decode`` P positions at a time (`prefill_at`); inputs drawn seeded on the CPU in float32
    (the same numbers on every device), then moved and cast."""
    dev, dtype = torch.device(device), DTYPES[settings.dtype]
    torch.manual_seed(settings.seed)
    attn = build_module(node, settings).eval().to(device=dev, dtype=dtype)
    b, d = settings.batch, settings.dim
    g = torch.Generator().manual_seed(settings.seed)

    def draw(s: int) -> tuple[Tensor, ...]:
        q, k, v = (torch.randn(b, s, d, generator=g).to(device=dev, dtype=dtype) for _ in "qkv")
        return q, k, v, torch.ones(b, s, dtype=torch.bool, device=dev)  # (B, S, D) ×3, (B, S)

    state, p = None, prefill_at(settings, case.n)
    with torch.inference_mode():
        for start in range(0, case.n, p):
            _, state = attn.decode(*draw(min(p, case.n - start)), state)
    return DecodeRunner(attn, state, draw(1))


def state_bytes(state: Any) -> int:
    """Bytes of the tensors a decoding state holds: numel × element size, each tensor once."""
    seen: set[int] = set()
    total = 0

    def walk(x: Any) -> None:
        nonlocal total
        if id(x) in seen:
            return
        seen.add(id(x))
        if isinstance(x, Tensor):
            total += x.numel() * x.element_size()
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name))
        elif isinstance(x, (list, tuple, set, frozenset)):
            for item in x:
                walk(item)
        elif isinstance(x, Mapping):
            for item in x.values():
                walk(item)
        elif hasattr(x, "__dict__") and not isinstance(x, type):
            for item in vars(x).values():
                walk(item)

    walk(state)
    return total


def estimate_bytes(case: Case, node: Mapping[str, Any], settings: BenchSettings,
                   states: Sequence[tuple[int, int]] = ()) -> int:
    """A generous estimate of a decoding case's peak memory: its state twice (the prefill's
    ``torch.cat`` holds the old and the new cache at once) plus one prefill call's own (the
    variant's ``memory_bytes`` for P queries over T keys, a (B, P, T) mask, ten (B, P, D)
    tensors). The state at T: extrapolated from `states`, the (T, bytes) this variant's state
    measured at shorter lengths (the line through the last two: flat for linear's sums and
    local's full window, growing for a cache; one: proportional), else a KV cache's
    2 × B × T × D."""
    b, t, d, e = settings.batch, case.n, settings.dim, settings.element_bytes
    p = prefill_at(settings, t)
    if len(states) >= 2:
        (n1, s1), (n2, s2) = states[-2], states[-1]
        state = s2 + max(0.0, (s2 - s1) / (n2 - n1)) * max(0, t - n2)
    elif states:
        n1, s1 = states[-1]
        state = s1 * max(1.0, t / n1)
    else:
        state = 2 * b * t * d * e
    module = build_module(node, settings, device="meta")
    prefill = module.memory_bytes(Call(b, p, t, e, masked=True), "fast") + b * p * t
    return int(2 * state + prefill + 10 * b * p * d * e)

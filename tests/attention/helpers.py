"""Shared by the tests of the O(n) variants: the masks backbones build, and a memory probe.

Notation: B batch, T length (queries = keys).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode


def decoder_mask(lengths: list[int], t: int, see_self: bool = True) -> Tensor:
    """(B, T, T) causal & key-padding mask, as the Transformer decoder builds it.

    With ``see_self`` every position also sees itself (the Transformer's ``| eye``); without it
    a padded position sees nothing at all (a fully masked row).
    """
    keep = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    causal = torch.ones(t, t, dtype=torch.bool).tril()  # (T, T)
    mask = causal[None] & keep[:, None, :]
    return mask | torch.eye(t, dtype=torch.bool) if see_self else mask


def padding_mask(lengths: list[int], t: int) -> Tensor:
    """(B, 1, T) key padding, True = real key."""
    return (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]


class LargestFloatTensor(TorchDispatchMode):
    """Records the largest floating-point tensor any aten op produces (forward and backward).

    Boolean masks are not counted: a per-query mask is (B, T, T) by construction, and classifying
    it costs temporaries of its own size.
    """

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor) and t.is_floating_point():
                self.numel = max(self.numel, t.numel())
        return out

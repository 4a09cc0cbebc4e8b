"""No attention: the control every other variant is compared against.

Notation: B batch, Tq query length, Tk key length, Dq/Dk/Dv widths.

The module returns a zero context and never any weights. Backbones see ``baseline = True`` and use
their own no-attention path instead (final encoder state, mean pooling, identity token mixer), so
the zero context only matters to code that calls the module directly.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from attnbench.attention import ATTENTION
from attnbench.attention.base import Attention, Call, expand_mask


@ATTENTION.register("none")
class NoAttention(Attention):
    baseline: ClassVar[bool] = True
    # Nothing to project: a backbone must not wrap this variant in projections of its own.
    projects: ClassVar[bool] = True
    materialises: ClassVar[bool] = False
    bounded_in_bf16: ClassVar[bool] = True  # zeros in any precision
    reference: ClassVar[str] = (
        "No attention: Sutskever et al. 2014 (fixed-size encoder state), Cho et al. 2014"
    )

    def __init__(self, d_query: int, d_key: int, d_value: int) -> None:
        super().__init__(d_query, d_key, d_value)

    def memory_bytes(self, call: Call, path: str = "fast") -> int:
        """Nothing beyond the zero context."""
        return 0

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, None]:
        b, tq, _ = query.shape
        expand_mask(mask, b, tq, key.shape[1])  # same mask checks as every other variant
        # weights stay None even when asked: there is no distribution over keys to show.
        return value.new_zeros(b, tq, self.d_value), None  # (B, Tq, Dv)

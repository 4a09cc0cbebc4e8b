"""Fault injection without test hooks in attnbench: test-only backbones registered for one test.

They are real registered components (what a plugin would do), chosen from the command line with
``backbone.name=fault_nan`` on top of the transformer YAML (same keyword arguments), and run
in-process by Hydra's basic launcher. Validation builds them but never calls `forward`, so
they pass every pre-flight check and fail only while training, as a real fault would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from torch import Tensor

from attnbench.backbones import BACKBONES
from attnbench.backbones.base import BackboneOutput
from attnbench.backbones.transformer import Transformer


class NanAfterTwoSteps(Transformer):
    """Trains normally for two steps, then its logits (and so the loss) become NaN."""

    def forward(self, inputs: Tensor, targets: Tensor | None = None,
                need_weights: bool = False) -> BackboneOutput:
        out = super().forward(inputs, targets, need_weights)
        if self.training:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls > 3:  # call 1 is the loop's kernel warm-up (no update), then 2 steps
                out.logits = out.logits * float("nan")
        return out


class RaisesWhileTraining(Transformer):
    """Raises an ordinary (non-attnbench) exception on its first training step."""

    def forward(self, inputs: Tensor, targets: Tensor | None = None,
                need_weights: bool = False) -> BackboneOutput:
        if self.training:
            raise RuntimeError("injected fault: the accelerator fell over")
        return super().forward(inputs, targets, need_weights)


FAULTS: dict[str, type] = {"fault_nan": NanAfterTwoSteps, "fault_raise": RaisesWhileTraining}


@pytest.fixture
def fault_backbones() -> Iterator[dict[str, type]]:
    """Register the fault backbones for one test (and remove them after: other tests list
    the registry)."""
    BACKBONES.names()  # load the built-ins first
    for name, cls in FAULTS.items():
        BACKBONES.register(name)(cls)
    try:
        yield FAULTS
    finally:
        for name in FAULTS:
            BACKBONES._items.pop(name, None)
            BACKBONES._origin.pop(name, None)

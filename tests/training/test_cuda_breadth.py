"""CUDA training of every attention variant on every backbone, in each precision (issue 13).

Marked ``gpu``; every test also skips itself without a CUDA device (``needs_cuda``), so a CPU-only
machine collects and skips them.

Breadth: each (backbone, variant) pair trains on ``device="cuda"`` with the smoke trainer (batch
16, one evaluation batch, a loss logged every step), in ``trainer.precision`` 32, bf16 (skipped on
a GPU without native bfloat16) and 16 (autocast and gradient scaling). Pairs, tasks and sizes are
those of the CPU breadth test (``test_bf16_breadth``: backbones and variants globbed from conf/, a
task each backbone can run, width 16), so a new YAML is covered here too. Each run then validates
and tests as a run does, and the test checks what moving to a device must not break:

- the parameters (and buffers) are on CUDA and the parameters stay float32 (autocast casts per op,
  never the weights);
- every tensor the model and its attention modules are called with is on CUDA (forward
  pre-hooks): the batches, the targets for teacher forcing, the masks backbones build from them;
- the training losses are finite, validation and test losses too, and the weights changed;
- ``FitResult.best_state`` is on the CPU (``fit`` copies it there, loop.py) and holds the weights
  the model ends with (the smoke run validates once, at its end);
- ``cost["peak_mem_mb"]``, the allocator's peak above the run's base, is positive.

float16 runs 4 steps, not 2: ``torch.amp.GradScaler`` starts at a scale of 2¹⁶ and skips the
optimiser step (halving the scale) whenever the scaled gradients overflow float16, so a 2-step run
could skip both and leave every weight untouched without anything being wrong. The smoke epoch's
4 steps leave room for 3 such skips.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from attnbench.attention import ATTENTION
from attnbench.training.config import PRECISIONS
from attnbench.training.device import native_bf16
from attnbench.training.loop import fit
from tests.training.conftest import RECALL, Recorder, case
from tests.training.test_bf16_breadth import _names, _overrides, refused
from tests.training.test_device import needs_cuda
from tests.training.test_run_memory import HUNGRY, _fit

pytestmark = [pytest.mark.gpu, needs_cuda]

STEPS = 2
STEPS_16 = 4  # float16: room for GradScaler's overflow skips (module docstring)
VARIANTS = tuple(ATTENTION.get(name) for name in ATTENTION.names())


class Seen:
    """A forward pre-hook (``with_kwargs=True``): counts calls and keeps the device of every
    tensor a module is called with, positional or keyword (a mask is passed either way)."""

    def __init__(self) -> None:
        self.calls = 0
        self.devices: list[torch.device] = []

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls += 1
        self.devices += [t.device for t in (*args, *kwargs.values()) if isinstance(t, Tensor)]

    def all_on_cuda(self) -> bool:
        return bool(self.devices) and all(d.type == "cuda" for d in self.devices)


def _pairs() -> list:
    return [
        pytest.param(backbone, attention, id=f"{backbone}-{attention}")
        for backbone in _names("backbone")
        for attention in _names("attention")
        if not refused(backbone, attention)  # e.g. lm refuses lowrank (no causal form)
    ]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(("backbone", "attention"), _pairs())
def test_variant_trains_on_cuda(backbone: str, attention: str, precision: str) -> None:
    if precision == "bf16" and not native_bf16(torch.device("cuda")):
        pytest.skip("this GPU has no native bfloat16 (the trainer refuses it)")
    steps = STEPS_16 if precision == "16" else STEPS
    c = case(_overrides(backbone, attention), max_steps=steps, device="cuda", precision=precision)
    before = {k: v.detach().clone() for k, v in c.model.state_dict().items()}  # on the CPU
    model_seen, attn_seen = Seen(), Seen()
    c.model.register_forward_pre_hook(model_seen, with_kwargs=True)
    for module in c.model.modules():
        if isinstance(module, VARIANTS):
            module.register_forward_pre_hook(attn_seen, with_kwargs=True)
    sink = Recorder()
    result = fit(c.model, c.data, c.trainer, c.seed, sink)

    assert result.steps == steps
    assert all(p.is_cuda and p.dtype == torch.float32 for p in c.model.parameters())
    assert all(b.is_cuda for b in c.model.buffers())
    # Training steps, the kernels' warm-up step and the evaluation batches: all fed on CUDA.
    assert model_seen.calls > steps and model_seen.all_on_cuda(), model_seen.devices
    if attention != "none":  # the baseline's module is never called: backbones skip it
        assert attn_seen.calls > 0 and attn_seen.all_on_cuda(), attn_seen.devices

    losses = [m["train/loss"] for _, m in sink.logged if "train/loss" in m]
    assert len(losses) == steps and all(math.isfinite(x) and x > 0 for x in losses), losses
    assert math.isfinite(result.val["loss"]) and math.isfinite(result.test["loss"])

    after = c.model.state_dict()
    assert result.best_state.keys() == after.keys()
    assert all(v.device.type == "cpu" for v in result.best_state.values())
    assert all(torch.equal(result.best_state[k], v.cpu()) for k, v in after.items())
    assert all(torch.isfinite(v).all() for v in result.best_state.values() if v.is_floating_point())
    changed = [k for k, v in after.items() if not torch.equal(before[k], v.cpu())]
    assert changed, f"{steps} optimiser steps changed no weight"
    assert result.cost["peak_mem_mb"] > 0, result.cost


def test_the_same_job_reports_the_same_cuda_peak_first_or_after_a_hungry_job() -> None:
    """On CUDA ``peak_mem_mb`` is ``torch.cuda.max_memory_allocated`` since the run's start (the
    peak statistics are reset there) minus what was allocated then (memory.py): the same job
    must report the same figure again, and after a job that needed far more.

    The small job is tests/training/conftest.py's RECALL (width 16, batch 128, T = 12): every
    tensor it makes stays under 1 MiB, so the caching allocator serves it from its small pool,
    where a block is the request rounded up to 512 bytes whatever is cached. (A request over
    1 MiB comes from the large pool, which hands out a cached block unsplit when less than 1 MiB
    of it would remain: there the figure can depend on what an earlier job left cached.) Each
    job runs in its own call (``test_run_memory._fit``), so nothing of it outlives the call."""
    job = dict(max_steps=24, batch_size=128, eval_batch_size=96, log_every=8, device="cuda")
    first = _fit(RECALL, **job).cost
    repeat = _fit(RECALL, **job).cost
    hungry = _fit(HUNGRY, max_steps=4, batch_size=512, eval_batch_size=96, device="cuda").cost
    after = _fit(RECALL, **job).cost
    assert hungry["peak_mem_mb"] > 10 * first["peak_mem_mb"] > 0, (first, hungry)  # it needed more
    assert repeat["peak_mem_mb"] == pytest.approx(first["peak_mem_mb"], rel=0.05), (first, repeat)
    assert after["peak_mem_mb"] == pytest.approx(first["peak_mem_mb"], rel=0.05), (first, after)
    assert first["base_mem_mb"] > 0 and after["base_mem_mb"] > 0  # the model's weights at least

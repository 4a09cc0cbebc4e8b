"""Cost that compares across devices: tokens per second and model FLOPs utilisation (MFU).

`figures` runs once training ends (outside the timed training and the memory figures) and gives
`fit`'s cost record:

- ``tokens_per_s``: the real tokens of the training examples the run trained on, per second of
  training (``train_s``). A real token is a position whose id (channel 0) is not PAD; a
  transduction's decoder also reads its targets (BOS + targets[:-1]: as many positions as the
  target's non-PAD tokens), which count too. Counted exactly: every finished epoch is the whole
  split, and the batches of an unfinished one (``max_steps``, ``max_time``) are drawn again from
  the generator state that epoch began with (`steps.batches`, the loop's own order).
- ``flops_per_sample``: the model FLOPs of one training example, forward and backward, as
  ``torch.utils.flop_counter`` counts them on a few training examples (matmuls, convolutions and
  SDPA, 2 per multiply-add; element-wise work and the optimiser are not model FLOPs): the
  convention of MFU (Chowdhery et al. 2022, PaLM, App. B). A kernel the counter has no formula for
  counts 0 (e.g. cuDNN's fused RNN on CUDA, oneDNN's RNN on the CPU).
- ``peak_gflops``: the device's dense matmul rate in the training's compute dtype (float32, or
  the autocast dtype) with this job's torch threads: the best of a few N×N products, N doubled
  until one takes PEAK_CALL_S (at most PEAK_BUDGET_S in all, measured once per process and
  device/dtype/threads). Measured the same way on a CPU and a GPU, so MFU means the same on each
  (a datasheet figure would be higher: measured matmul rates reach 70-90 % of it on GPUs).
- ``mfu``: 100 × flops_per_sample × samples / train_s / (peak_gflops × 1e9), in percent.

``tokens_per_s``, ``peak_gflops`` and ``mfu`` are timings (never held against a reproduction);
``flops_per_sample`` is a fact of the model and its data shape.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from typing import Any

import torch
from torch import Tensor

from attnbench.backbones.base import Backbone
from attnbench.tasks.base import PAD, Split, TaskData
from attnbench.training.config import TrainerConfig
from attnbench.training.device import AMP_DTYPES, autocast, synchronize
from attnbench.training.steps import batches, to_device, train_step

PEAK_CALL_S = 0.005  # grow the matmul until one product takes this long
PEAK_BUDGET_S = 0.3  # the peak's whole measurement stops growing past this
PEAK_REPEATS = 3
PEAK_MAX_N = {"cpu": 2048, "cuda": 8192, "mps": 4096}
# Rows of the batch FLOPs are counted on: a split's batches are all as wide, so an example's
# FLOPs do not depend on how many share the batch, and the counter's per-op Python dispatch
# costs the same for 8 rows as for 64 (0.12 s instead of 0.23-0.52 s for the default model here)
FLOP_ROWS = 8


def figures(model: Backbone, data: TaskData, cfg: TrainerConfig, device: torch.device,
            loop: Any, train_s: float) -> dict[str, float]:
    """The cost figures of a finished `fit` (`loop`: its `state.LoopState`) — see the module
    docstring. MFU is left out when the peak or the FLOPs are unknown (0)."""
    tokens = trained_tokens(data.train, data.spec.kind, cfg.batch_size, loop.epoch,
                            loop.position, loop.order_start)
    out = {"tokens_per_s": tokens / train_s if train_s else 0.0}
    flops = flops_per_sample(model, data, cfg, device)
    out["flops_per_sample"] = flops
    dtype = AMP_DTYPES[str(cfg.precision)] or torch.float32
    peak = matmul_peak_gflops(str(device), dtype, torch.get_num_threads())
    if peak:
        out["peak_gflops"] = peak
        if flops and train_s:
            out["mfu"] = 100.0 * flops * loop.samples / train_s / (peak * 1e9)
    return out


# -- tokens --------------------------------------------------------------------------------------
def real_tokens(split: Split, kind: str) -> Tensor:
    """(N,) the real (non-PAD) tokens of each example: its input positions, plus its target
    tokens for a transduction (what the decoder reads)."""
    ids = split.inputs if split.inputs.dim() == 2 else split.inputs[..., 0]  # (N, T)
    count = (ids != PAD).sum(dim=1)
    if kind == "transduce":
        count = count + (split.targets != PAD).sum(dim=1)
    return count


def trained_tokens(split: Split, kind: str, batch_size: int, epoch: int, position: int,
                   order_start: Tensor) -> int:
    """Real tokens of the examples the loop trained on: `epoch - 1` whole epochs, then the first
    `position` batches of epoch `epoch`, whose order starts from generator state `order_start`."""
    per_example = real_tokens(split, kind)
    total = (epoch - 1) * int(per_example.sum())
    if position:
        gen = torch.Generator()
        gen.set_state(order_start)
        counts = Split(per_example, per_example)
        total += sum(int(x.sum()) for x, _ in itertools.islice(
            batches(counts, batch_size, gen), position))
    return total


# -- FLOPs ---------------------------------------------------------------------------------------
def _sdpa_forward(query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _sdpa_backward(grad: Any, query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad, query, key, value)


def _matrices(weights: Any) -> int:
    """Multiply-adds per position of a fused RNN's weights: every 2-D weight (W_ih, W_hh of each
    layer and direction) meets every position once."""
    shapes = weights if isinstance(weights, (list, tuple)) else [weights]
    return sum(s[0] * s[1] for s in shapes if s is not None and len(s) == 2)


def _positions(input_shape: Any) -> int:
    """T·B of an RNN input (T, B, D), (B, T, D) or packed (sum of lengths, D)."""
    return math.prod(input_shape[:-1])


def _rnn_forward(input: Any, *weights: Any, **__: Any) -> int:
    """One fused RNN layer/stack forward: 2 per multiply-add of each weight at each position
    (the gates' products; their element-wise work is not counted)."""
    return 2 * _positions(input) * _matrices([w for w in weights[:4] if _is_shape(w)])


def _rnn_backward(input: Any, *weights: Any, **__: Any) -> int:
    """Its backward: the inputs' and states' gradients and the weights' gradients, each the
    forward's products again (2x forward, as for a Linear)."""
    return 2 * _rnn_forward(input, *weights)


def _cudnn_forward(input: Any, weight: Any, *_: Any, **__: Any) -> int:
    return 2 * _positions(input) * _matrices(weight)


def _cudnn_backward(input: Any, weight: Any, *_: Any, **__: Any) -> int:
    return 2 * _cudnn_forward(input, weight)


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list, torch.Size)) and all(isinstance(v, int) for v in value)


def _fused_kernels() -> dict[Any, Any]:
    """FLOP formulas (on shapes) for fused kernels ``torch.utils.flop_counter`` does not list:
    the CPU's SDPA (it counts the CUDA ones; the same counts), oneDNN's LSTM layer (CPU) and
    cuDNN's RNN (CUDA). A GRU on the CPU runs as matmuls, which the counter counts itself."""
    aten = torch.ops.aten
    found = {
        aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward,
    }
    for name, formula in (("mkldnn_rnn_layer", _rnn_forward),
                          ("mkldnn_rnn_layer_backward", _rnn_backward),
                          ("_cudnn_rnn", _cudnn_forward),
                          ("_cudnn_rnn_backward", _cudnn_backward)):
        op = getattr(aten, name, None)
        if op is not None:
            found[op] = formula
    return found


def count_flops(run: Any) -> float:
    """FLOPs of one call of `run` as ``torch.utils.flop_counter`` counts them: matmuls,
    convolutions and SDPA, plus the fused kernels of `_fused_kernels`; 2 per multiply-add;
    element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_fused_kernels()) as counter:
        run()
    return float(counter.get_total_flops())


def flops_per_sample(model: Backbone, data: TaskData, cfg: TrainerConfig,
                     device: torch.device) -> float:
    """Model FLOPs of one training example: a training step's forward and backward (no update)
    of the first FLOP_ROWS training examples (at most a batch), counted, divided by the rows. The
    model is left as it was: its gradients, train/eval mode and the random generators (dropout
    draws) are put back."""
    rows = min(cfg.batch_size, FLOP_ROWS, len(data.train))
    if rows == 0:
        return 0.0
    move, amp = to_device(device), autocast(device, cfg.precision)
    x, y = move(data.train.inputs[:rows]), move(data.train.targets[:rows])
    params = list(model.parameters())
    grads, mode = [p.grad for p in params], model.training
    cuda = [device] if device.type == "cuda" else []
    try:
        for p in params:
            p.grad = None
        with torch.random.fork_rng(devices=cuda, device_type=device.type):
            model.train()
            flops = count_flops(lambda: train_step(model, x, y, data.spec.kind, amp, 0.0))
    finally:
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        model.train(mode)
    return flops / rows


# -- the device's peak ---------------------------------------------------------------------------
@functools.cache
def matmul_peak_gflops(device: str, dtype: torch.dtype, threads: int) -> float | None:
    """The best N×N @ N×N rate on `device` in `dtype` (GFLOP/s; `threads`: the torch threads it
    ran with, part of the cache key), N doubled from 64 until one product takes PEAK_CALL_S, the
    measurement has spent PEAK_BUDGET_S, or N reaches PEAK_MAX_N; None if it cannot run."""
    dev = torch.device(device)
    try:
        started, n, best = time.perf_counter(), 64, 0.0
        while True:
            a, b = (torch.randn(n, n, device=dev).to(dtype) for _ in range(2))
            a @ b  # warm-up
            synchronize(dev)
            seconds = []
            for _ in range(PEAK_REPEATS):
                t0 = time.perf_counter()
                a @ b
                synchronize(dev)
                seconds.append(time.perf_counter() - t0)
            best = max(best, 2.0 * n**3 / max(min(seconds), 1e-9) / 1e9)
            spent = time.perf_counter() - started
            if (min(seconds) >= PEAK_CALL_S or spent >= PEAK_BUDGET_S
                    or n >= PEAK_MAX_N.get(dev.type, 2048)):
                return best
            n *= 2
    except (RuntimeError, TypeError):  # a dtype the device cannot multiply in
        return None

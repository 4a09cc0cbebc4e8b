"""One step's mechanics, shared by the loop, the CPU memory probe (memory.py) and `attnbench
evaluate`: batches of a split, moving them to the device, the loss, a training step, and
evaluating a split.

Notation: B batch, T input length, U target length, K classes, V target vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.backbones.base import Backbone
from attnbench.tasks.base import IGNORE, PAD, Split, TaskData
from attnbench.tasks.metrics import compute_metrics
from attnbench.training.config import TrainerConfig
from attnbench.training.device import autocast


def batches(
    split: Split, size: int, generator: torch.Generator | None, skip: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of `split` in a random order (or in order without a generator), from batch
    `skip` of the order on (the order is drawn whole either way, so the generator advances the
    same)."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(skip * size, n, size):
        idx = order[start : start + size]
        yield split.inputs[idx], split.targets[idx]


def to_device(device: torch.device) -> Callable[[Tensor], Tensor]:
    """Moves a host batch to `device`: asynchronously from pinned memory on CUDA."""
    if device.type == "cpu":
        return lambda t: t
    if device.type == "cuda":
        return lambda t: t.pin_memory().to(device, non_blocking=True)
    return lambda t: t.to(device)


def loss_fn(logits: Tensor, targets: Tensor, kind: str, reduction: str = "mean") -> Tensor:
    # classify: (B, K) | (B, T, K) vs (B,) | (B, T); transduce: (B, U, V) vs (B, U)
    ignore = PAD if kind == "transduce" else IGNORE
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=ignore,
                           reduction=reduction)


def train_step(
    net: torch.nn.Module,
    x: Tensor,
    y: Tensor,
    kind: str,
    amp: Callable[[], contextlib.AbstractContextManager[object]],
    grad_clip: float,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[Tensor, bool]:
    """One training step as the loop takes it: the forward pass under `amp`, the float32 loss,
    the previous gradients zeroed only then (they are alive during the forward pass), backward,
    clipping to `grad_clip` (0: none), the update; with `scaler` (precision 16) the scaled
    versions. Without `optimizer` no update (the kernels' warm-up). Returns (loss, skipped):
    skipped when the scaler found inf/NaN gradients and made no update."""
    with amp():
        out = net(x, y if kind == "transduce" else None)
    loss = loss_fn(out.logits.float(), y, kind)
    if optimizer is not None:
        optimizer.zero_grad()
    if scaler is not None and optimizer is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        scale = scaler.get_scale()  # (step syncs already: it reads found_inf)
        scaler.step(optimizer)
        scaler.update()
        return loss, scaler.get_scale() < scale
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    if optimizer is not None:
        optimizer.step()
    return loss, False


@torch.no_grad()
def evaluate(
    model: Backbone, data: TaskData, split: Split, cfg: TrainerConfig
) -> dict[str, float]:
    """The task's metrics on `split` plus "loss" (float32 cross-entropy per scored target, with
    teacher forcing for transduction), on the model's device in `cfg.precision`."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device  # no parameters: the CPU
    amp, move = autocast(device, cfg.precision), to_device(device)
    kind = data.spec.kind
    preds: list[Tensor] = []
    targets: list[Tensor] = []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    scored = torch.zeros((), dtype=torch.int64, device=device)
    for i, (x, y) in enumerate(batches(split, cfg.eval_batch_size, None)):
        if cfg.limit_eval_batches and i >= cfg.limit_eval_batches:
            break
        x, y = move(x), move(y)
        with amp():
            if kind == "classify":
                logits = model(x).logits  # (B, K) | (B, T, K)
                p = logits.argmax(-1)  # (B,) | (B, T)
            else:
                logits = model(x, y).logits  # (B, U, V), teacher forcing
                p = model.generate(x, max_len=data.spec.max_target_len).tokens  # (B, U')
                # pad to the target width so batches concatenate
                p = F.pad(p, (0, max(0, y.shape[1] - p.shape[1])), value=PAD)[:, : y.shape[1]]
        loss_sum += loss_fn(logits.float(), y, kind, reduction="sum")
        scored += (y != (PAD if kind == "transduce" else IGNORE)).sum()
        preds.append(p)
        targets.append(y)
    pred, target = torch.cat(preds), torch.cat(targets)
    refs = split.references[: len(target)] if split.references is not None else None
    out = compute_metrics(data.metrics, pred, target, data.target_itos, refs)
    out["loss"] = float(loss_sum / scored.clamp(min=1))
    return out

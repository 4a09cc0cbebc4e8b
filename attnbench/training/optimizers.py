"""The optimiser and learning-rate schedule, from torch.optim (`trainer.optimizer`, `.schedule`).

Schedules (k = the step about to be taken, 1-based; W = warmup_steps; S = the run's planned
steps; lr_k = lr · f(k)):

- every schedule warms up linearly: f(k) = k / W for k <= W (none when W = 0);
- ``constant``: f(k) = 1 after the warm-up (the trainer's behaviour before the choice existed:
  AdamW + this LambdaLR, bit for bit the numbers of the hand-written AdamW it replaced);
- ``warmup_linear``: f(k) = 1 - p, p = (k - W) / (S - W), so the last step's lr is 0;
- ``warmup_cosine``: f(k) = (1 + cos(π p)) / 2, the same p: 1 after the warm-up, 0 at step S.

``adam`` applies weight_decay as an L2 term in the gradient (torch.optim.Adam); ``adamw``
decouples it (Loshchilov & Hutter 2019); ``sgd`` uses ``trainer.momentum``. On CUDA the fused
kernels are used; elsewhere torch picks (single-tensor on CPU, the numerics the tests pin).

torch.optim's first optimiser builds or steps import torch._dynamo (about 1 s): `prefetch()`
does that on a daemon thread while the run builds its data and model, and `fit` joins it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from attnbench.training.config import TrainerConfig


def lr_factor(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """f as LambdaLR calls it: with the number of steps already taken (k - 1)."""

    def factor(done: int) -> float:
        k = done + 1
        if warmup_steps and k <= warmup_steps:
            return k / warmup_steps
        if schedule == "constant" or total_steps <= warmup_steps:
            return 1.0
        p = min(1.0, (k - warmup_steps) / (total_steps - warmup_steps))
        if schedule == "warmup_linear":
            return 1.0 - p
        return 0.5 * (1.0 + math.cos(math.pi * p))

    if schedule not in ("constant", "warmup_linear", "warmup_cosine"):
        raise ValueError(f"unknown schedule {schedule!r}")
    return factor  # a plain function: LambdaLR's state_dict stores None for it


def build_optimizer(
    params: Iterable[Tensor], cfg: TrainerConfig, device: torch.device
) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    kernel = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kernel)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kernel)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, **kernel)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def build_schedule(
    optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(cfg.schedule, cfg.warmup_steps, total_steps)
    )


def warm_up() -> None:
    """Build and step a one-element optimiser and schedule: what the first real step imports.
    Touches neither the random generators nor anything outside torch."""
    p = torch.zeros(1, requires_grad=True)
    p.grad = torch.zeros(1)
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    opt.step()
    sched.step()


def prefetch() -> threading.Thread:
    """Start `warm_up` on a daemon thread and return it (pass it to `fit(warm=...)`).

    Start it once torch is imported, before building data and model; only torch modules are
    imported on it, so it cannot deadlock with another thread's imports of other packages.
    """
    thread = threading.Thread(target=warm_up, name="attnbench-optim-prefetch", daemon=True)
    thread.start()
    return thread

"""The trainer's optimiser: AdamW with linear warm-up, step for step what
``torch.optim.AdamW`` + ``torch.optim.lr_scheduler.LambdaLR`` compute on CPU, without torch.optim.

Why not torch.optim itself: building or stepping any ``torch.optim.Optimizer`` imports
``torch._dynamo`` (and sympy), 1.0-1.1 s of a run's start-up on a 2-core machine, a third of the
"CLI start to first training step <= 3 s" budget, for a compiler attnbench never uses. The update
below is torch's own single-tensor AdamW (``torch/optim/adam.py``, ``_single_tensor_adam`` with
``decoupled_weight_decay=True``, the path torch takes for CPU tensors), op for op, so the two
agree bit for bit (tests/test_optim.py checks it over warm-up, weight decay and skipped
gradients).

Update at step k (1-based), lr_k = lr · min(1, k / warmup_steps) (1 without warm-up), with
g the gradient, m and v the moment estimates:

    p ← p · (1 − lr_k · λ)
    m ← β1 m + (1 − β1) g,          v ← β2 v + (1 − β2) g²
    p ← p − lr_k / (1 − β1^k) · m / (√v / √(1 − β2^k) + ε)

(Loshchilov & Hutter 2019, Algorithm 2; the moments' step counts only the steps in which the
parameter had a gradient, as in torch.)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class AdamW:
    def __init__(
        self,
        params: Iterable[Tensor],
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        warmup_steps: int = 0,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("the optimiser got no trainable parameters")
        if any(p.is_complex() for p in self.params):  # torch treats them as real pairs; not here
            raise ValueError("complex parameters are not supported")
        if lr <= 0 or weight_decay < 0 or eps < 0 or warmup_steps < 0:
            raise ValueError("lr must be > 0; weight_decay, eps and warmup_steps >= 0")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.base_lr = lr
        self.weight_decay = weight_decay
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.warmup_steps = warmup_steps
        self.steps_taken = 0  # optimiser steps so far (what LambdaLR calls last_epoch)
        self.state: dict[int, tuple[int, Tensor, Tensor]] = {}  # id(p) -> (k, m, v)

    @property
    def lr(self) -> float:
        """The learning rate of the next step (as LambdaLR sets it: lr · f(steps so far))."""
        if not self.warmup_steps:
            return self.base_lr
        return self.base_lr * min(1.0, (self.steps_taken + 1) / self.warmup_steps)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        lr, wd, beta1, beta2 = self.lr, self.weight_decay, self.beta1, self.beta2
        for p in self.params:
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError("AdamW does not support sparse gradients")
            k, m, v = self.state.get(id(p)) or (
                0,
                torch.zeros_like(p, memory_format=torch.preserve_format),
                torch.zeros_like(p, memory_format=torch.preserve_format),
            )
            k += 1
            self.state[id(p)] = (k, m, v)
            if wd != 0:
                p.mul_(1 - lr * wd)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = float(k)  # torch keeps k in a float32 tensor and reads it back as a float
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            denom = (v.sqrt() / bias_correction2**0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)
        self.steps_taken += 1

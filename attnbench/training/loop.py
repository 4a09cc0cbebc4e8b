"""The train/eval loop: AdamW (optim.py), validation every epoch, test on the best weights.

Notation: B batch, T input length, U target length, K classes, V target vocabulary.
"""

from __future__ import annotations

import copy
import math
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from attnbench.backbones.base import Backbone
from attnbench.errors import RunFailed
from attnbench.tasks.base import IGNORE, PAD, Split, TaskData
from attnbench.tasks.metrics import compute_metrics
from attnbench.training.config import TrainerConfig
from attnbench.training.optim import AdamW


class MetricSink(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...


class Progress(Protocol):
    def start(self, total_steps: int) -> None: ...
    def advance(self, step: int, loss: float, note: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class FitResult:
    best_step: int
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    cost: dict[str, float]
    steps: int
    best_state: dict[str, Tensor] = field(repr=False, default_factory=dict)


def batches(
    split: Split, size: int, generator: torch.Generator | None
) -> Iterator[tuple[Tensor, Tensor]]:
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, size):
        idx = order[start : start + size]
        yield split.inputs[idx], split.targets[idx]


def loss_fn(logits: Tensor, targets: Tensor, kind: str) -> Tensor:
    # classify: (B, K) | (B, T, K) vs (B,) | (B, T); transduce: (B, U, V) vs (B, U)
    ignore = PAD if kind == "transduce" else IGNORE
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=ignore)


@torch.no_grad()
def predict(model: Backbone, data: TaskData, inputs: Tensor) -> Tensor:
    spec = data.spec
    if spec.kind == "classify":
        return model(inputs).logits.argmax(-1)  # (B,) | (B, T)
    return model.generate(inputs, max_len=spec.max_target_len).tokens  # (B, U')


@torch.no_grad()
def evaluate(model: Backbone, data: TaskData, split: Split, cfg: TrainerConfig) -> dict[str, float]:
    model.eval()
    preds: list[Tensor] = []
    targets: list[Tensor] = []
    for i, (x, y) in enumerate(batches(split, cfg.eval_batch_size, None)):
        if cfg.limit_eval_batches and i >= cfg.limit_eval_batches:
            break
        p = predict(model, data, x)
        if data.spec.kind == "transduce":  # pad to the target width so batches concatenate
            p = F.pad(p, (0, max(0, y.shape[1] - p.shape[1])), value=PAD)[:, : y.shape[1]]
        preds.append(p)
        targets.append(y)
    return compute_metrics(data.metrics, torch.cat(preds), torch.cat(targets), data.target_itos)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def fit(
    model: Backbone,
    data: TaskData,
    cfg: TrainerConfig,
    seed: int,
    sink: MetricSink,
    progress: Progress | None = None,
    on_epoch_end: Callable[[int, dict[str, Tensor]], None] | None = None,
    before_eval: Callable[[], object] | None = None,
) -> FitResult:
    """Train, validate every epoch, keep the best-validation weights, test with them.

    `before_eval` runs before each validation (outside the timed training): experiment.py waits
    there for the thread opening the MLflow run, whose imports must not overlap the ones
    evaluation makes (metric libraries): two threads importing overlapping packages can deadlock.
    """
    gen = torch.Generator().manual_seed(seed)
    # torch.optim.AdamW + LambdaLR warm-up, bit for bit, minus torch.optim's 1 s import (optim.py)
    opt = AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
    )
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    primary = data.primary_metric
    best_val: dict[str, float] = {}
    best_state: dict[str, Tensor] = {}
    best_step = best_epoch = 0
    step = 0
    train_s = 0.0
    samples = 0
    window: list[Tensor] = []
    if progress:
        progress.start(total)
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            for x, y in batches(data.train, cfg.batch_size, gen):
                out = model(x, y if data.spec.kind == "transduce" else None)
                loss = loss_fn(out.logits, y, data.spec.kind)
                opt.zero_grad()
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                step += 1
                samples += x.shape[0]
                window.append(loss.detach())
                if step % cfg.log_every == 0 or step == total:
                    mean_loss = float(torch.stack(window).mean())
                    window.clear()
                    if not math.isfinite(mean_loss):
                        raise RunFailed(
                            f"loss became {mean_loss} at step {step}: lower trainer.lr?"
                        )
                    sink.log_metrics({"train/loss": mean_loss}, step)
                    if progress:
                        progress.advance(step, mean_loss, f"epoch {epoch}/{cfg.epochs}")
                if step >= total:
                    break
            train_s += time.perf_counter() - t0
            if before_eval:
                before_eval()
            val = evaluate(model, data, data.val, cfg)
            sink.log_metrics({f"val/{k}": v for k, v in val.items()} | {"epoch": epoch}, step)
            if not best_val or val[primary] > best_val[primary]:
                best_val, best_step, best_epoch = val, step, epoch
                best_state = copy.deepcopy(model.state_dict())
            if on_epoch_end:
                on_epoch_end(epoch, best_state)
            if step >= total:
                break
    finally:
        if progress:
            progress.stop()
    model.load_state_dict(best_state)
    test = evaluate(model, data, data.test, cfg)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cost = {
        "params": float(params),
        "train_s": train_s,
        "epoch_s": train_s / max(1, epoch),
        "samples_per_s": samples / train_s if train_s else 0.0,
        "peak_mem_mb": peak_rss_mb(),
    }
    return FitResult(best_step, best_epoch, best_val, test, cost, step, best_state)

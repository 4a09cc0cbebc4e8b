"""The train/eval loop: torch.optim (optimizers.py) on the configured device and precision,
validation every epoch (or every `eval_every` steps), test on the best-validation weights, and a
resumable `last.pt` (state.py); one step's mechanics (batches, loss, evaluation) are in
steps.py, the memory figures in memory.py.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from attnbench.backbones.base import Backbone
from attnbench.errors import RunFailed
from attnbench.tasks.base import TaskData
from attnbench.tasks.metrics import compute_metrics
from attnbench.training import throughput
from attnbench.training.config import TrainerConfig
from attnbench.training.device import autocast, check_precision, resolve, synchronize
from attnbench.training.memory import RunMemory, cpu_tensor_memory
from attnbench.training.optimizers import build_optimizer, build_schedule, warm_up
from attnbench.training.state import LoopState, load_state, restore, save_state
from attnbench.training.steps import batches, evaluate, to_device, train_step


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
    val: dict[str, float]  # the primary metric's best validation, with its "loss"
    test: dict[str, float]
    cost: dict[str, float]
    steps: int
    best_state: dict[str, Tensor] = field(repr=False, default_factory=dict)  # on the CPU
    stopped_by: str | None = None  # "max_time", "max_steps" or None (all epochs ran)


def better(val: dict[str, float], best: dict[str, float], primary: str) -> bool:
    """Higher primary metric wins; a tie goes to the lower validation loss."""
    if not best:
        return True
    if val[primary] != best[primary]:
        return val[primary] > best[primary]
    return val.get("loss", math.inf) < best.get("loss", math.inf)


def _warm_metrics(data: TaskData) -> None:
    """Score two validation examples against themselves: the metric libraries' first import
    (scikit-learn, sacrebleu) happens here, where the memory meter leaves it out."""
    with contextlib.suppress(Exception):  # a real problem shows in the evaluation itself
        y = data.val.targets[:2]
        compute_metrics(data.metrics, y, y, data.target_itos)


def _warm_kernels(model: Backbone, data: TaskData, cfg: TrainerConfig, device: torch.device
                  ) -> None:
    """A training step's forward, backward and clipping on the first training batch, without
    the update: gradients dropped, random generators put back (`fork_rng`). The kernels'
    one-time set-up (10-20 MB on the CPU, the first time in a process) then happens before the
    memory meter starts."""
    move, amp = to_device(device), autocast(device, cfg.precision)
    x, y = move(data.train.inputs[: cfg.batch_size]), move(data.train.targets[: cfg.batch_size])
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type=device.type):
        model.train()
        train_step(model, x, y, data.spec.kind, amp, cfg.grad_clip)
    for p in model.parameters():
        p.grad = None


class _Clock:
    """Training seconds: runs while training, paused for validation and checkpoints."""

    def __init__(self, device: torch.device, spent: float) -> None:
        self.device, self.spent, self.since = device, spent, None

    def go(self) -> None:
        self.since = time.perf_counter()

    def pause(self) -> None:
        if self.since is not None:
            synchronize(self.device)  # the queued steps belong to the training time
            self.spent += time.perf_counter() - self.since
            self.since = None


def fit(
    model: Backbone,
    data: TaskData,
    cfg: TrainerConfig,
    seed: int,
    sink: MetricSink,
    progress: Progress | None = None,
    on_epoch_end: Callable[[int, dict[str, Tensor]], None] | None = None,
    before_eval: Callable[[], object] | None = None,
    *,
    after_first_step: Callable[[], object] | None = None,
    device: torch.device | None = None,
    warm: threading.Thread | None = None,
    last_path: Path | None = None,
    resume_from: Path | None = None,
) -> FitResult:
    """Train, validate, keep the best-validation weights, test with them.

    `device`: where to train (default `device.resolve(cfg)`); the model moves there, batches move
    per step, and the model stays there afterwards with the best weights loaded.
    `warm`: the thread of `optimizers.prefetch()`, joined before the optimiser is built.
    `last_path`: where the resumable state is written (every `checkpoint_every` steps and at every
    validation); `resume_from`: such a file, to continue exactly where it stopped.
    `on_epoch_end(epoch, best_state)` runs at the end of every epoch (and when training stops).
    `before_eval` runs before each validation (outside the timed training): experiment.py waits
    there for the thread opening the MLflow run, whose imports must not overlap the ones
    evaluation makes (metric libraries): two threads importing overlapping packages can deadlock.
    `after_first_step` runs once, after this call's first optimiser step, outside the timed
    training and the memory figure (experiment.py opens the MLflow run there: its import is
    one-time work of the process, and the first step does not wait for it).
    """
    if device is None:
        device = resolve(cfg)
    else:
        check_precision(cfg.precision, device)
    if warm is not None:
        warm.join()
    else:
        warm_up()  # its one-time imports stay out of the memory figure
    model.to(device)
    # One-time set-up the memory figure leaves out: kernels; the metric libraries' imports here
    # unless another thread may be importing now (before_eval given), else at the first
    # validation, after before_eval.
    _warm_kernels(model, data, cfg, device)
    warmed = before_eval is None
    if warmed:
        _warm_metrics(data)
    meter = RunMemory(device)
    meter.start()
    net = torch.compile(model) if cfg.compile else model
    gen = torch.Generator().manual_seed(seed)
    opt = build_optimizer(model.parameters(), cfg, device)
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    schedule = build_schedule(opt, cfg, total)
    scaler = torch.amp.GradScaler(device.type) if str(cfg.precision) == "16" else None
    objects = {"model": model, "optimizer": opt, "schedule": schedule, "scaler": scaler,
               "device": device}
    if resume_from is not None:
        loop = restore(load_state(resume_from), cfg=cfg, seed=seed, **objects)
    else:
        loop = LoopState(order_start=gen.get_state())
    kind, primary = data.spec.kind, data.primary_metric
    amp, move = autocast(device, cfg.precision), to_device(device)
    clock = _Clock(device, loop.train_s)
    started = time.perf_counter() - loop.elapsed_s
    stopped_by: str | None = None

    def checkpoint() -> None:
        if last_path is not None:
            loop.train_s = clock.spent
            loop.elapsed_s = time.perf_counter() - started
            save_state(last_path, cfg=cfg, seed=seed, loop=loop, **objects)

    def validate() -> None:
        nonlocal warmed
        if before_eval:
            before_eval()
        if not warmed:
            with meter.excluded():
                _warm_metrics(data)
            warmed = True
        val = evaluate(model, data, data.val, cfg)
        sink.log_metrics({f"val/{k}": v for k, v in val.items()} | {"epoch": loop.epoch},
                         loop.step)
        if better(val, loop.best_val, primary):
            loop.best_val, loop.best_step, loop.best_epoch = val, loop.step, loop.epoch
            loop.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        loop.last_val_step = loop.step

    def over_time() -> bool:
        return bool(cfg.max_time) and time.perf_counter() - started >= cfg.max_time

    if over_time():  # a resumed run that had used its time already
        stopped_by = "max_time"
    if progress:
        progress.start(total)
    try:
        while loop.step < total and stopped_by is None:
            model.train()
            gen.set_state(loop.order_start)
            clock.go()
            for x, y in batches(data.train, cfg.batch_size, gen, skip=loop.position):
                x, y = move(x), move(y)
                loss, skipped = train_step(net, x, y, kind, amp, cfg.grad_clip, opt, scaler)
                loop.skipped_steps += skipped
                schedule.step()
                loop.step += 1
                loop.position += 1
                loop.samples += x.shape[0]
                loop.window.append(loss.detach())
                if loop.step % cfg.log_every == 0 or loop.step == total:
                    mean_loss = float(torch.stack(loop.window).mean())
                    loop.window.clear()
                    if not math.isfinite(mean_loss):
                        raise RunFailed(
                            f"loss became {mean_loss} at step {loop.step}: lower trainer.lr?"
                        )
                    logged = {"train/loss": mean_loss}
                    if scaler is not None:
                        logged["train/skipped_steps"] = float(loop.skipped_steps)
                    sink.log_metrics(logged, loop.step)
                    if progress:
                        progress.advance(loop.step, mean_loss, f"epoch {loop.epoch}/{cfg.epochs}")
                if after_first_step is not None:  # (its train/loss is logged already)
                    clock.pause()
                    with meter.excluded():
                        after_first_step()
                        if not warmed:
                            _warm_metrics(data)
                            warmed = True
                    after_first_step = None
                    clock.go()
                if loop.step >= total:
                    break
                if over_time():
                    stopped_by = "max_time"
                    break
                every = cfg.eval_every and loop.step % cfg.eval_every == 0
                if every or (cfg.checkpoint_every and loop.step % cfg.checkpoint_every == 0):
                    clock.pause()
                    if every:
                        validate()
                        model.train()
                    checkpoint()
                    clock.go()
            clock.pause()
            finished = loop.step >= total or stopped_by is not None
            if (not cfg.eval_every or finished) and loop.last_val_step != loop.step:
                validate()
            if on_epoch_end:
                on_epoch_end(loop.epoch, loop.best_state)
            if loop.position >= steps_per_epoch:
                loop.epoch, loop.position, loop.order_start = loop.epoch + 1, 0, gen.get_state()
            if loop.last_val_step == loop.step:
                checkpoint()
        if loop.last_val_step != loop.step:  # resumed past its budget: nothing trained
            validate()
            checkpoint()
    finally:
        if progress:
            progress.stop()
    capped = cfg.max_steps and total < steps_per_epoch * cfg.epochs
    if stopped_by is None and loop.step >= total and capped:
        stopped_by = "max_steps"
    model.load_state_dict(loop.best_state)
    test = evaluate(model, data, data.test, cfg)
    memory = meter.figures()
    if device.type == "cpu":  # (the resident set's figures if the profiler cannot say)
        memory |= cpu_tensor_memory(model, data, cfg, opt, loop.best_state) or {
            "peak_mem_mb": memory["peak_rss_mb"], "base_mem_mb": memory["base_rss_mb"]}
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    epochs_run = loop.epoch if loop.position else max(1, loop.epoch - 1)
    train_s = clock.spent
    cost = {
        "params": float(params),
        "train_s": train_s,
        "epoch_s": train_s / epochs_run,
        "samples_per_s": loop.samples / train_s if train_s else 0.0,
        "steps": float(loop.step),  # the budget actually trained (compare shows it per group)
        **memory,
        **throughput.figures(model, data, cfg, device, loop, train_s),  # tokens/s, MFU
    }
    best_cpu = {k: v.cpu() for k, v in loop.best_state.items()}
    return FitResult(loop.best_step, loop.best_epoch, loop.best_val, test, cost, loop.step,
                     best_cpu, stopped_by)

"""The train/eval loop: torch.optim (optimizers.py) on the configured device and precision,
validation every epoch (or every `eval_every` steps), test on the best-validation weights, and a
resumable `last.pt` (state.py); one step's mechanics (batches, loss, evaluation) are in
steps.py, what the cost figures measure and the one-time work they leave out in measurement.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from attnbench.backbones.base import Backbone
from attnbench.errors import RunFailed
from attnbench.tasks.base import TaskData
from attnbench.training.config import TrainerConfig
from attnbench.training.device import autocast, check_precision, resolve
from attnbench.training.measurement import Measurement
from attnbench.training.optimizers import build_optimizer, build_schedule
from attnbench.training.state import LoopState, load_state, restore, save_state
from attnbench.training.steps import batches, evaluate, to_device, train_step


class MetricSink(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...


class Progress(Protocol):
    def phase(self, text: str | None) -> None: ...  # besides training steps; None: training
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


def total_steps(data: TaskData, cfg: TrainerConfig) -> tuple[int, int]:
    """(steps per epoch, the steps this config trains: every epoch, capped by `max_steps`)."""
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    return steps_per_epoch, min(total, cfg.max_steps) if cfg.max_steps else total


def fit(
    model: Backbone,
    data: TaskData,
    cfg: TrainerConfig,
    seed: int,
    sink: MetricSink,
    progress: Progress | None = None,
    on_epoch_end: Callable[[int, dict[str, Tensor]], None] | None = None,
    *,
    measure: Measurement | None = None,
    device: torch.device | None = None,
    last_path: Path | None = None,
    resume_from: Path | None = None,
) -> FitResult:
    """Train, validate, keep the best-validation weights, test with them.

    `device`: where to train (default `device.resolve(cfg)`); the model moves there, batches move
    per step, and the model stays there afterwards with the best weights loaded.
    `measure`: the cost figures and the one-time work they leave out, with the caller's hooks
    (measurement.py; default: a bare one).
    `last_path`: where the resumable state is written (every `checkpoint_every` steps and at every
    validation); `resume_from`: such a file, to continue exactly where it stopped.
    `on_epoch_end(epoch, best_state)` runs at the end of every epoch (and when training stops).
    `progress` shows "first step" until the first step's one-time work is done.
    """
    if device is None:
        device = resolve(cfg)
    else:
        check_precision(cfg.precision, device)
    measure = measure if measure is not None else Measurement()
    if progress:
        progress.start(total_steps(data, cfg)[1])
        progress.phase("first step")
    try:
        model.to(device)
        measure.prepare(model, data, cfg, device)
        run = _Training(model, data, cfg, seed, sink, device, measure, last_path, resume_from)
        measure.start(run.loop)  # the clock goes on from a resumed run's times
        stopped_by = run.train(progress, on_epoch_end)
    finally:
        if progress:
            progress.stop()
    return run.finish(stopped_by)


class _Training:
    """One `fit` call's objects and its steps, validations and checkpoints."""

    def __init__(self, model: Backbone, data: TaskData, cfg: TrainerConfig, seed: int,
                 sink: MetricSink, device: torch.device, measure: Measurement,
                 last_path: Path | None, resume_from: Path | None) -> None:
        self.model, self.data, self.cfg, self.seed, self.sink = model, data, cfg, seed, sink
        self.measure, self.last_path = measure, last_path
        self.net = torch.compile(model) if cfg.compile else model
        self.gen = torch.Generator().manual_seed(seed)
        self.opt = build_optimizer(model.parameters(), cfg, device)
        self.steps_per_epoch, self.total = total_steps(data, cfg)
        self.schedule = build_schedule(self.opt, cfg, self.total)
        self.scaler = torch.amp.GradScaler(device.type) if str(cfg.precision) == "16" else None
        self.objects = {"model": model, "optimizer": self.opt, "schedule": self.schedule,
                        "scaler": self.scaler, "device": device}
        if resume_from is not None:
            self.loop = restore(load_state(resume_from), cfg=cfg, seed=seed, **self.objects)
        else:
            self.loop = LoopState(order_start=self.gen.get_state())
        self.amp, self.move = autocast(device, cfg.precision), to_device(device)
        self.first_step = True  # the call's first optimiser step is still to come

    def train(self, progress: Progress | None,
              on_epoch_end: Callable[[int, dict[str, Tensor]], None] | None) -> str | None:
        """Every epoch left; returns why training stopped early ("max_time") or None."""
        loop, cfg = self.loop, self.cfg
        stopped_by = "max_time" if self._over_time() else None  # a resumed run out of time
        while loop.step < self.total and stopped_by is None:
            stopped_by = self._epoch(progress)
            self.measure.pause()
            finished = loop.step >= self.total or stopped_by is not None
            if (not cfg.eval_every or finished) and loop.last_val_step != loop.step:
                self.validate()
            if on_epoch_end:
                on_epoch_end(loop.epoch, loop.best_state)
            if loop.position >= self.steps_per_epoch:
                loop.epoch, loop.position = loop.epoch + 1, 0
                loop.order_start = self.gen.get_state()
            if loop.last_val_step == loop.step:
                self.checkpoint()
        if loop.last_val_step != loop.step:  # resumed past its budget: nothing trained
            self.validate()
            self.checkpoint()
        return stopped_by

    def _epoch(self, progress: Progress | None) -> str | None:
        """The rest of the current epoch (from `loop.position`), validating and checkpointing
        every `eval_every` / `checkpoint_every` steps; "max_time" if time ran out."""
        loop, cfg = self.loop, self.cfg
        self.model.train()
        self.gen.set_state(loop.order_start)
        self.measure.go()
        for x, y in batches(self.data.train, cfg.batch_size, self.gen, skip=loop.position):
            self._step(x, y, progress)
            if loop.step >= self.total:
                return None
            if self._over_time():
                return "max_time"
            every = cfg.eval_every and loop.step % cfg.eval_every == 0
            if every or (cfg.checkpoint_every and loop.step % cfg.checkpoint_every == 0):
                self.measure.pause()
                if every:
                    self.validate()
                    self.model.train()
                self.checkpoint()
                self.measure.go()
        return None

    def _step(self, x: Tensor, y: Tensor, progress: Progress | None) -> None:
        loop, cfg = self.loop, self.cfg
        x, y = self.move(x), self.move(y)
        loss, skipped = train_step(self.net, x, y, self.data.spec.kind, self.amp, cfg.grad_clip,
                                   self.opt, self.scaler)
        loop.skipped_steps += skipped
        self.schedule.step()
        loop.step += 1
        loop.position += 1
        loop.samples += x.shape[0]
        loop.window.append(loss.detach())
        if loop.step % cfg.log_every == 0 or loop.step == self.total:
            self._log_loss(progress)
        if self.first_step:  # (its train/loss is logged already)
            self.first_step = False
            self.measure.first_step_done()
            if progress:
                progress.phase(None)

    def _log_loss(self, progress: Progress | None) -> None:
        """The mean training loss since the last log (RunFailed once it is not finite)."""
        loop = self.loop
        mean_loss = float(torch.stack(loop.window).mean())
        loop.window.clear()
        if not math.isfinite(mean_loss):
            raise RunFailed(f"loss became {mean_loss} at step {loop.step}: lower trainer.lr?")
        logged = {"train/loss": mean_loss}
        if self.scaler is not None:
            logged["train/skipped_steps"] = float(loop.skipped_steps)
        self.sink.log_metrics(logged, loop.step)
        if progress:
            progress.advance(loop.step, mean_loss, f"epoch {loop.epoch}/{self.cfg.epochs}")

    def _over_time(self) -> bool:
        return bool(self.cfg.max_time) and self.measure.elapsed() >= self.cfg.max_time

    def validate(self) -> None:
        """Score the validation split; keep the weights if they are the best so far."""
        loop, data = self.loop, self.data
        self.measure.before_validation()
        val = evaluate(self.model, data, data.val, self.cfg)
        self.sink.log_metrics({f"val/{k}": v for k, v in val.items()} | {"epoch": loop.epoch},
                              loop.step)
        if better(val, loop.best_val, data.primary_metric):
            loop.best_val, loop.best_step, loop.best_epoch = val, loop.step, loop.epoch
            loop.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        loop.last_val_step = loop.step

    def checkpoint(self) -> None:
        """The resumable state, to `last_path` (if given)."""
        if self.last_path is not None:
            self.measure.keep_times(self.loop)
            save_state(self.last_path, cfg=self.cfg, seed=self.seed, loop=self.loop,
                       **self.objects)

    def finish(self, stopped_by: str | None) -> FitResult:
        """Test on the best-validation weights; the result with its cost figures."""
        loop, cfg, model = self.loop, self.cfg, self.model
        capped = cfg.max_steps and self.total < self.steps_per_epoch * cfg.epochs
        if stopped_by is None and loop.step >= self.total and capped:
            stopped_by = "max_steps"
        model.load_state_dict(loop.best_state)
        test = evaluate(model, self.data, self.data.test, cfg)
        cost = self.measure.cost(model, cfg, self.opt, loop)
        best_cpu = {k: v.cpu() for k, v in loop.best_state.items()}
        return FitResult(loop.best_step, loop.best_epoch, loop.best_val, test, cost, loop.step,
                         best_cpu, stopped_by)

"""What a run's cost figures measure, and the one-time work they leave out.

`fit` (loop.py) is handed a `Measurement`, or makes a bare one. It times the training
(`cost/train_s`: a clock that runs while training and pauses for validation and checkpoints),
meters the memory (`memory.RunMemory`), turns the samples trained into `cost/samples_per_s`, and
runs the process's one-time work where the figures do not see it:

- before the meter starts: torch.optim's first use (`warm`, the thread of
  `optimizers.prefetch()`, joined; else `optimizers.warm_up`), the kernels' set-up (a training
  step without the update) and, unless the caller's thread may be importing now, the metric
  libraries' imports (scikit-learn, sacrebleu);
- the caller's hooks, outside the timed training and the memory figure: `after_first_step` runs
  once, after the first optimiser step of the call (run.experiment opens the MLflow run there:
  its import is one-time work, and the first step does not wait for it); `before_eval` runs
  before each validation (run.experiment waits there for the thread opening the run, whose
  imports must not overlap the ones evaluation makes: two threads importing overlapping packages
  can deadlock). The metric libraries are imported after them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import torch

from attnbench.backbones.base import Backbone
from attnbench.tasks.base import TaskData
from attnbench.tasks.metrics import compute_metrics
from attnbench.training import throughput
from attnbench.training.config import TrainerConfig
from attnbench.training.device import autocast, synchronize
from attnbench.training.optimizers import warm_up
from attnbench.training.run_memory import RunMemory, cpu_tensor_memory
from attnbench.training.state import LoopState
from attnbench.training.steps import to_device, train_step


class Measurement:
    """The clock, the memory meter and the one-time work of one `fit` (module docstring)."""

    def __init__(
        self,
        *,
        warm: threading.Thread | None = None,
        after_first_step: Callable[[], object] | None = None,
        before_eval: Callable[[], object] | None = None,
    ) -> None:
        self.warm = warm
        self.after_first_step = after_first_step
        self.before_eval = before_eval
        self.spent = 0.0  # training seconds so far (`cost/train_s`)
        self._since: float | None = None  # when the clock last started; None: paused
        self._started = 0.0  # when the call started (perf_counter), less a resumed run's time
        self._warmed = False  # the metric libraries are imported
        self._data: TaskData | None = None
        self._device = torch.device("cpu")
        self._meter: RunMemory | None = None

    # -- before training -------------------------------------------------------------------
    def prepare(self, model: Backbone, data: TaskData, cfg: TrainerConfig, device: torch.device
                ) -> None:
        """The one-time work the figures leave out, then the memory meter starts. `model` is on
        `device` already."""
        self._data, self._device = data, device
        if self.warm is not None:
            self.warm.join()
        else:
            warm_up()  # its one-time imports stay out of the memory figure
        _warm_kernels(model, data, cfg, device)
        if self.before_eval is None:  # no other thread may be importing: now
            self._warm_metrics()
        self._meter = RunMemory(device)
        self._meter.start()

    def start(self, loop: LoopState) -> None:
        """Training begins (or goes on from `loop`, with the time it had spent)."""
        self.spent = loop.train_s
        self._started = time.perf_counter() - loop.elapsed_s

    # -- while training --------------------------------------------------------------------
    def go(self) -> None:
        self._since = time.perf_counter()

    def pause(self) -> None:
        if self._since is not None:
            synchronize(self._device)  # the queued steps belong to the training time
            self.spent += time.perf_counter() - self._since
            self._since = None

    def first_step_done(self) -> None:
        """After the call's first optimiser step: the caller's `after_first_step`, once, outside
        the timed training and the memory figure (then the metric libraries' imports)."""
        hook, self.after_first_step = self.after_first_step, None
        if hook is None:
            return
        self.pause()
        with self._excluded():
            hook()
            if not self._warmed:
                self._warm_metrics()
        self.go()

    def before_validation(self) -> None:
        """Before each validation (the clock is paused): the caller's `before_eval`, then the
        metric libraries' imports the first time, outside the memory figure."""
        if self.before_eval is not None:
            self.before_eval()
        if not self._warmed:
            with self._excluded():
                self._warm_metrics()

    def elapsed(self) -> float:
        """Wall-clock seconds of training so far, validation included (`trainer.max_time`)."""
        return time.perf_counter() - self._started

    def keep_times(self, loop: LoopState) -> None:
        """Into the resumable state: the times a resumed run goes on from."""
        loop.train_s = self.spent
        loop.elapsed_s = self.elapsed()

    # -- after training --------------------------------------------------------------------
    def cost(self, model: Backbone, cfg: TrainerConfig, optimizer: torch.optim.Optimizer,
             loop: LoopState) -> dict[str, float]:
        """The `cost/*` figures: parameters, training time per run and epoch, samples per
        second, steps, memory, tokens per second and MFU (`training/throughput.py`)."""
        assert self._meter is not None and self._data is not None, "prepare() first"
        memory = self._meter.figures()
        if self._device.type == "cpu":  # (the resident set's figures if the profiler cannot say)
            memory |= cpu_tensor_memory(model, self._data, cfg, optimizer, loop.best_state) or {
                "peak_mem_mb": memory["peak_rss_mb"], "base_mem_mb": memory["base_rss_mb"]}
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        epochs_run = loop.epoch if loop.position else max(1, loop.epoch - 1)
        train_s = self.spent
        return {
            "params": float(params),
            "train_s": train_s,
            "epoch_s": train_s / epochs_run,
            "samples_per_s": loop.samples / train_s if train_s else 0.0,
            "steps": float(loop.step),  # the budget actually trained (compare shows it per group)
            **memory,
            **throughput.figures(model, self._data, cfg, self._device, loop, train_s),  # MFU
        }

    # -- the one-time work -----------------------------------------------------------------
    def _excluded(self) -> contextlib.AbstractContextManager[None]:
        return self._meter.excluded() if self._meter is not None else contextlib.nullcontext()

    def _warm_metrics(self) -> None:
        """Score two validation examples against themselves: the metric libraries' first import
        (scikit-learn, sacrebleu) happens here, where the memory meter leaves it out."""
        self._warmed = True
        data = self._data
        with contextlib.suppress(Exception):  # a real problem shows in the evaluation itself
            assert data is not None
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

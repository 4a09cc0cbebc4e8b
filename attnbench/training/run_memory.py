"""Per-run peak memory: what this run's tensors needed on top of its weights, and what the
process's resident set did.

`cost/peak_mem_mb` and `cost/base_mem_mb` mean the same thing on every device: the base is the
model's weights (what the run holds when it starts), the peak is the most tensor memory the run
held at once above that base (gradients, optimiser state, the best-validation copy of the
weights, activations, evaluation).

- CUDA: the caching allocator's peak of requested bytes since the run started (peak statistics
  reset then; ``requested_bytes.all.peak``, which unlike ``max_memory_allocated`` does not count
  the slack of a reused block) minus what was requested at that point.
- CPU: the CPU allocator keeps no statistics, so the peak is measured on a probe
  (`tensor_peak_mb`, torch.profiler's allocation events) once training ends: one training step
  (the previous step's gradients alive during the forward pass, as in the loop) and one
  validation batch, on copies of the trained model and optimiser, plus the optimiser state and
  the best-weights copy the run holds throughout. Every batch of a split has the same shape, so
  one step is every step; exact to the byte and independent of what ran before in the process.
  It leaves out what does not go through torch's allocator (kernel workspaces of other threads,
  Python objects) and, with ``trainer.compile``, measures the eager model.
- MPS (unified memory, no peak counter): the resident-set figure below.

`cost/peak_rss_mb` and `cost/base_rss_mb` (CPU and MPS): the process's resident set, read by
`training.resident`. At the start, glibc hands its free heap pages back to the kernel
(``malloc_trim``) and the peak is reset (Linux); the peak is the one at the end minus the resident
set at the start, which is the base (model, data, libraries). No full garbage collection first:
with torch, MLflow and matplotlib loaded one takes 0.4-0.5 s per run (here), for a figure that is
not the tensor one. Where the peak cannot be reset (macOS, Windows): the growth of the lifetime
peak. It counts what the allocator figure cannot (heap kept after frees,
other threads, Python objects) and is noisy for the same reason: +-10-20 % between repeats of the
same small job (glibc's heap, MLflow's writer thread), measured with ``python -m
benchmarks.overhead --only memory``.

`excluded()` brackets one-time work a run does but does not own (the first import of a metric
library): memory it keeps joins the resident base, the peak before it is kept.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor

from attnbench.backbones.base import Backbone
from attnbench.tasks.base import Split, TaskData
from attnbench.training.config import TrainerConfig
from attnbench.training.device import autocast
from attnbench.training.optimizers import build_optimizer
from attnbench.training.resident import MB, peak_rss_mb, reset_peak, rss_mb, trim_heap
from attnbench.training.steps import evaluate, train_step


def _cuda_requested_mb(device: torch.device, which: str) -> float:
    """The bytes tensors asked the CUDA caching allocator for (current or peak since the last
    reset), not the blocks it handed out: a cached block above 1 MiB can be given unsplit, up
    to 1 MiB larger than asked, depending on what ran before (`max_memory_allocated` counts
    those blocks)."""
    stats = torch.cuda.memory_stats(device)
    key = f"requested_bytes.all.{which}"
    if key not in stats:  # an allocator without the statistic (or torch < 2.1)
        return (torch.cuda.max_memory_allocated(device) if which == "peak"
                else torch.cuda.memory_allocated(device)) / MB
    return stats[key] / MB


class RunMemory:
    """start() at the beginning of a run, figures() at its end."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.resettable = False  # the peak was reset to the start (Linux), else its growth
        self.base_mb = 0.0
        self.peak_mb = 0.0  # the highest peak above base before an excluded block

    def start(self) -> None:
        if self.cuda:
            gc.collect()  # an earlier job's unreachable tensors would stay in the base
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base_mb = _cuda_requested_mb(self.device, "current")
            return
        trim_heap()
        self.resettable = reset_peak()
        self.base_mb = rss_mb() if self.resettable else peak_rss_mb()

    def _peak_now_mb(self) -> float:
        if self.cuda:
            return _cuda_requested_mb(self.device, "peak") - self.base_mb
        return peak_rss_mb() - self.base_mb

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """Memory the block keeps joins the base; its own transient peak is not counted."""
        if self.cuda or not self.resettable:
            yield
            return
        self.peak_mb = max(self.peak_mb, self._peak_now_mb())
        before = rss_mb()
        try:
            yield
        finally:
            self.base_mb += max(0.0, rss_mb() - before)
            reset_peak()

    def figures(self) -> dict[str, float]:
        """CUDA: {'peak_mem_mb', 'base_mem_mb'} from the allocator. Elsewhere the resident set:
        {'peak_rss_mb': the run's peak above its base, 'base_rss_mb': the base}, which on MPS
        are also its 'peak_mem_mb' and 'base_mem_mb' (the CPU's come from `tensor_peak_mb`)."""
        peak = max(self.peak_mb, self._peak_now_mb(), 0.0)
        if self.cuda:
            return {"peak_mem_mb": peak, "base_mem_mb": self.base_mb}
        rss = {"peak_rss_mb": peak, "base_rss_mb": self.base_mb}
        if self.device.type == "mps":
            rss |= {"peak_mem_mb": peak, "base_mem_mb": self.base_mb}
        return rss


# -- tensor memory on the CPU ------------------------------------------------------------------
# What the profiler itself writes to stderr: kineto a line per start and stop, c10 a warning
# when a block allocated before profiling is freed during it.
_PROFILER_NOISE = re.compile(r"SyncActivityProfilerHandler|Memory block of unknown size")


@contextlib.contextmanager
def _without_profiler_lines() -> Iterator[None]:
    """Hold what is written to file descriptor 2 meanwhile (C++ writes there directly) and
    write it back without the profiler's own lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            rest = "".join(line for line in lines if not _PROFILER_NOISE.search(line))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def _cpu_allocations(nodes: list) -> list[tuple[int, int]]:
    """(time ns, bytes: + allocated, - freed) of every CPU allocation event in a profiler
    event tree."""
    from torch._C._profiler import _EventType

    found: list[tuple[int, int]] = []
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            found.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    return found


def tensor_peak_mb(fn: Callable[[], object]) -> float | None:
    """The most memory that tensors allocated while `fn` runs held at once, in MB: allocations
    minus frees in the order they happened, from torch.profiler's memory events (every block
    torch's CPU allocator hands out on this thread, kernels' scratch buffers included; frees of
    blocks allocated before are not seen). None when this torch's profiler reports none.
    Python's garbage collector is off meanwhile: a collection freeing older tensors is not `fn`'s.
    """
    from torch.profiler import ProfilerActivity, profile

    collecting = gc.isenabled()
    gc.disable()
    try:
        with (
            _without_profiler_lines(),
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
        ):
            fn()
    finally:
        if collecting:
            gc.enable()
    try:
        events = _cpu_allocations(prof.profiler.kineto_results.experimental_event_tree())
    except (AttributeError, ImportError):  # a torch whose profiler keeps them elsewhere
        return None
    if not events:  # a step allocates something: no events means the profiler did not report
        return None
    live = peak = 0
    for _, size in sorted(events):
        live += size
        peak = max(peak, live)
    return peak / MB


def tensor_mb(tensors: object) -> float:
    """MB of the tensors in a (nested) mapping or sequence, such as a state_dict or an optimiser's
    state; a tensor reached twice (tied weights) counts once."""
    seen: set[tuple[int, int]] = set()
    stack = [tensors]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            seen.add((item.data_ptr() or id(item), item.nbytes))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return sum(nbytes for _, nbytes in seen) / MB


def cpu_tensor_memory(model: Backbone, data: TaskData, cfg: TrainerConfig,
                      optimizer: torch.optim.Optimizer, best_state: dict[str, Tensor]
                      ) -> dict[str, float]:
    """The CPU's `peak_mem_mb` and `base_mem_mb` (memory.py): one training step on the first
    training batch and one validation batch, measured on copies of the trained model and its
    optimiser (random generators put back), plus the optimiser state and the best-weights copy
    the run holds throughout. The previous step's gradients are alive during the forward pass
    and the validation, as in the loop. {} when the profiler gives no allocation events."""
    probe = copy.deepcopy(model)
    params = [p for p in probe.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    opt = build_optimizer(params, cfg, torch.device("cpu"))
    opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # else it would share the state
    kind, amp = data.spec.kind, autocast(torch.device("cpu"), cfg.precision)
    x, y = data.train.inputs[: cfg.batch_size], data.train.targets[: cfg.batch_size]
    n = cfg.eval_batch_size
    first_val = Split(data.val.inputs[:n], data.val.targets[:n])

    def previous_grads() -> None:
        for p in params:
            p.grad = torch.zeros_like(p)

    def step() -> None:
        previous_grads()
        probe.train()
        train_step(probe, x, y, kind, amp, cfg.grad_clip, opt)

    def validate() -> None:
        previous_grads()
        evaluate(probe, data, first_val, cfg)

    with torch.random.fork_rng(devices=[]):
        train_mb, val_mb = tensor_peak_mb(step), tensor_peak_mb(validate)
    if train_mb is None or val_mb is None:
        return {}
    held = tensor_mb(optimizer.state) + tensor_mb(best_state)
    return {"peak_mem_mb": held + max(train_mb, val_mb),
            "base_mem_mb": tensor_mb(model.state_dict())}

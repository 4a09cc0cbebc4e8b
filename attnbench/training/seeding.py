"""Seeding and thread settings: same config + seed on CPU -> identical metrics."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

# cuBLAS: one 4 MiB workspace per handle and stream, a fixed reduction order (CUDA >= 10.2)
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    set_deterministic(deterministic)


def set_deterministic(mode: bool) -> None:
    """`trainer.deterministic`: reproducible kernels on every device (`mode`), or torch's defaults.

    Call it before the run's first CUDA operation (run_experiment does, after resolving the
    device, which creates no cuBLAS handle). With `mode`:

    - ``torch.use_deterministic_algorithms(True, warn_only=True)``: an op without a deterministic
      kernel warns instead of failing the run;
    - ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless the user has set it: cuBLAS reads it when the
      process creates its first handle (a worker whose first CUDA job ran without `mode` keeps
      its default workspaces, and torch warns);
    - ``torch.backends.cudnn.deterministic = True`` and ``benchmark = False`` (benchmarking picks
      the fastest algorithm per shape, which may differ from run to run).

    Without `mode`: cuDNN's default ``deterministic = False`` (a sweep worker may have run a
    deterministic job before), ``benchmark`` left as it is, CUBLAS_WORKSPACE_CONFIG not set.

    The eager kernels' flag is set directly: the public call also sets
    ``torch._inductor.config.deterministic``, importing torch._dynamo and torch._inductor here
    (1 s idle, 3-5 s on a busy 2-core machine). Inductor (`trainer.compile`) gets `mode` from
    ``TORCHINDUCTOR_DETERMINISTIC`` instead, which its config reads when imported (torch.optim
    imports it, on the `optimizers.prefetch` thread); if it is imported already, the public call
    sets both. The variable is set first, so an import under way on that thread cannot miss both.
    """
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1" if mode else "0"
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=True)
    else:
        setter(mode, warn_only=True)
    if mode:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = mode


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def set_threads(threads: int, parallel_jobs: int = 1) -> int:
    """Use `threads` torch threads, or cores / parallel jobs when 0.

    Returns the number torch reports afterwards (what the run is tagged with): a parallel
    worker's tag then shows what its torch really uses.
    """
    n = threads or max(1, available_cores() // max(1, parallel_jobs))
    torch.set_num_threads(n)
    return torch.get_num_threads()

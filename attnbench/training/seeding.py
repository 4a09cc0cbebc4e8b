"""Seeding and thread settings: same config + seed on CPU -> identical metrics."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    set_deterministic(deterministic)


def set_deterministic(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode, warn_only=True)`` without its start-up cost.

    The public call also sets ``torch._inductor.config.deterministic``, which imports
    torch._dynamo and torch._inductor (1 s idle, 3-5 s on a busy 2-core machine) for
    ``torch.compile``, which attnbench does not use. The flag eager kernels read is set directly;
    once inductor is imported anyway, the public call keeps both in step.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=True)
    else:
        setter(mode, warn_only=True)


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

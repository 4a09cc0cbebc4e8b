"""Seeding and thread settings: same config + seed on CPU -> identical metrics."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def set_threads(threads: int, parallel_jobs: int = 1) -> int:
    """Use `threads` torch threads, or cores / parallel jobs when 0. Returns the number set."""
    n = threads or max(1, available_cores() // max(1, parallel_jobs))
    torch.set_num_threads(n)
    return n

"""Tasks: synthetic generators and file loaders, one file per task (see `base.py`)."""

from __future__ import annotations

from attnbench.registry import Registry

TASKS: Registry = Registry("task", "attnbench.tasks", "attnbench.tasks.base:Task")

__all__ = ["TASKS"]

"""Polling a store that another process is writing to."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def run_state(runs_dir: Path) -> list[Any]:
    """Every run in the store, tolerating a store another process is writing to."""
    from tests.conftest import all_runs

    try:
        return all_runs(runs_dir)
    except Exception:  # noqa: BLE001 - database is locked / being created: try again later
        return []

"""Helpers for tests that start real servers: free ports, process groups, cleanup by PID.

Every process a test starts runs in its own session (`start_new_session=True`), so the test can
stop it and everything it forked with `killpg(pid)`, where `pid` is the process the test
started. Nothing is ever stopped by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REQUIRED_ENV = "ATTNBENCH_E2E_REQUIRED"  # .ci/run's e2e stage sets it: a missing tool fails


def missing(what: str, how: str) -> None:
    """Skip (or, in CI's e2e stage, fail) a test whose tool is not installed."""
    message = f"needs {what} ({how})"
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def need_module(name: str, how: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        missing(name, how)


def as_user(user: str | None) -> dict[str, object]:
    """Popen arguments that run a child as `user` (root only; e.g. PostgreSQL refuses root)."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of `pid` (read from /proc; no psutil needed)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(c) for c in task.read_text().split()]
                found.extend(kids)
                todo.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


class Started:
    """A process this test started in its own session, with its log file."""

    def __init__(self, cmd: Sequence[str], log: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None, user: str | None = None) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            list(cmd), cwd=cwd, env={**os.environ, **(env or {})}, stdout=self._fh,
            stderr=subprocess.STDOUT, start_new_session=True, **as_user(user),
        )
        self.pid = self.proc.pid
        self._seen: set[int] = set()

    def remember_children(self) -> None:
        """Note the PIDs it forked (some daemons leave its session), to stop them later."""
        self._seen.update(descendants(self.pid))

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM its process group, then SIGKILL whatever it started that is still alive."""
        self.remember_children()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + timeout
        while any(alive(p) for p in self._seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self._seen:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._fh.close()


def wait_http(url: str, started: Started | None = None, timeout: float = 180.0) -> None:
    """Wait until `url` answers 200 (fail early if `started` exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started is not None:
            started.remember_children()
            if started.proc.poll() is not None:
                code = started.proc.returncode
                raise AssertionError(f"process exited ({code}):\n{started.text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback only
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    tail = started.text()[-3000:] if started else ""
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s\n{tail}")

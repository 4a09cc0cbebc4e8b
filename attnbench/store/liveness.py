"""Is the process that owns a RUNNING run still alive? (pid + host tags, /proc start times)

A run whose process is gone (SIGKILL, power loss) is stale and is marked FAILED by the next sweep
or `compare` (`Tracker.mark_stale_runs`).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from attnbench.store.names import HOST_TAG, PID_SINCE_TAG, PID_TAG


def process_tags() -> dict[str, str]:
    """Tags naming this process, set on every run at start and when `--resume` reopens it (see
    `Tracker.mark_stale_runs`)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(),
            PID_SINCE_TAG: str(int(time.time() * 1000))}


def taken_ms(tags: dict[str, str], start_time: int) -> int:
    """When a run's current process took it (ms): its start, or when `--resume` reopened it."""
    since = tags.get(PID_SINCE_TAG, "")
    return max(start_time, int(since)) if since.isdigit() else start_time


def _process_start_ms(pid: int) -> int | None:
    """When process `pid` started (ms since the epoch), from /proc on Linux; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                    if ln.startswith("btime "))
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if fields[0] in ("Z", "X"):  # zombie / dead: exited, only waiting to be reaped
            return -1
        return int((boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")) * 1000)
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def process_alive(pid: int, since_ms: int | None = None) -> bool:
    """Is `pid` a live process (that started no later than `since_ms`, when given)?

    The start-time check catches a recycled pid: a process that started after the run did
    cannot be the run's process.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    started = _process_start_ms(pid)
    if started == -1:
        return False
    # /proc's boot time has a 1 s resolution: allow 2 s before calling the pid recycled
    return started is None or since_ms is None or started <= since_ms + 2000

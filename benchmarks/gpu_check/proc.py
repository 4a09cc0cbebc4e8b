"""Run the kit's commands within a time budget, their output appended to the kit's log."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOG_LIMIT = 4 * 1024 * 1024  # bytes of one command's output kept in the log (its tail)


@dataclass
class Done:
    """How a command ended: exit code (None when stopped at its budget), seconds, output tail."""

    rc: int | None
    elapsed_s: float
    timed_out: bool
    tail: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's whole process group, SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_all(
    cmds: Sequence[Sequence[str]],
    budget_s: float,
    log: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> list[Done]:
    """Run `cmds` side by side, each in its own process group, for at most `budget_s` seconds
    (then stop what still runs, children included); append their output to `log`, each under a
    header naming its command."""
    t0 = time.perf_counter()
    parts = [log.with_name(f"{log.name}.{i}.part") for i in range(len(cmds))]
    procs = []
    for cmd, part in zip(cmds, parts, strict=True):
        with part.open("wb") as fh:
            procs.append(subprocess.Popen(
                list(cmd), cwd=cwd, env=dict(env) if env is not None else None, stdout=fh,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
    ends: dict[int, tuple[int | None, float, bool]] = {}
    try:
        while len(ends) < len(procs):
            over = time.perf_counter() - t0 > budget_s
            for i, proc in enumerate(procs):
                if i in ends:
                    continue
                rc = proc.poll()
                if rc is not None:
                    ends[i] = (rc, time.perf_counter() - t0, False)
                elif over:
                    _stop(proc)
                    ends[i] = (None, time.perf_counter() - t0, True)
            if len(ends) < len(procs):
                time.sleep(0.1)
    finally:  # the kit itself stopped (SIGTERM, Ctrl-C): no command outlives it
        for i, proc in enumerate(procs):
            if i not in ends:
                _stop(proc)
    done = []
    with log.open("a", encoding="utf-8") as fh:
        for i, (cmd, part) in enumerate(zip(cmds, parts, strict=True)):
            rc, elapsed, timed_out = ends[i]
            data = part.read_bytes()
            part.unlink()
            if len(data) > LOG_LIMIT:
                data = b"[... output cut ...]\n" + data[-LOG_LIMIT:]
            text = data.decode("utf-8", errors="replace")
            ending = "stopped at its budget" if timed_out else f"exit code {rc}"
            fh.write(f"\n$ {' '.join(cmd)}\n{text}\n[{ending} after {elapsed:.1f} s]\n")
            done.append(Done(rc, elapsed, timed_out, text[-3000:]))
    return done


def run(cmd: Sequence[str], budget_s: float, log: Path, cwd: Path,
        env: Mapping[str, str] | None = None) -> Done:
    """One command (see run_all)."""
    return run_all([cmd], budget_s, log, cwd, env)[0]

"""Peak memory of one case: on CPU, measured in a fresh process (a fork of a clean fork server,
so no measurement inherits another's heap), the peak resident memory above the baseline just
before the call; on CUDA, the caching allocator's peak above what is allocated just before the
call (`torch.cuda.reset_peak_memory_stats` + `max_memory_allocated`), in this process: the
allocator counts each tensor exactly, so no other case's heap can leak into the figure.

Both count what one forward+backward allocates beyond its inputs and weights (already live at
the baseline): activations kept for backward, gradients, scratch.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch

from attnbench.bench.kernels import Runner, build_runner
from attnbench.bench.plan import BenchSettings, Case
from attnbench.training.resident import peak_rss_mb, reset_peak, return_freed_memory, rss_mb


def _memory_child(spec: str, conn: Any) -> None:
    """Runs in a forked child: build the case, run it once to warm up, then report the peak
    resident memory of a second run above the resident memory just before it (MiB)."""
    try:
        data = json.loads(spec)
        return_freed_memory()
        torch.set_num_threads(int(data["threads"]))
        settings = BenchSettings(**data["settings"])
        runner = build_runner(Case(**data["case"]), data["node"], settings)
        runner()  # one-time allocations (thread pools, kernel scratch) do not belong to the case
        runner.clear()
        gc.collect()
        # The peak from the resident set now (Linux), else the growth of the lifetime peak.
        baseline = rss_mb() if reset_peak() else peak_rss_mb()
        runner()
        conn.send({"peak_mb": max(0.0, peak_rss_mb() - baseline)})
    except BaseException as err:  # noqa: BLE001 - reported to the parent as a note
        with contextlib.suppress(Exception):
            conn.send({"error": f"{type(err).__name__}: {err}".splitlines()[0][:200]})


@functools.cache
def _mp_context() -> Any:
    """A fork server that imported torch and this module once, but never ran anything: every
    measurement is a fresh fork of it (fast, and no measurement inherits another's heap)."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # attnbench.bench.case_memory: torch and the kernels
    return ctx


def measure_memory(
    case: Case, node: Mapping[str, Any], settings: BenchSettings, threads: int
) -> tuple[float | None, str]:
    """Peak memory (MiB) of one forward+backward of `case` in a fresh process, or a note."""
    ctx = _mp_context()
    spec = json.dumps(
        {"case": asdict(case), "node": dict(node), "settings": asdict(settings), "threads": threads}
    )
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_memory_child, args=(spec, send), daemon=True)
    proc.start()
    send.close()
    try:
        reply = receive.recv()
    except EOFError:
        reply = {}
    finally:
        receive.close()
        proc.join()
    if "peak_mb" in reply:
        return float(reply["peak_mb"]), ""
    if proc.exitcode is not None and proc.exitcode < 0:
        return None, f"memory process killed by signal {-proc.exitcode} (out of memory?)"
    return None, f"memory not measured: {reply.get('error', 'no reply')}"


def measure_memory_in_process(runner: Runner, device: torch.device) -> float:
    """Peak CUDA memory (MiB) of one forward+backward of `runner` above what is allocated just
    before it (one warm-up call first, so one-time workspaces do not count)."""
    runner()
    runner.clear()
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    runner()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    runner.clear()
    return max(0, peak - baseline) / 2**20

"""Per-run peak memory (`cost/peak_mem_mb`, `cost/base_mem_mb`): what this run added on top of
what the process held when it started, not the process's lifetime peak.

- CUDA: the caching allocator's peak of requested bytes since the run started (peak statistics
  reset then; ``requested_bytes.all.peak``, which unlike ``max_memory_allocated`` does not count
  the slack of a reused block) minus what was requested at that point; the base is that memory
  (the model's weights, moved to the device just before).
- CPU (and MPS, whose unified memory has no peak counter): the process's resident set. At the
  start, garbage is collected, glibc hands its free heap pages back to the kernel
  (``malloc_trim``) and the kernel's high-water mark is reset (``5`` into /proc/self/clear_refs,
  Linux >= 4.0); the run's peak is the mark at the end (VmHWM) minus the resident set at the
  start, which is the base (model, data, libraries). Without /proc (macOS): the growth of
  ``getrusage``'s lifetime peak, which misses a run whose peak stays below an earlier one.

What the CPU figure cannot leave out (measured on a 13 MB job): the resident set counts the pages
glibc's heap keeps after a free, so the figure also depends on how fragmented the heap already is
— about ±10 % between repeats of the same job, and +0 to +60 % after a much larger job in the
same process. Counting live bytes instead (``mallinfo2``) would be stable but can only be sampled,
missing peaks inside a backward pass; mapping every large block on its own (``mallopt``) makes
the resident set exact but costs ~25 % of a CPU step.

`excluded()` brackets one-time work a run does but does not own (the first import of a metric
library): memory it keeps joins the base, the peak before it is kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
from collections.abc import Iterator

import torch

MB = 1024.0 * 1024.0


def _status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None without /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Return glibc's free heap pages to the kernel, so pages reused later count again."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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


def _maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, else KiB


def _rss_mb() -> float:
    return (_status_kib("VmRSS") or 0) / 1024.0


class RunMemory:
    """start() at the beginning of a run, figures() at its end."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.proc = False  # /proc available (else the getrusage fallback)
        self.base_mb = 0.0
        self.peak_mb = 0.0  # the highest peak above base before an excluded block

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base_mb = _cuda_requested_mb(self.device, "current")
            return
        _trim_heap()
        self.proc = _status_kib("VmHWM") is not None and _reset_hwm()
        self.base_mb = _rss_mb() if self.proc else _maxrss_mb()

    def _peak_now_mb(self) -> float:
        if self.cuda:
            return _cuda_requested_mb(self.device, "peak") - self.base_mb
        if self.proc:
            return (_status_kib("VmHWM") or 0) / 1024.0 - self.base_mb
        return _maxrss_mb() - self.base_mb

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """Memory the block keeps joins the base; its own transient peak is not counted."""
        if self.cuda or not self.proc:
            yield
            return
        self.peak_mb = max(self.peak_mb, self._peak_now_mb())
        before = _rss_mb()
        try:
            yield
        finally:
            self.base_mb += max(0.0, _rss_mb() - before)
            _reset_hwm()

    def figures(self) -> dict[str, float]:
        """{'peak_mem_mb': the run's peak above its base, 'base_mem_mb': the base} (MB)."""
        peak = max(self.peak_mb, self._peak_now_mb(), 0.0)
        return {"peak_mem_mb": peak, "base_mem_mb": self.base_mb}

"""The process's resident set (RSS), the one reader behind the memory figures of runs
(`training.run_memory`) and bench cases (`bench.case_memory`): now, its peak since a reset, and
the heap handed back to the system so that the figures follow the live memory.

- now: psutil (Linux, macOS, Windows);
- peak: ``getrusage``'s ``ru_maxrss`` (Linux, macOS), psutil's ``peak_wset`` (Windows);
- reset: only Linux can lower the peak to the current RSS (``5`` into /proc/self/clear_refs,
  Linux >= 4.0, which ``ru_maxrss`` follows); elsewhere `reset_peak` says False and a peak is
  read as the growth of the lifetime peak;
- the heap: glibc keeps freed blocks (``malloc_trim`` returns them; ``mallopt`` makes large
  blocks their own mappings); other C libraries are left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

import psutil

MB = 1024.0 * 1024.0


def rss_mb() -> float:
    """The resident set now, in MB."""
    return psutil.Process().memory_info().rss / MB


def peak_rss_mb() -> float:
    """The resident set's peak since the process started or since the last `reset_peak`, in
    MB."""
    if sys.platform == "win32":
        return psutil.Process().memory_info().peak_wset / MB
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, else KiB


def reset_peak() -> bool:
    """Lower the peak to the current resident set (Linux); False where it cannot be."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Return glibc's free heap pages to the kernel, so pages reused later count again."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def return_freed_memory() -> None:
    """glibc keeps freed blocks below a moving threshold (up to 32 MiB) in its heap, so a later
    allocation would reuse pages already counted in a baseline. Make every block >= 64 KiB its
    own mapping, unmapped on free, so the resident size follows the live tensors."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD

"""Where and in what dtype `attnbench bench` runs its cases: `bench.device` and `bench.dtype`
checked against this machine (one-line errors), the device's clock and its free memory.

The dtype is the dtype of the tensors, not an autocast policy: the inputs and the variant's
parameters are cast to it (``module.to(dtype)``), so every op of the case runs in it and the
cost models' element size is exact. Autocast would time something else — per-call casts of the
weights, and an op list deciding which ops stay float32 (softmax, norms) — and is what training
with ``trainer.precision`` does; the bench measures the kernels themselves.

What each device may run:
- cpu: float32 and bf16 (bf16 is emulated on CPUs without AVX512-BF16/AMX: slower than float32).
  float16 is refused: PyTorch's CPU float16 kernels are fallbacks (measured 5× float32's SDPA on
  this project's machine) and the trainer refuses float16 on CPU too, so such a figure would
  describe nothing a run can do;
- cuda / cuda:N: float32 and float16, and bf16 where the GPU computes in it natively (compute
  capability 8.0+; the trainer's rule: an older GPU only emulates it, and is refused);
- mps: all three (bf16 needs macOS 14 or later; PyTorch raises on the first op otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from attnbench.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
}


def _build() -> str:
    kind = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return f"torch {torch.__version__}, {kind}"


def resolve(device: str, dtype: str) -> torch.device:
    """The torch device for ``bench.device`` ("auto": cuda, then mps, then cpu, as the trainer),
    or one ConfigError naming what this machine offers instead; then ``check_dtype``."""
    from attnbench.training.device import available_devices

    valid = f"Valid here: {', '.join(available_devices())}"
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    elif device == "mps" and not has_mps:
        raise ConfigError(
            f"'bench.device' = 'mps': no MPS (Apple GPU) device is available here ({_build()}). "
            f"{valid}"
        )
    elif device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"'bench.device' = {device!r}: no CUDA device is available here ({_build()}). "
                f"{valid}"
            )
        index = device.partition(":")[2]
        n = torch.cuda.device_count()
        if index and int(index) >= n:
            raise ConfigError(
                f"'bench.device' = {device!r}: this machine has {n} CUDA device"
                f"{'s' if n != 1 else ''}. {valid}"
            )
        dev = torch.device(device)
    else:
        dev = torch.device(device)
    check_dtype(dev, dtype)
    return dev


def check_dtype(device: torch.device, dtype: str) -> None:
    """ConfigError (one line) when the cases cannot run on ``device`` in ``dtype``."""
    if device.type == "cpu" and dtype == "float16":
        raise ConfigError(
            "'bench.dtype' = 'float16' on cpu: PyTorch's CPU float16 kernels are slow fallbacks "
            "and the trainer refuses float16 on CPU, so it is not benchmarked there. "
            "Valid on cpu: float32, bf16"
        )
    if device.type == "cuda" and dtype == "bf16":
        from attnbench.training.device import native_bf16, no_native_bf16

        if not native_bf16(device):
            raise ConfigError(f"'bench.dtype' = 'bf16': {no_native_bf16(device)}. "
                              "Valid here: float32, float16")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timer(device: torch.device) -> Callable[[Callable[[], None]], float]:
    """``seconds(fn)``: the time of one call of ``fn`` on ``device``.

    CUDA: ``torch.cuda.Event(enable_timing=True)`` pairs recorded around the call after a
    ``torch.cuda.synchronize()`` (the GPU's own clock; no earlier queued work is counted).
    CPU: ``time.perf_counter``. MPS: ``perf_counter`` around the call, synchronised before and
    after.
    """
    if device.type == "cuda":

        def seconds_cuda(fn: Callable[[], None]) -> float:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3  # elapsed_time is in ms

        return seconds_cuda

    def seconds(fn: Callable[[], None]) -> float:
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        return time.perf_counter() - t0

    return seconds


def host_available_bytes() -> int | None:
    """Memory available to new allocations on the host (the pre-flight's figure: psutil's, within
    the cgroup's limit), or None when unknown."""
    from attnbench.config.resources import available_memory

    return available_memory()[0]


def available_bytes(device: torch.device) -> int | None:
    """Memory a case on ``device`` may still allocate: the GPU's free memory plus what the
    caching allocator holds but does not use (CUDA), else the host's available memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return host_available_bytes()


def out_of_memory(err: BaseException) -> bool:
    """An allocation failure (host or device): the case is skipped, not the benchmark."""
    if isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(err).lower()  # CPU allocator failures are plain RuntimeErrors
    return isinstance(err, RuntimeError) and "alloc" in text and "memory" in text


def describe(device: torch.device) -> str:
    """The device's name for the table title and the MLflow tags (CPU model or GPU name)."""
    from attnbench.training.device import device_info

    return device_info(device)["device_name"]

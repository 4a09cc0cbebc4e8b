"""Where a run trains: `trainer.device` and `trainer.precision` checked against this machine.

`TrainerConfig.problems()` checks the settings' form; this module checks that the machine can
do them (a CUDA device exists, the GPU computes in bfloat16 natively, ...) and says in one line
what it can do instead. The run pipeline calls `resolve(cfg)` in pre-flight, before any run
exists in the store.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from attnbench.errors import ConfigError
from attnbench.training.config import DEVICE_FORMS, TrainerConfig

AMP_DTYPES: dict[str, torch.dtype | None] = {
    "32": None, "bf16": torch.bfloat16, "16": torch.float16,
}


def _build() -> str:
    if torch.version.cuda:
        kind = f"CUDA {torch.version.cuda} build"
    elif getattr(torch.version, "hip", None):
        kind = f"ROCm {torch.version.hip} build"
    else:
        kind = "CPU build"
    return f"torch {torch.__version__}, {kind}"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The `trainer.device` values this machine can run."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if _mps_available():
        out.append("mps")
    return out


def resolve_device(spec: str) -> torch.device:
    """The torch device for `trainer.device`; ConfigError (one line) if this machine lacks it."""
    valid = f"Valid here: {', '.join(available_devices())}"
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise ConfigError(
                f"'trainer.device' = 'mps': no MPS (Apple GPU) device is available here "
                f"({_build()}). {valid}"
            )
        return torch.device("mps")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"'trainer.device' = {spec!r}: no CUDA device is available here ({_build()}). "
                f"{valid}"
            )
        index = spec.partition(":")[2]
        if index and not (index.isdigit() and int(index) < torch.cuda.device_count()):
            n = torch.cuda.device_count()
            raise ConfigError(
                f"'trainer.device' = {spec!r}: this machine has {n} CUDA device"
                f"{'s' if n != 1 else ''}. {valid}"
            )
        return torch.device(spec)
    raise ConfigError(f"'trainer.device' = {spec!r} is not valid: choose one of {DEVICE_FORMS}")


def native_bf16(device: torch.device) -> bool:
    """Whether the CUDA `device` computes in bfloat16 natively (compute capability 8.0+, or ROCm).

    ``torch.cuda.is_bf16_supported()`` alone also says yes for a GPU that only emulates bfloat16
    (V100, T4, RTX 20xx: compute capability 7.x, no bfloat16 tensor cores).
    """
    with torch.cuda.device(device):
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # a torch without including_emulation: the rule it applies
            return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8


def no_native_bf16(device: torch.device) -> str:
    """Why the CUDA `device` is refused bfloat16, naming the GPU and its compute capability."""
    major, minor = torch.cuda.get_device_capability(device)
    return (f"{torch.cuda.get_device_name(device)} has no native bfloat16 (compute capability "
            f"{major}.{minor} < 8.0: PyTorch would only emulate it, slowly)")


def check_precision(precision: str | int, device: torch.device) -> None:
    """ConfigError (one line) when `device` cannot train in `precision`."""
    precision = str(precision)
    if precision not in AMP_DTYPES:
        raise ConfigError(f"'trainer.precision' = {precision!r} is not valid: choose one of "
                          f"{', '.join(AMP_DTYPES)}")
    kind = device.type
    valid = ["32", "bf16"]
    if kind == "cuda":
        bf16 = native_bf16(device)
        valid = ["32", "bf16", "16"] if bf16 else ["32", "16"]
        if precision == "bf16" and not bf16:
            raise ConfigError(f"'trainer.precision' = 'bf16': {no_native_bf16(device)}. "
                              f"Valid here: {', '.join(valid)}")
    elif kind == "mps":
        valid = ["32", "bf16", "16"]
    elif precision == "16":
        raise ConfigError(
            f"'trainer.precision' = '16': float16 autocast needs a CUDA or MPS device, and this "
            f"run trains on {kind}. Valid here: {', '.join(valid)}"
        )


def resolve(cfg: TrainerConfig) -> torch.device:
    """`resolve_device(cfg.device)` and `check_precision(cfg.precision, device)`: the device a
    run of `cfg` trains on, or one ConfigError saying what this machine offers instead."""
    device = resolve_device(cfg.device)
    check_precision(cfg.precision, device)
    return device


def autocast(device: torch.device, precision: str | int) -> Callable[[], AbstractContextManager]:
    """A factory of the autocast context for forward passes (a no-op context for "32")."""
    dtype = AMP_DTYPES[str(precision)]
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timings of asynchronous devices end here)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8",
                                             errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def device_info(device: torch.device) -> dict[str, str]:
    """What a run trained on, for tags: device, device_name (CPU model / GPU name),
    torch_version, cuda_version ('none' for a build without CUDA)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = f"Apple GPU (MPS) on {platform.machine() or 'arm64'}"
    else:
        name = _cpu_name()
    return {
        "device": str(device),
        "device_name": name,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "none",
    }

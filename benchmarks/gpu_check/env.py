"""What the kit ran on: the device (the GPU's name, or the CPU in a dry run), torch and CUDA,
and the versions of the packages attnbench needs, with any that is missing or inconsistent."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.wheels import requirements

# Packages attnbench imports that the GPU image is expected to hold itself (gpu-requirements.txt
# lists what it lacks); their versions are recorded beside the carried ones.
IMAGE = ("torch", "numpy", "scipy", "pandas", "matplotlib", "scikit-learn", "typer", "rich",
         "filelock", "psutil", "sacrebleu", "tokenizers", "pytest", "pytest-xdist", "pyyaml")


def device(want: str) -> dict[str, Any]:
    """The device `want` ("cuda" or "cpu") as torch sees it; `available` False if it has none."""
    import torch

    from attnbench.training.device import device_info, native_bf16

    info: dict[str, Any] = {
        "type": want,
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
    }
    if want == "cuda":
        info["available"] = torch.cuda.is_available()
        if not info["available"]:
            info["name"] = "no CUDA device"
            return info
        dev = torch.device("cuda")
        props = torch.cuda.get_device_properties(dev)
        info.update(
            name=device_info(dev)["device_name"],
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            bf16_native=native_bf16(dev),
            driver=_nvidia_smi("driver_version"),
        )
    else:
        info.update(available=True, name=device_info(torch.device("cpu"))["device_name"],
                    bf16_native=False)
    return info


def _nvidia_smi(field: str) -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout else None


def packages(repo: Path) -> dict[str, Any]:
    """Versions of the carried packages (pinned in gpu-requirements.txt) and of the image's own;
    `mismatch` names any installed at another version than the file pins; `pip_check` is what
    `pip check` says about the whole environment."""
    pins = requirements(repo)
    versions: dict[str, str | None] = {}
    for name in [*pins, *IMAGE]:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                              text=True, timeout=60, check=False)
        pip_check = (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        pip_check = f"pip check did not run: {exc}"
    return {
        "versions": versions,
        "missing": sorted(n for n, v in versions.items() if v is None),
        "mismatch": sorted(f"{n}: {versions[n]} (file pins {v})" for n, v in pins.items()
                           if versions.get(n) not in (None, v)),
        "pip_check": pip_check[-2000:],
    }

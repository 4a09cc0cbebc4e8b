"""Names that become paths or run names: sanitised so nothing escapes runs_dir."""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_name(name: str, fallback: str = "unnamed") -> str:
    """A single path component: no separators, no '..', no leading dot, at most 120 chars."""
    cleaned = _UNSAFE.sub("-", str(name)).strip("-.")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)[:120]
    return cleaned or fallback


def inside(root: str | Path, *parts: str) -> Path:
    """root/parts..., each part sanitised; the result is guaranteed to stay under root."""
    base = Path(root).resolve()
    path = base.joinpath(*(safe_name(p) for p in parts)).resolve()
    if base != path and base not in path.parents:  # pragma: no cover - safe_name prevents it
        raise ValueError(f"{path} escapes {base}")
    return path


def run_name(attention: str, backbone: str, task: str, seed: int) -> str:
    return f"{attention}-{backbone}-{task}-s{seed}"

"""Helpers shared by every task: argument checks, per-split seeds, data fingerprints.

Argument errors follow the config module's wording (``'task.length' = -1 is out of range: ...``)
so a bad override reads the same whichever layer catches it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from attnbench.tasks.base import BOS, EOS, PAD, UNK

# id -> string for the special tokens, in id order (PAD = 0, BOS = 1, EOS = 2, UNK = 3).
SPECIAL_ITOS: tuple[str, ...] = tuple(
    s for _, s in sorted({PAD: "<pad>", BOS: "<bos>", EOS: "<eos>", UNK: "<unk>"}.items())
)

SPLITS: tuple[str, ...] = ("train", "val", "test")


def out_of_range(key: str, value: object, rule: str) -> ValueError:
    return ValueError(f"'task.{key}' = {value!r} is out of range: {rule}")


def check_min(key: str, value: int, low: int) -> None:
    """Raise ValueError unless ``value >= low``."""
    if value < low:
        raise out_of_range(key, value, f"must be >= {low}")


def check_between(key: str, value: int, low: int, high: int, rule: str = "") -> None:
    """Raise ValueError unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise out_of_range(key, value, rule or f"must be in [{low}, {high}]")


def check_fraction(key: str, value: float) -> None:
    """Raise ValueError unless ``0 < value < 1``."""
    if not 0.0 < value < 1.0:
        raise out_of_range(key, value, "must be in (0, 1)")


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """The val/test shares carved from a training file: each in range, together below 1."""
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1:
        raise out_of_range(
            "test_fraction",
            test_fraction,
            f"val_fraction + test_fraction = {val_fraction + test_fraction} must be < 1",
        )


def split_seed(seed: int, task: str, split: str) -> int:
    """A 63-bit seed for one split of one task, stable across platforms and Python versions.

    Each split has its own stream, so changing ``n_train`` leaves val and test unchanged.
    """
    digest = hashlib.sha256(f"attnbench:{task}:{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, task: str, split: str) -> torch.Generator:
    return torch.Generator().manual_seed(split_seed(seed, task, split))


def fingerprint(parts: Iterable[Tensor | bytes | str | None]) -> str:
    """First 16 hex digits of the sha256 of tensors (shape, dtype, bytes), bytes and strings."""
    h = hashlib.sha256()
    for part in parts:
        if part is None:
            h.update(b"<none>")
        elif isinstance(part, Tensor):
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        elif isinstance(part, bytes):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        else:
            h.update(str(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def pad_rows(rows: Sequence[Sequence[int]], width: int) -> Tensor:
    """Right-pad rows of ids (each at most ``width`` long) with PAD: ``(N, width)`` long."""
    n = len(rows)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n)  # (N,)
    flat = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())
    )
    out = np.full((n, width), PAD, dtype=np.int64)  # (N, width)
    row_of = np.repeat(np.arange(n), lengths)
    col_of = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[row_of, col_of] = flat
    return torch.from_numpy(out)

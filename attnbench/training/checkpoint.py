"""Saving and loading checkpoints: tensors in plain containers, loaded with ``weights_only=True``.

A checkpoint is a ``state_dict`` (names -> tensors), or for a resumable run (state.py) a dict of
tensors, numbers, strings and nested dicts/lists of them, nothing else, so loading one can never
run code from the file: ``torch.load(..., weights_only=True)`` refuses pickled objects other than
tensors and plain containers. Every module that reads a checkpoint goes through `load_checkpoint`
(a test greps the package for other ``torch.load`` calls).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from attnbench.errors import AttnbenchError


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically (a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """A state_dict saved by `save_checkpoint`; refuses files that would need to run code."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise AttnbenchError(f"{path}: checkpoint not found") from None
    except Exception as err:  # noqa: BLE001 - UnpicklingError, RuntimeError for a corrupt file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AttnbenchError(f"{path}: not a plain weights checkpoint ({first})") from err
    if not isinstance(state, dict):
        raise AttnbenchError(f"{path}: expected a state_dict, found {type(state).__name__}")
    return state

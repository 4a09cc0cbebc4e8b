"""Resumable training state: what `last.pt` holds, so a stopped run continues where it stopped.

A run resumed from `last.pt` on the same machine ends bit for bit where the uninterrupted run ends
(on CPU; tests/training/test_resume.py): the file holds the model, optimiser, schedule and
grad-scaler states, every random generator the run draws from (torch CPU, CUDA / MPS when used,
numpy, Python's `random`, and the generator of the batch order), the position (step, epoch, batches
done in the epoch and the batch-order generator's state when the epoch began, so the epoch's
permutation is drawn again and the done batches skipped), the best validation so far (metrics,
weights, step, epoch), the training time so far and the losses not yet logged.

Everything is tensors and plain containers: `load_checkpoint` reads it with ``weights_only=True``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from attnbench.errors import AttnbenchError, ConfigError
from attnbench.training.checkpoint import load_checkpoint, save_checkpoint
from attnbench.training.config import TrainerConfig

FORMAT = 1
# Settings that change the trajectory: a resumed run must have the same ones.
TRAJECTORY = ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "grad_clip",
              "warmup_steps", "precision", "optimizer", "momentum", "schedule")


@dataclass
class LoopState:
    """The loop's counters and best-so-far: everything `fit` needs besides the torch objects."""

    order_start: Tensor  # the batch-order generator's state when `epoch` began
    step: int = 0
    epoch: int = 1  # the epoch in progress (1-based)
    position: int = 0  # batches of `epoch` already trained
    samples: int = 0
    skipped_steps: int = 0  # precision 16: optimiser steps the gradient scaler skipped (inf/NaN)
    train_s: float = 0.0  # timed training (validation excluded)
    elapsed_s: float = 0.0  # wall clock (what trainer.max_time limits)
    last_val_step: int = -1
    best_val: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, Tensor] = field(default_factory=dict)
    best_step: int = 0
    best_epoch: int = 0
    window: list[Tensor] = field(default_factory=list)  # losses since the last train/loss


def rng_states(device: torch.device) -> dict[str, Any]:
    np_kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state_all()
    elif device.type == "mps":
        out["mps"] = torch.mps.get_rng_state()
    return out


def set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss"]))
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])
    elif device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])


def save_state(
    path: Path,
    *,
    cfg: TrainerConfig,
    seed: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    loop: LoopState,
    device: torch.device,
) -> Path:
    """Write `last.pt` atomically."""
    prog = {f.name: getattr(loop, f.name) for f in fields(loop)}
    prog["window"] = torch.stack(loop.window).cpu() if loop.window else torch.zeros(0)
    state = {
        "format": FORMAT,
        "seed": seed,
        "trainer": {k: getattr(cfg, k) for k in TRAJECTORY},
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng_states(device),
        "progress": prog,
    }
    return save_checkpoint(state, path)


def load_state(path: Path) -> dict[str, Any]:
    """A `last.pt` written by `save_state` (weights_only load); ConfigError for anything else,
    a truncated or unreadable file included."""
    try:
        state = load_checkpoint(path)
    except AttnbenchError as err:
        raise ConfigError(err.one_line()) from err
    if state.get("format") != FORMAT or not isinstance(state.get("progress"), dict):
        raise ConfigError(f"{path}: not a resumable training state (written by another version?)")
    return state


def unusable(path: Path, *, cfg: TrainerConfig, seed: int, model: torch.nn.Module) -> str | None:
    """Why the `last.pt` at `path` cannot continue training `model` with `cfg` and `seed` (None:
    it can), checked without touching the model or any random generator: unreadable or
    truncated, not a training state, another seed or trajectory setting, or weights, best
    weights or optimiser state of another model (names and shapes)."""
    try:
        state = load_state(path)
        mismatched = _mismatched(state, cfg, seed)
        if mismatched:
            return f"written with {', '.join(mismatched)}"
        prog = state["progress"]
        missing = {f.name for f in fields(LoopState)} - set(prog)
        if missing:
            return f"its progress lacks {', '.join(sorted(missing))}"
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        for what, weights in (("weights", state["model"]), ("best weights", prog["best_state"])):
            if {k: tuple(v.shape) for k, v in weights.items()} != shapes:
                return f"its {what} are another model's (names or shapes differ)"
        trainable = [tuple(p.shape) for p in model.parameters() if p.requires_grad]
        groups = state["optimizer"]["param_groups"]
        if sum(len(g["params"]) for g in groups) != len(trainable):
            return "its optimiser state is another model's"
        for index, slots in state["optimizer"]["state"].items():
            if any(isinstance(t, Tensor) and t.dim() > 0 and tuple(t.shape) != trainable[index]
                   for t in slots.values()):
                return "its optimiser state is another model's"
        if tuple(state["rng"]["torch"].shape) != tuple(torch.get_rng_state().shape):
            return "its random generator state is malformed"
    except ConfigError as err:
        return err.one_line()
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
        return f"malformed training state ({type(err).__name__}: {err})"
    return None


def _mismatched(state: dict[str, Any], cfg: TrainerConfig, seed: int) -> list[str]:
    """The saved settings that this run's differ from, as `key=saved value`."""
    mismatched = [f"trainer.{k}={v!r}" for k, v in state["trainer"].items()
                  if getattr(cfg, k) != v]
    if state["seed"] != seed:
        mismatched.insert(0, f"seed={state['seed']}")
    return mismatched


def resume_point(path: Path) -> tuple[int, int]:
    """(step, epoch) a `last.pt` resumes from, e.g. for a tag or a message."""
    prog = load_state(path)["progress"]
    return int(prog["step"]), int(prog["epoch"])


def restore(
    state: dict[str, Any],
    *,
    cfg: TrainerConfig,
    seed: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
) -> LoopState:
    """Put the saved state into the freshly built objects; returns the loop's progress."""
    mismatched = _mismatched(state, cfg, seed)
    if mismatched:
        raise ConfigError(
            f"cannot resume: the saved training state was written with {', '.join(mismatched)}, "
            "which this run's config changes"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"], device)
    prog = dict(state["progress"])
    window = prog.pop("window")
    prog["best_state"] = {k: v.to(device) for k, v in prog["best_state"].items()}
    return LoopState(**prog, window=[w.to(device) for w in window])

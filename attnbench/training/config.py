"""The trainer's typed settings (conf/trainer/*.yaml): what the training loop takes.

No torch here: configs are validated before anything heavy is imported. Whether the machine has
the device, and whether the device can run the precision, is checked by `training.device`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "warmup_cosine", "warmup_linear")
PRECISIONS = ("32", "bf16", "16")
DEVICE_FORMS = "auto, cpu, cuda, cuda:N, mps"
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class TrainerConfig:
    """Training-loop settings (conf/trainer/*.yaml)."""

    epochs: int = 4
    max_steps: int = 0  # 0 = no cap
    batch_size: int = 64
    eval_batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # 0 = off
    warmup_steps: int = 50
    limit_eval_batches: int = 0  # 0 = all
    log_every: int = 25
    threads: int = 1  # per job, whatever the launcher; 0 = cores / parallel jobs
    deterministic: bool = True
    progress: bool = True
    device: str = "auto"  # auto (cuda -> mps -> cpu), cpu, cuda, cuda:N, mps
    # "32", "bf16" or "16" (Hydra reads `16` as an int: normalised to "16" below)
    precision: str | int = "32"
    compile: bool = False  # torch.compile the model's training forward
    optimizer: str = "adamw"  # one of OPTIMIZERS
    momentum: float = 0.9  # sgd only
    schedule: str = "constant"  # one of SCHEDULES; all start with the linear warm-up
    eval_every: int = 0  # validate every N steps; 0 = at the end of every epoch
    max_time: float = 0.0  # seconds of wall clock, then validate, test and finish; 0 = none
    checkpoint_every: int = 0  # write last.pt every N steps (and at validations); 0 = validations

    def __post_init__(self) -> None:
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):
            object.__setattr__(self, "precision", str(self.precision))

    def problems(self) -> list[str]:
        out: list[str] = []

        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                out.append(f"'trainer.{key}' = {getattr(self, key)!r} is out of range: {rule}")

        def choose(key: str, choices: tuple[str, ...] | str) -> None:
            valid = choices if isinstance(choices, str) else ", ".join(choices)
            out.append(f"'trainer.{key}' = {getattr(self, key)!r} is not valid: choose one of "
                       f"{valid}")

        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.max_steps >= 0, "max_steps", "must be >= 0 (0 = no cap)")
        need(self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")
        need(0 < self.lr <= 10, "lr", "must be in (0, 10]")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 = off)")
        need(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        need(self.limit_eval_batches >= 0, "limit_eval_batches", "must be >= 0 (0 = all)")
        need(self.log_every >= 1, "log_every", "must be >= 1")
        need(self.threads >= 0, "threads", "must be >= 0 (0 = cores / parallel jobs)")
        need(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        need(self.eval_every >= 0, "eval_every", "must be >= 0 (0 = every epoch)")
        need(self.max_time >= 0, "max_time", "must be >= 0 (seconds; 0 = no limit)")
        need(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0 = at validations)")
        if not (isinstance(self.device, str) and _DEVICE.fullmatch(self.device)):
            choose("device", DEVICE_FORMS)
        if self.precision not in PRECISIONS:
            choose("precision", PRECISIONS)
        if self.optimizer not in OPTIMIZERS:
            choose("optimizer", OPTIMIZERS)
        if self.schedule not in SCHEDULES:
            choose("schedule", SCHEDULES)
        return out

"""The trainer's typed settings (conf/trainer/*.yaml): what the training loop takes."""

from __future__ import annotations

from dataclasses import dataclass


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
    warmup_steps: int = 0
    limit_eval_batches: int = 0  # 0 = all
    log_every: int = 25
    threads: int = 0  # 0 = cores / parallel jobs
    deterministic: bool = True
    progress: bool = True

    def problems(self) -> list[str]:
        out: list[str] = []

        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                out.append(f"'trainer.{key}' = {getattr(self, key)!r} is out of range: {rule}")

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
        return out

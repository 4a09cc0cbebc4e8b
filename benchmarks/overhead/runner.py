"""Section ``loop``: steady-state step time of ``attnbench run`` vs a bare PyTorch loop on the same
model, data, schedule, clipping, threads and steps, interleaved."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.overhead.common import (
    Report,
    compose,
    log,
    loss_timestamps,
    run_cli,
    runs_dir_from,
    runs_of,
)


def bare_loop(cfg: dict[str, Any], steps: int, every: int, threads: int) -> dict[int, float]:
    """A plain PyTorch training loop on attnbench's model and data (same optimiser, schedule,
    clipping and batches as the runner); returns {step: seconds} at every `every` steps."""
    import torch

    from attnbench.config.build import build
    from attnbench.config.validate import validate
    from attnbench.training.steps import loss_fn

    torch.set_num_threads(threads)
    torch.manual_seed(cfg["seed"])
    built = build(validate(cfg))
    model, data, tc = built.model, built.data, built.trainer
    kind = data.spec.kind
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / tc.warmup_steps) if tc.warmup_steps else 1.0
    )
    gen = torch.Generator().manual_seed(cfg["seed"])
    order = torch.randperm(len(data.train), generator=gen)
    model.train()
    stamps: dict[int, float] = {}
    for step in range(1, steps + 1):
        idx = order[(step - 1) * tc.batch_size : step * tc.batch_size]
        x, y = data.train.inputs[idx], data.train.targets[idx]
        out = model(x, y if kind == "transduce" else None)
        loss = loss_fn(out.logits, y, kind)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        if step % every == 0:
            stamps[step] = time.perf_counter()
    return stamps


def per_step(stamps: dict[int, float], first: int, last: int) -> float:
    return (stamps[last] - stamps[first]) / (last - first)


def section_loop(
    report: Report, work: Path, template: Path, quick: bool, repeats: int, threads: int = 0
) -> None:
    # One epoch (8000 / 64 = 125 steps) so no evaluation falls inside; the steady state is the
    # last 50 steps: the runner opens its MLflow run after its first step.
    steps = 100 if quick else 125
    every, steady = 25, steps - 50
    overrides = [
        "task.n_train=8000",
        f"trainer.max_steps={steps}",
        "trainer.epochs=1",
        f"trainer.log_every={every}",
        "trainer.limit_eval_batches=1",
        f"trainer.threads={threads}",
    ]
    cfg = compose(overrides)
    runs_dir = runs_dir_from(template, work / "loop")
    got: dict[str, list[tuple[float, float]]] = {"bare": [], "runner": []}
    for i in range(repeats):
        exp = f"loop-{i}"
        run_cli(["run", *overrides, f"runs_dir={runs_dir}", f"experiment_name={exp}"], work)
        run = runs_of(runs_dir, exp)[0]
        threads = int(run.tags["attnbench.threads"])
        ts = loss_timestamps(runs_dir, run.run_id)
        got["runner"].append((per_step(ts, steady, steps), per_step(ts, every, steps)))
        stamps = bare_loop(cfg, steps, every, threads)
        got["bare"].append((per_step(stamps, steady, steps), per_step(stamps, every, steps)))
        log(
            f"loop {i}: steady runner {got['runner'][-1][0] * 1e3:.1f} ms/step, "
            f"bare {got['bare'][-1][0] * 1e3:.1f} ms/step"
        )

    def med(kind: str, which: int) -> float:
        return statistics.median(g[which] for g in got[kind])

    pairs = [r[0] / b[0] for r, b in zip(got["runner"], got["bare"], strict=True)]
    ratio = med("runner", 0) / med("bare", 0)
    early = med("runner", 1) / med("bare", 1)
    model = "default model (transformer, scaled, assoc_recall, B=64)"
    report.add(
        "loop",
        "bare PyTorch loop, steady state",
        med("bare", 0) * 1e3,
        "ms/step",
        note=f"steps {steady}..{steps}, {threads} thread(s), {model}",
    )
    report.add(
        "loop",
        "attnbench run, steady state",
        med("runner", 0) * 1e3,
        "ms/step",
        note="from its train/loss timestamps (logging, progress, determinism included)",
    )
    report.add(
        "loop",
        "runner / bare, steady state",
        ratio,
        "×",
        "<= 1.10",
        ratio <= 1.10,
        f"{repeats} interleaved pairs: {', '.join(f'{p:.2f}' for p in pairs)}",
    )
    report.add(
        "loop",
        f"runner / bare, steps {every}..{steps}",
        early,
        "×",
        note="the metric writer's and heartbeat's first writes; MLflow's import and the run's "
        "creation come before (after step 1)",
    )

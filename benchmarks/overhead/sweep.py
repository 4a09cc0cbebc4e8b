"""Section ``sweep``: throughput of the default 5-variant sweep with the joblib launcher (two
workers) vs the basic sequential launcher."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.overhead.common import Report, log, run_cli, runs_dir_from, runs_of

VARIANTS = "none,dot,scaled,additive,multihead"


def section_sweep(report: Report, work: Path, template: Path, quick: bool, repeats: int) -> None:
    trainer = (
        ["trainer.max_steps=100", "trainer.epochs=1", "trainer.limit_eval_batches=2"]
        if quick
        else []
    )
    modes = {
        "sequential": [],
        "joblib n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    }
    rates: dict[str, list[float]] = {m: [] for m in modes}
    threads: dict[str, set[str]] = {m: set() for m in modes}
    for i in range(repeats):
        for mode, extra in modes.items():
            runs_dir = runs_dir_from(template, work / f"sweep-{i}-{mode.split()[0]}")
            _, wall = run_cli(
                ["sweep", f"attention={VARIANTS}", *trainer, *extra, f"runs_dir={runs_dir}"], work
            )
            children = [
                r for r in runs_of(runs_dir, "assoc_recall") if r.tags.get("mlflow.parentRunId")
            ]
            assert len(children) == 5 and all(r.status == "FINISHED" for r in children), children
            threads[mode] |= {r.tags["attnbench.threads"] for r in children}
            rates[mode].append(5 / wall * 60)
            log(f"sweep {i}: {mode}: 5 jobs in {wall:.1f} s")
    what = "quick trainer (max_steps=100, 1 epoch, 2 eval batches)" if quick else "default trainer"
    for mode in modes:
        report.add(
            "sweep",
            f"5-variant sweep, {mode}",
            statistics.median(rates[mode]),
            "jobs/min",
            note=f"{what}; torch threads per job: {','.join(sorted(threads[mode]))}",
        )
    speedup = statistics.median(rates["joblib n_jobs=2"]) / statistics.median(rates["sequential"])
    report.add(
        "sweep", "joblib / sequential throughput", speedup, "×", ">= 1.4", speedup >= 1.4, what
    )

"""Section ``memory``: the same job reports the same ``cost/peak_mem_mb`` whether it runs first or
fifth in a sequential sweep (issue 13's target: within ±5 %).

The default 5-variant sweep runs twice with the basic launcher (every job in one process), once in
each order: ``none`` is first in one and fifth in the other, ``dot`` second and fourth, and so on.
Each variant's figure in one order is divided by its figure in the other; the worst ratio over the
variants that moved is the figure (``scaled``, third both times, is shown apart as a repeat)."""

from __future__ import annotations

from pathlib import Path

from attnbench.benchmarks.overhead.common import Report, log, run_cli, runs_dir_from, runs_of

ORDER = ("none", "dot", "scaled", "additive", "multihead")
PEAK, BASE = "cost/peak_mem_mb", "cost/base_mem_mb"


def _figures(runs_dir: Path) -> dict[str, tuple[float, float]]:
    children = [r for r in runs_of(runs_dir, "assoc_recall") if r.tags.get("mlflow.parentRunId")]
    assert len(children) == len(ORDER) and all(r.status == "FINISHED" for r in children), children
    return {r.tags["attention"]: (r.metrics[PEAK], r.metrics[BASE]) for r in children}


def section_memory(report: Report, work: Path, template: Path, quick: bool, repeats: int) -> None:
    trainer = ["trainer.max_steps=100", "trainer.epochs=1"] if quick else []
    worst: list[float] = []
    repeat: list[float] = []
    for i in range(repeats):
        runs: list[dict[str, tuple[float, float]]] = []
        for name, order in (("forward", ORDER), ("reversed", ORDER[::-1])):
            runs_dir = runs_dir_from(template, work / f"memory-{i}-{name}")
            run_cli(
                [
                    "sweep",
                    f"attention={','.join(order)}",
                    "hydra/launcher=basic",
                    *trainer,
                    f"runs_dir={runs_dir}",
                ],
                work,
            )
            runs.append(_figures(runs_dir))
        fwd, rev = runs
        for v in ORDER:
            log(
                f"memory {i}: {v}: position {ORDER.index(v) + 1} peak {fwd[v][0]:.1f} MB "
                f"(base {fwd[v][1]:.0f}) / position {5 - ORDER.index(v)} peak {rev[v][0]:.1f} MB "
                f"(base {rev[v][1]:.0f})"
            )
        ratios = {v: fwd[v][0] / rev[v][0] for v in ORDER if v != "scaled"}
        worst.append(max(ratios.values(), key=lambda r: abs(r - 1.0)))
        repeat.append(fwd["scaled"][0] / rev["scaled"][0])
    what = "quick trainer (max_steps=100, 1 epoch)" if quick else "default trainer"
    far = max(worst, key=lambda r: abs(r - 1.0))
    report.add(
        "memory",
        "peak_mem_mb first / fifth (worst variant)",
        far,
        "×",
        "0.95-1.05",
        0.95 <= far <= 1.05,
        f"{what}; each sweep in one process (hydra/launcher=basic), both orders; "
        f"worst per repeat: {', '.join(f'{r:.3f}' for r in worst)}",
    )
    report.add(
        "memory",
        "peak_mem_mb third / third (scaled)",
        max(repeat, key=lambda r: abs(r - 1.0)),
        "×",
        note="the same position in both orders: the repeat's own noise",
    )

"""Section ``memory``: the same job reports the same ``cost/peak_mem_mb`` whether it runs first or
fifth in a sequential sweep (issue 13's target: within ±5 %).

The default 5-variant sweep runs twice with the basic launcher (every job in one process), once in
each order: ``none`` is first in one and fifth in the other, ``dot`` second and fourth, and so on.
Each variant's figure in one order is divided by its figure in the other; the worst ratio over the
variants that moved is the figure (``scaled``, third both times, is shown apart as a repeat). The
same ratios of ``cost/peak_rss_mb`` (the process's resident set, training/run_memory.py) are shown
beside it: what the figure was before it came from the allocator's events."""

from __future__ import annotations

from pathlib import Path

from benchmarks.overhead.common import Report, log, run_cli, runs_dir_from, runs_of

ORDER = ("none", "dot", "scaled", "additive", "multihead")
PEAK, BASE = "cost/peak_mem_mb", "cost/base_mem_mb"
RSS, RSS_BASE = "cost/peak_rss_mb", "cost/base_rss_mb"


def _figures(runs_dir: Path) -> dict[str, tuple[float, float, float, float]]:
    """{variant: (peak, base, resident peak, resident base)} in MB."""
    children = [r for r in runs_of(runs_dir, "assoc_recall") if r.tags.get("mlflow.parentRunId")]
    assert len(children) == len(ORDER) and all(r.status == "FINISHED" for r in children), children
    return {r.tags["attention"]: tuple(r.metrics[k] for k in (PEAK, BASE, RSS, RSS_BASE))
            for r in children}


def _farthest(ratios: list[float]) -> float:
    return max(ratios, key=lambda r: abs(r - 1.0))


def section_memory(report: Report, work: Path, template: Path, quick: bool, repeats: int) -> None:
    trainer = ["trainer.max_steps=100", "trainer.epochs=1"] if quick else []
    worst: list[float] = []
    repeat: list[float] = []
    worst_rss: list[float] = []
    repeat_rss: list[float] = []
    for i in range(repeats):
        runs: list[dict[str, tuple[float, float, float, float]]] = []
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
                f"memory {i}: {v}: position {ORDER.index(v) + 1} peak {fwd[v][0]:.3f} MB "
                f"(base {fwd[v][1]:.3f}; resident {fwd[v][2]:.1f} above {fwd[v][3]:.0f}) / "
                f"position {5 - ORDER.index(v)} peak {rev[v][0]:.3f} MB (base {rev[v][1]:.3f}; "
                f"resident {rev[v][2]:.1f} above {rev[v][3]:.0f})"
            )
        moved = [v for v in ORDER if v != "scaled"]
        worst.append(_farthest([fwd[v][0] / rev[v][0] for v in moved]))
        repeat.append(fwd["scaled"][0] / rev["scaled"][0])
        worst_rss.append(_farthest([fwd[v][2] / rev[v][2] for v in moved]))
        repeat_rss.append(fwd["scaled"][2] / rev["scaled"][2])
    what = "quick trainer (max_steps=100, 1 epoch)" if quick else "default trainer"
    far = _farthest(worst)
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
        _farthest(repeat),
        "×",
        note="the same position in both orders: the repeat's own noise",
    )
    report.add(
        "memory",
        "peak_rss_mb first / fifth (worst variant)",
        _farthest(worst_rss),
        "×",
        note=f"the process's resident set, for comparison; worst per repeat: "
        f"{', '.join(f'{r:.3f}' for r in worst_rss)}; third / third "
        f"{_farthest(repeat_rss):.3f}",
    )

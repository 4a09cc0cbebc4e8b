"""Stage `grid`: every attention variant on every backbone in every precision, a few steps each
(trainer=smoke), as one `attnbench sweep`; one status per cell."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import yaml

from benchmarks.gpu_check import proc, runs
from benchmarks.gpu_check.plan import Sizes

EXPERIMENT = "kit-grid"


def _tasks(conf: Path) -> list[str]:
    """Synthetic tasks (no data file), the default first: the candidates a backbone trains on."""
    from attnbench.config.groups import group_options

    defaults = yaml.safe_load((conf / "config.yaml").read_text(encoding="utf-8"))["defaults"]
    first = next(d["task"] for d in defaults if isinstance(d, dict) and "task" in d)
    synthetic = [t for t in group_options("task")
                 if "path" not in (yaml.safe_load((conf / "task" / f"{t}.yaml").read_text(
                     encoding="utf-8")) or {})]
    return sorted(synthetic, key=lambda t: (t != first, t != "reverse", t))


def task_per_backbone(conf: Path, backbones: list[str]) -> dict[str, str]:
    """One synthetic task per backbone: the default task if the backbone can train it, else
    `reverse`, else the first by name it can."""
    from attnbench.backbones import BACKBONES
    from attnbench.tasks import TASKS

    tasks = [(t, TASKS.get(t).kind) for t in _tasks(conf)]
    out = {}
    for b in backbones:
        found = next((t for t, kind in tasks if kind in BACKBONES.get(b).kinds), None)
        if found is not None:
            out[b] = found
    return out


def run_stage(section: dict[str, Any], repo: Path, work: Path, sizes: Sizes, variants: list[str],
              backbones: list[str], bf16: bool, budget_s: float, log: Path) -> None:
    """One sweep per task (its backbones x variants x precisions), side by side, each on its
    own store, the workers shared out between them."""
    variants = list(sizes.grid_variants or variants)
    task_of = task_per_backbone(repo / "conf", backbones)
    groups: dict[str, list[str]] = {}
    for b, t in task_of.items():
        groups.setdefault(t, []).append(b)
    precisions = tuple(p for p in sizes.grid_precisions if p != "bf16" or bf16)
    workers = max(1, sizes.grid_workers // len(groups))
    launcher = (["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"]
                if workers > 1 else ["hydra/launcher=basic"])
    cmds = [runs.attnbench(
        "sweep", f"attention={','.join(variants)}", f"backbone={','.join(bs)}", f"task={t}",
        "trainer=smoke", f"trainer.device={sizes.device}",
        f"trainer.precision={','.join(precisions)}", "trainer.progress=false",
        f"experiment_name={EXPERIMENT}", f"runs_dir={work / f'runs-grid-{t}'}", *launcher)
        for t, bs in groups.items()]
    section["commands"] = [" ".join(["attnbench", *c[3:]]) for c in cmds]
    section["task_of"] = task_of
    section["no_task"] = [b for b in backbones if b not in task_of]
    done = proc.run_all(cmds, budget_s, log, cwd=work, env=runs.env(repo))
    section["rc"] = [d.rc for d in done]
    timed_out = any(d.timed_out for d in done)
    found = {runs.cell(r): r for t in groups
             for r in runs.job_runs(work / f"runs-grid-{t}", EXPERIMENT)}
    table = []
    for v, b, p in product(variants, task_of, sizes.grid_precisions):
        run = found.get((v, b, task_of[b], p))
        if p == "bf16" and not bf16:
            status = "refused: this GPU has no native bfloat16"
        elif run is None:
            status = "not run" + (" (budget)" if timed_out else "")
        else:
            status = runs.outcome(run)
        table.append({"attention": v, "backbone": b, "task": task_of[b], "precision": p,
                      "status": status})
    section["cells"] = table
    section["ok"] = sum(c["status"] == "ok" for c in table)
    section["total"] = len(table)
    if timed_out:
        section["status"] = "timeout"
    elif section["ok"] == 0:
        section["status"] = "failed"
        section["error"] = "; ".join((d.tail.strip().splitlines() or [""])[-1][:300]
                                     for d in done if not d.ok)

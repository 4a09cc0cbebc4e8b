"""Stage `sweep`: the README's default sweep in float32 and bf16 on the device (time,
samples/s, peak memory, scores), then its first seed again: with trainer.deterministic=true
every metric that is not a measurement of the machine must come out identical."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from attnbench.store import names as rec
from benchmarks.gpu_check import proc, runs
from benchmarks.gpu_check.plan import SWEEP_VARIANTS, Sizes

EXPERIMENT, REPEAT = "kit-sweep", "kit-sweep-repeat"
KEY = (rec.ATTENTION_TAG, rec.SEED_TAG, rec.PRECISION_TAG)
MIN_REPEAT_S = 20  # the repeat is skipped when less of the stage's budget is left


def command(sizes: Sizes, seeds: tuple[int, ...], precisions: tuple[str, ...], work: Path,
            experiment: str) -> list[str]:
    return runs.attnbench(
        "sweep", f"attention={','.join(SWEEP_VARIANTS)}", f"seed={','.join(map(str, seeds))}",
        *sizes.sweep_overrides, f"trainer.precision={','.join(precisions)}",
        f"trainer.device={sizes.device}", "trainer.deterministic=true", "trainer.progress=false",
        "hydra/launcher=basic", f"experiment_name={experiment}", f"runs_dir={work / 'runs'}")


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def figures(found: list[Any], precisions: tuple[str, ...]) -> dict[str, Any]:
    """Per precision: jobs, their summed wall time, training time, samples/s and peak memory;
    per variant and precision: score, samples/s, peak memory (means over seeds)."""
    out: dict[str, Any] = {"per_precision": {}, "per_variant": {}}
    for p in precisions:
        mine = [r for r in found if r.tags.get(rec.PRECISION_TAG) == p]
        ok = [r for r in mine if r.status == "FINISHED"]
        out["per_precision"][p] = {
            "jobs": len(mine),
            "finished": len(ok),
            "jobs_wall_s": round(sum(runs.duration_s(r) or 0 for r in mine), 2),
            "train_s": round(sum(r.metrics.get(rec.COST_TRAIN_S, 0) for r in ok), 3),
            "samples_per_s": _mean([r.metrics[rec.COST_SAMPLES_PER_S] for r in ok
                                    if rec.COST_SAMPLES_PER_S in r.metrics]),
            "peak_mem_mb": max((r.metrics.get(rec.COST_PEAK_MEM_MB, 0) for r in ok), default=None),
        }
        by_variant: dict[str, list[Any]] = defaultdict(list)
        for r in ok:
            by_variant[r.tags.get(rec.ATTENTION_TAG, "")].append(r)
        for v, rs in by_variant.items():
            out["per_variant"].setdefault(v, {})[p] = {
                "score": _mean([r.metrics[runs.primary(r)] for r in rs
                                if runs.primary(r) in r.metrics]),
                "metric": runs.primary(rs[0]),
                "seeds": len(rs),
                "train_s": _mean([r.metrics.get(rec.COST_TRAIN_S, 0) for r in rs]),
                "samples_per_s": _mean([r.metrics.get(rec.COST_SAMPLES_PER_S, 0) for r in rs]),
                "peak_mem_mb": _mean([r.metrics.get(rec.COST_PEAK_MEM_MB, 0) for r in rs]),
            }
    return out


def compare(first: list[Any], again: list[Any], runs_dir: Path) -> dict[str, Any]:
    """Each repeated run against the first run of its cell: every metric but the machine's
    measurements (names.TIMING_METRICS), and the whole train/loss curve, must be equal."""
    before = {runs.cell(r, KEY): r for r in first if r.status == "FINISHED"}
    pairs, differing = 0, []
    for r in again:
        old = before.get(runs.cell(r, KEY))
        if old is None or r.status != "FINISHED":
            continue
        pairs += 1
        keys = (set(old.metrics) | set(r.metrics)) - set(rec.TIMING_METRICS)
        diff = sorted(k for k in keys if old.metrics.get(k) != r.metrics.get(k))
        if runs.train_loss_history(runs_dir, old.run_id) != runs.train_loss_history(
                runs_dir, r.run_id):
            diff.append(rec.TRAIN_LOSS + " (curve)")
        if diff:
            gap = max((abs(old.metrics[k] - r.metrics[k]) for k in diff
                       if k in old.metrics and k in r.metrics), default=None)
            differing.append({"cell": "/".join(runs.cell(r, KEY)), "metrics": diff[:8],
                              "max_abs_diff": gap})
    return {"pairs": pairs, "identical": pairs - len(differing), "differing": differing}


def run_stage(section: dict[str, Any], repo: Path, work: Path, sizes: Sizes, bf16: bool,
              budget_s: float, log: Path, save: Any) -> None:
    precisions = tuple(p for p in sizes.sweep_precisions if p != "bf16" or bf16)
    if len(precisions) < len(sizes.sweep_precisions):
        section["note"] = "bf16 left out: this GPU has no native bfloat16"
    t0 = time.perf_counter()
    cmd = command(sizes, sizes.sweep_seeds, precisions, work, EXPERIMENT)
    section["command"] = " ".join(["attnbench", *cmd[3:]])
    done = proc.run(cmd, budget_s, log, cwd=work, env=runs.env(repo))
    section.update(rc=done.rc, timed_out=done.timed_out, sweep_wall_s=round(done.elapsed_s, 1))
    first = runs.job_runs(work / "runs", EXPERIMENT)
    section.update(figures(first, precisions))
    save()
    left = budget_s - (time.perf_counter() - t0)
    if done.timed_out or left < MIN_REPEAT_S:
        section["status"] = "timeout"
        section["deterministic"] = {"skipped": f"{left:.0f} s of the budget left"}
        return
    cmd = command(sizes, sizes.repeat_seeds, precisions, work, REPEAT)
    section["repeat_command"] = " ".join(["attnbench", *cmd[3:]])
    again_done = proc.run(cmd, left, log, cwd=work, env=runs.env(repo))
    again = runs.job_runs(work / "runs", REPEAT)
    section["deterministic"] = compare(first, again, work / "runs")
    section["deterministic"]["rc"] = again_done.rc
    if again_done.timed_out:
        section["status"] = "timeout"
    elif done.rc != 0 or again_done.rc != 0:
        section["status"] = "failed"
        section["error"] = f"sweep exit codes {done.rc} and {again_done.rc}"

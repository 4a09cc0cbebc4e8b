"""Training figures the defaults must reach, measured through the real CLI.

    python -m benchmarks.figures skeleton [--seeds 3] [--set trainer.precision=bf16]
        default 5-variant sweep over 3 seeds: <= 3 min per seed, best >= 90 %, none >= 20 points
        below the best, and `attnbench compare` marks at least one attention variant besides
        `none` significantly worse than the best (the default task discriminates)
    python -m benchmarks.figures reverse
        seq2seq on reverse (length 20): additive exact match >= 0.90, none <= 0.50, <= 3 min each
    python -m benchmarks.figures text [--csv PATH]
        rnn + additive on a text file (written by the script, or yours): runs, logs acc and F1

Each check runs `attnbench sweep ...` in a subprocess on a fresh store (``--runs-dir``, default a
temporary folder), reads the runs back from MLflow, prints a table with the target next to the
measured figure, and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attnbench.store.tracker import RunInfo, Tracker

VARIANTS = "none,dot,scaled,additive,multihead"


@dataclass
class Check:
    name: str
    target: str
    value: str
    ok: bool


def sweep(runs_dir: Path, args: list[str]) -> tuple[float, list[RunInfo]]:
    """Run `attnbench sweep ARGS` on runs_dir; wall seconds and the child runs of the sweep."""
    cmd = [sys.executable, "-m", "attnbench", "sweep", *args, f"runs_dir={runs_dir}"]
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed with exit code {proc.returncode}")
    tracker = Tracker(None, runs_dir)
    exps = tracker.client.search_experiments()
    runs = tracker.search([e.experiment_id for e in exps])
    parent = max(
        (r for r in runs if r.tags.get("attnbench.kind") == "sweep"), key=lambda r: r.start_time
    )
    return wall, [r for r in runs if r.tags.get("mlflow.parentRunId") == parent.run_id]


def skeleton(runs_dir: Path, ns: argparse.Namespace) -> list[Check]:
    seeds = ",".join(str(i) for i in range(ns.seeds))
    wall, runs = sweep(runs_dir, [f"attention={VARIANTS}", f"seed={seeds}", *ns.set])
    acc = by_attention(runs, "test/acc")
    best = max(acc, key=acc.get)
    print_runs(runs, "test/acc")
    checks = [
        Check(
            f"sweep wall time ({ns.seeds} seed{'s' if ns.seeds > 1 else ''})",
            f"<= {180 * ns.seeds} s",
            f"{wall:.0f} s",
            wall <= 180 * ns.seeds,
        ),
        Check(f"best variant ({best}) test/acc", ">= 0.90", f"{acc[best]:.3f}", acc[best] >= 0.90),
        Check(
            "none below best",
            ">= 20 points",
            f"{100 * (acc[best] - acc['none']):.1f} points",
            acc[best] - acc["none"] >= 0.20,
        ),
    ]
    if ns.seeds >= 2:
        worse = significantly_worse(runs_dir)
        checks.append(
            Check(
                "variants besides none that compare marks worse than the best",
                ">= 1",
                ", ".join(worse) or "none",
                bool(worse),
            )
        )
    return checks


def by_attention(runs: list[RunInfo], metric: str) -> dict[str, float]:
    """`metric` per attention variant, the mean over its runs (seeds)."""
    values: dict[str, list[float]] = {}
    for r in runs:
        values.setdefault(r.tags["attention"], []).append(r.metrics[metric])
    return {k: sum(v) / len(v) for k, v in values.items()}


def significantly_worse(runs_dir: Path) -> list[str]:
    """The attention variants (not `none`) `attnbench compare` marks `worse` than the best."""
    out = runs_dir / "compare.json"
    cmd = [sys.executable, "-m", "attnbench", "compare", "--runs-dir", str(runs_dir),
           "--no-plots", "-o", str(out)]
    print("$", " ".join(cmd[2:]), flush=True)
    if subprocess.run(cmd, text=True).returncode != 0:
        raise SystemExit("compare failed")
    groups = json.loads(out.read_text())["groups"]
    return [g["attention"] for g in groups if g["status"] == "worse" and g["attention"] != "none"]


REVERSE = [
    "backbone=seq2seq",
    "task=reverse",
    "task.length=20",
    "trainer.epochs=5",
    "trainer.batch_size=128",
    "trainer.lr=0.003",
]


def reverse(runs_dir: Path, _: argparse.Namespace) -> list[Check]:
    _, runs = sweep(runs_dir, ["attention=none,additive", *REVERSE])
    em = by_attention(runs, "test/exact_match")
    secs = {r.tags["attention"]: r.metrics["cost/train_s"] for r in runs}
    print_runs(runs, "test/exact_match")
    return [
        Check(
            "additive test/exact_match", ">= 0.90", f"{em['additive']:.3f}", em["additive"] >= 0.90
        ),
        Check("none test/exact_match", "<= 0.50", f"{em['none']:.3f}", em["none"] <= 0.50),
        Check(
            "training time per variant",
            "<= 180 s",
            ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()),
            max(secs.values()) <= 180,
        ),
    ]


POSITIVE = ["good", "great", "superb", "lovely", "moving", "brilliant"]
NEGATIVE = ["bad", "dull", "awful", "boring", "weak", "clumsy"]
FILLER = [
    "the",
    "film",
    "plot",
    "actor",
    "scene",
    "story",
    "was",
    "a",
    "and",
    "it",
    "of",
    "this",
    "with",
]


def write_reviews(path: Path, n: int = 3000, seed: int = 0) -> Path:
    """A small sentiment-like CSV: the label is the majority of opinion words among filler."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for _ in range(n):
        label = rng.random() < 0.5
        major, minor = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = [rng.choice(FILLER) for _ in range(rng.randint(12, 40))]
        for word in [rng.choice(major) for _ in range(3)] + [
            rng.choice(minor) for _ in range(rng.randint(0, 2))
        ]:
            words.insert(rng.randrange(len(words) + 1), word)
        lines.append(f"{' '.join(words)},{'pos' if label else 'neg'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def text(runs_dir: Path, ns: argparse.Namespace) -> list[Check]:
    csv = Path(ns.csv) if ns.csv else write_reviews(runs_dir.parent / "reviews.csv")
    _, runs = sweep(
        runs_dir, ["backbone=rnn", "task=text", f"task.path={csv}", "attention=additive"]
    )
    print_runs(runs, "test/acc")
    run = runs[0]
    logged = "test/acc" in run.metrics and "test/f1" in run.metrics
    return [
        Check(
            "rnn + additive on " + csv.name,
            "FINISHED, acc and F1 logged",
            f"{run.status}, acc {run.metrics.get('test/acc', float('nan')):.3f}, "
            f"F1 {run.metrics.get('test/f1', float('nan')):.3f}",
            run.status == "FINISHED" and logged,
        ),
    ]


def print_runs(runs: list[RunInfo], metric: str) -> None:
    from attnbench.console import console, results_table

    rows = [
        [r.name, r.metrics.get(metric), r.metrics.get("cost/train_s"), r.metrics.get("cost/params")]
        for r in runs
    ]
    console.print(results_table(f"runs ({metric})", ["run", metric, "train s", "params"], rows))


CHECKS: dict[str, Callable[[Path, argparse.Namespace], list[Check]]] = {
    "skeleton": skeleton,
    "reverse": reverse,
    "text": text,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("check", choices=[*CHECKS, "all"])
    parser.add_argument("--runs-dir", help="store to use (default: a fresh temporary folder)")
    parser.add_argument("--csv", help="text check: your own CSV with text,label columns")
    parser.add_argument(
        "--seeds", type=int, default=3, help="skeleton: seeds per variant (default 3)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="skeleton: an extra override for every run, e.g. trainer.precision=bf16 (repeatable)",
    )
    ns = parser.parse_args(argv)
    from attnbench.console import console, results_table

    names = list(CHECKS) if ns.check == "all" else [ns.check]
    results: list[Check] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            runs_dir = Path(ns.runs_dir) / name if ns.runs_dir else Path(tmp) / name / "runs"
            runs_dir.parent.mkdir(parents=True, exist_ok=True)
            results += CHECKS[name](runs_dir.resolve(), ns)
    rows = [[c.name, c.target, c.value, "PASS" if c.ok else "MISS"] for c in results]
    console.print(results_table("figures", ["figure", "target", "measured", ""], rows))
    return 0 if all(c.ok for c in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Write docs/RESULTS.md from the classic-result presets, with attnbench's own commands.

    python -m benchmarks.results heads_ablation vaswani_scaling   # run, then write
    python -m benchmarks.results --no-run heads_ablation         # reuse the last sweep

For each preset: `attnbench sweep experiment=<preset>` on the store in --runs-dir, then
`attnbench compare --sweep <parent> --by <the preset's grid keys> --format markdown`, and a
section with the exact commands, the commit (and whether the code that ran had uncommitted
changes), the machine, the sweep's wall time and load average, the table and the plots. The
verdict (does it agree with the paper, and why it might not) is a person's judgement: it is read
from docs/verdicts/<preset>.md when that file exists. Only the presets named are regenerated: the
other sections of docs/RESULTS.md are kept as they are, each with the commit it was measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from attnbench.config.groups import conf_dir
from attnbench.store.tracker import Tracker

DOCS = Path("docs")
TEXT_PRESETS = {"text_pooling"}
# Presets whose grid varies a size: one frontier per value of that key, the metric against
# training time and against peak memory (results/<preset>-frontier.png), so variants compete at
# one length.
FRONTIER_BY: dict[str, str] = {"efficiency_frontier": "task.max_len"}
# compare options beyond --sweep/--by, per preset: the test its verdict rests on.
COMPARE_ARGS: dict[str, list[str]] = {
    # the claim is about the largest pair count: every cell against softmax multi-head there
    "recall_gap": ["--baseline", "attention=multihead,task.num_pairs=64"],
}


def grid_keys(preset: str) -> list[str]:
    cfg = yaml.safe_load((conf_dir() / "experiment" / f"{preset}.yaml").read_text())
    return [k for k in cfg["hydra"]["sweeper"]["params"] if k != "seed"]


def attnbench(*args: str) -> None:
    cmd = [sys.executable, "-m", "attnbench", *args]
    print("$ attnbench", " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def loadavg() -> str:
    """The 1-minute load average (the machine may be shared), or '?' without /proc."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_sweep(args: list[str]) -> str:
    """Run `attnbench ARGS`; as a phrase: wall time, the load average before and after, and the
    CPU time of the sweep's processes (workers included once reaped), which a shared machine's
    load does not inflate: CPU / cores bounds the wall time on an idle machine from below."""
    before, cpu0 = loadavg(), _children_cpu_s()
    t0 = time.perf_counter()
    attnbench(*args)
    minutes = (time.perf_counter() - t0) / 60
    cpu = (_children_cpu_s() - cpu0) / 60
    return (
        f"the sweep took {minutes:.1f} min wall at load average {before} → {loadavg()}, "
        f"{cpu:.1f} CPU-min"
    )


def latest_sweep(tracker: Tracker, experiment: str) -> str:
    exp = tracker.client.get_experiment_by_name(experiment)
    runs = tracker.search(
        [exp.experiment_id],
        "tags.attnbench.kind = 'sweep'",
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].run_id


def frontier_plot(table_json: Path, split: str, out: Path) -> Path:
    """From compare's table.json: for each value of `split`, the metric (mean, 95 % CI) against
    train seconds and against peak memory, one point per attention variant, the Pareto front as
    a dashed step line (cheaper and better than every point to its right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnbench.analysis.stats import pareto_front

    data = json.loads(table_json.read_text(encoding="utf-8"))
    groups, metric, higher = data["groups"], data["metric"], data["higher_is_better"]
    values = sorted({g[split] for g in groups}, key=lambda v: (len(str(v)), str(v)))
    costs = (("train_s", "train seconds"), ("peak_MB", "peak memory, MB"))
    fig, axes = plt.subplots(len(values), len(costs), figsize=(11, 4.2 * len(values)))
    axes = [[a] if len(costs) == 1 else list(a) for a in ([axes] if len(values) == 1 else axes)]
    for row, value in zip(axes, values, strict=True):
        for ax, (key, label) in zip(row, costs, strict=True):
            have = [g for g in groups if g[split] == value and g.get(key) is not None]
            points = [(float(g[key]), float(g["mean"])) for g in have]
            front = set(pareto_front(points, higher)) if higher is not None else set()
            for i, (g, (x, y)) in enumerate(zip(have, points, strict=True)):
                if g.get("ci_low") is not None:
                    ax.errorbar(
                        x,
                        y,
                        yerr=[[y - g["ci_low"]], [g["ci_high"] - y]],
                        fmt="none",
                        ecolor="grey",
                        alpha=0.5,
                        capsize=2,
                    )
                ax.scatter(
                    x,
                    y,
                    s=60 if i in front else 30,
                    zorder=3,
                    color="black" if i in front else "tab:blue",
                )
                ax.annotate(
                    g["attention"],
                    (x, y),
                    textcoords="offset points",
                    xytext=(5, 3),
                    fontsize=8,
                    fontweight="bold" if i in front else "normal",
                )
            ordered = sorted(front, key=lambda i: points[i][0])
            if len(ordered) > 1:
                xs, ys = zip(*(points[i] for i in ordered), strict=True)
                ax.step(xs, ys, where="post", color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{split} = {value}", fontsize=10)
            ax.set_xlabel(f"{label} (mean over seeds; lower is cheaper)")
            ax.set_ylabel(f"{metric} (mean, 95 % CI)")
            ax.grid(alpha=0.3)
    fig.suptitle(f"{data['compared']}: Pareto front (bold, dashed) per {split}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def commit() -> str:
    """Short HEAD, and a note when code that runs (attnbench/, conf/) had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "attnbench", "conf"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "`unknown`"
    if not dirty:
        return f"`{head}`"
    return f"`{head}` (plus uncommitted changes to {len(dirty)} files under attnbench/ and conf/)"


def section(preset: str, runs_dir: Path, extra: list[str], run: bool) -> str:
    sweep_args = ["sweep", f"experiment={preset}", f"runs_dir={runs_dir}", *extra]
    # What ran is recorded beside the table, so a later --no-run (a new verdict) keeps it.
    record = DOCS / "results" / f"{preset}.sweep.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(None, runs_dir)
    if run:
        ran_at = commit()
        timing = timed_sweep(sweep_args)
        parent = latest_sweep(tracker, preset)
        info = {"sweep": parent, "commit": ran_at, "timing": timing}
        record.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    else:
        parent = latest_sweep(tracker, preset)
        known = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
        info = known if known.get("sweep") == parent else {}
    provenance = (
        f"Sweep run at commit {info['commit']}, page written at commit {commit()}"
        if info
        else f"Written at commit {commit()} (the sweep's own commit was not recorded)"
    )
    by = (
        ",".join(["attention", *grid_keys(preset)])
        if "attention" not in grid_keys(preset)
        else ",".join(grid_keys(preset))
    )
    table = DOCS / "results" / f"{preset}.md"
    table.parent.mkdir(parents=True, exist_ok=True)
    compare_args = [
        "compare",
        "--sweep",
        parent,
        "--by",
        by,
        "--format",
        "markdown",
        "-o",
        str(table),
        "--runs-dir",
        str(runs_dir),
        *COMPARE_ARGS.get(preset, []),
    ]
    attnbench(*compare_args)
    plots = sorted((runs_dir / "reports").glob(f"*-{tracker.get_run(parent).name}/*.png"))
    shown = []
    if preset in FRONTIER_BY and plots:
        dst = frontier_plot(
            plots[0].parent / "table.json",
            FRONTIER_BY[preset],
            DOCS / "results" / f"{preset}-frontier.png",
        )
        shown.append(f"![frontier](results/{dst.name})")
    for png in plots:
        dst = DOCS / "results" / f"{preset}-{png.name}"
        shutil.copy(png, dst)
        shown.append(f"![{png.stem}](results/{dst.name})")
    verdict = DOCS / "verdicts" / f"{preset}.md"
    lines = [
        f"## {preset}",
        "",
        "```bash",
        "attnbench " + " ".join(a for a in sweep_args if not a.startswith("runs_dir=")),
        "attnbench "
        + " ".join([*compare_args[:5], *COMPARE_ARGS.get(preset, [])]).replace(
            parent, "<sweep id>"
        ),
        "```",
        "",
        f"{provenance} · {machine()} · sweep `{parent}` (its runs carry the package version "
        "and data fingerprint as tags)" + (f" · {info['timing']}" if info else ""),
        "",
        table.read_text(encoding="utf-8").strip(),
        "",
        *shown,
        "",
        verdict.read_text(encoding="utf-8").strip()
        if verdict.exists()
        else "_Verdict not written yet (docs/verdicts/" + preset + ".md)._",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--runs-dir", default="runs/results")
    parser.add_argument("--no-run", action="store_true", help="reuse each preset's latest sweep")
    parser.add_argument(
        "--text-path",
        help="text_pooling: the CSV/TSV to classify "
        "(default: the synthetic reviews file the figures benchmark writes)",
    )
    ns = parser.parse_args(argv)
    runs_dir = Path(ns.runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    out = DOCS / "RESULTS.md"
    existing = out.read_text(encoding="utf-8") if out.exists() else ""
    sections = dict(_split(existing))
    for preset in ns.presets:
        extra: list[str] = []
        if preset in TEXT_PRESETS:
            from benchmarks.figures import write_reviews

            path = Path(ns.text_path) if ns.text_path else write_reviews(runs_dir / "reviews.csv")
            extra.append(f"task.path={path.resolve()}")
        sections[preset] = section(preset, runs_dir, extra, not ns.no_run)
    header = (
        "# Classic results, reproduced with attnbench\n\n"
        "Generated by `python -m benchmarks.results` (see its docstring); each "
        "table is `attnbench compare --format markdown` on the preset's sweep: mean ± 95 % "
        "CI over seeds, and the paired test against the best group.\n\n"
    )
    out.write_text(header + "\n".join(sections[k] for k in sections), encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _split(text: str) -> list[tuple[str, str]]:
    parts = text.split("\n## ")[1:]
    return [(p.split("\n", 1)[0].strip(), "## " + p.rstrip() + "\n") for p in parts]


if __name__ == "__main__":
    raise SystemExit(main())

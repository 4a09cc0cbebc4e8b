"""The efficiency frontier of a compare table: the metric against training time and peak memory
per value of a size key, the Pareto front marked (used by benchmarks.results)."""

from __future__ import annotations

import json
from pathlib import Path


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

"""Figures (matplotlib, Agg backend: no display needed): attention heatmaps for each run, and the
three comparison plots of `attnbench compare` (metric with CI, learning curves, cost vs metric
with the Pareto front). Each function draws from plain data and writes one PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after selecting the backend

from attnbench.analysis.stats import pareto_front  # noqa: E402

if TYPE_CHECKING:
    from attnbench.training.diagnostics import HeatmapExample

DPI = 130
STATUS_TEXT = {
    "best": "best",
    "baseline": "baseline",
    "tied": "tied",
    "worse": "worse",
    "better": "better",
    "? (n<2)": "n < 2",
}
MAX_TICK_LABELS = 40


@dataclass
class GroupPoint:
    """One comparison group as the plots need it."""

    label: str
    values: list[float]  # the metric per run
    mean: float
    ci: tuple[float, float] | None
    status: str  # the table's status cell: "best", "tied", "? (pooled)", ...; "unranked"
    cost: dict[str, float | None] = field(default_factory=dict)


def _colour(index: int) -> Any:
    """Group `index` (comparison order, best first) has the same colour in every plot."""
    return plt.get_cmap("tab10")(index % 10)


def _label(g: GroupPoint) -> str:
    if g.status == "unranked":
        return g.label
    return f"{g.label} ({STATUS_TEXT.get(g.status, g.status)})"


def _bold(g: GroupPoint) -> bool:
    return g.status.startswith(("best", "baseline"))


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


# -- per run -----------------------------------------------------------------------------------
def attention_heatmap(examples: Sequence[HeatmapExample], path: Path, title: str = "") -> Path:
    """One panel per example: queries (rows) x input positions (columns); squares mark the
    correct source position when the task knows it.

    Laid out by hand in inches (no constrained layout, no tight bounding box): this figure is drawn
    for every run, and matplotlib's automatic layout would measure every tick label many times.
    """
    cell, char = 0.2, 0.055  # inches per attention cell / per tick-label character (6 pt)
    col_chars = max((len(t) for ex in examples for t in _shown(ex.col_labels)), default=2)
    row_chars = max((len(t) for ex in examples for t in _shown(ex.row_labels)), default=2)
    panel_w = [max(1.6, cell * ex.weights.shape[1]) for ex in examples] or [1.6]
    panel_h = max(1.6, cell * max((ex.weights.shape[0] for ex in examples), default=8))
    left, gap = 0.45 + char * row_chars, 0.35 + char * row_chars
    bottom, top, bar = 0.45 + char * col_chars, 0.85, 0.9
    width = left + sum(panel_w) + gap * (len(panel_w) - 1) + bar
    height = bottom + panel_h + top
    fig = plt.figure(figsize=(width, height))
    image = None
    x = left
    for i, ex in enumerate(examples):
        ax = fig.add_axes((x / width, bottom / height, panel_w[i] / width, panel_h / height))
        x += panel_w[i] + gap
        image = ax.imshow(
            ex.weights.numpy(),
            cmap="magma",
            vmin=0.0,
            vmax=1.0,
            aspect="auto",
            interpolation="nearest",
        )
        if ex.align is not None:
            rows = [r for r in range(len(ex.align)) if int(ex.align[r]) >= 0]
            ax.scatter(
                [int(ex.align[r]) for r in rows],
                rows,
                marker="s",
                s=30,
                facecolors="none",
                edgecolors="#00e5ff",
                linewidths=1.1,
            )
        _ticks(ax, ex.col_labels, ex.row_labels)
        ax.set_title(f"test example {ex.index if ex.index >= 0 else i}", fontsize=9)
        ax.set_xlabel("input token (by position)", fontsize=8)
        if i == 0:
            ax.set_ylabel("query / output token", fontsize=8)
    if image is not None:
        cax = fig.add_axes(
            ((width - bar + 0.15) / width, bottom / height, 0.12 / width, panel_h / height)
        )
        fig.colorbar(image, cax=cax).set_label("attention weight", fontsize=8)
    heading = title or "attention weights of the best-validation model"
    if any(ex.align is not None for ex in examples):
        heading += "\n(cyan squares: the correct source position)"
    fig.suptitle(heading, fontsize=10, y=1 - 0.08 / height, va="top")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _shown(labels: Sequence[str]) -> Sequence[str]:
    return labels if len(labels) <= MAX_TICK_LABELS else []


def _ticks(ax: Any, cols: Sequence[str], rows: Sequence[str]) -> None:
    for labels, set_ticks, set_labels, rot in (
        (cols, ax.set_xticks, ax.set_xticklabels, 90),
        (rows, ax.set_yticks, ax.set_yticklabels, 0),
    ):
        if len(labels) <= MAX_TICK_LABELS:
            set_ticks(range(len(labels)))
            set_labels(labels, fontsize=6, rotation=rot)


# -- comparison ---------------------------------------------------------------------------------
def metric_ci(groups: Sequence[GroupPoint], metric: str, path: Path, title: str, note: str) -> Path:
    """Mean and 95 % CI per group (best at the top), each run as a dot."""
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(groups) + 1.8))
    ys = list(range(len(groups)))[::-1]
    for i, (y, g) in enumerate(zip(ys, groups, strict=True)):
        colour = _colour(i)
        if g.ci is not None:
            ax.errorbar(
                g.mean,
                y,
                xerr=[[g.mean - g.ci[0]], [g.ci[1] - g.mean]],
                fmt="none",
                ecolor=colour,
                elinewidth=2.5,
                capsize=5,
            )
        ax.plot(g.mean, y, "D", color=colour, markersize=8, zorder=3)
        ax.scatter(g.values, [y] * len(g.values), s=18, color="black", alpha=0.55, zorder=4)
    ax.set_yticks(ys)
    ax.set_yticklabels([_label(g) for g in groups])
    for tick, g in zip(ax.get_yticklabels(), groups, strict=True):
        if _bold(g):
            tick.set_fontweight("bold")
    ax.set_xlabel(f"{metric}  (diamond = mean, bar = 95 % CI, dots = runs)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=10, loc="left")
    fig.text(0.01, -0.02, note, fontsize=7, ha="left", va="top", wrap=True)
    return _save(fig, path)


Curves = dict[str, list[list[tuple[int, float]]]]  # group label -> per run [(step, value)]


def learning_curves(panels: dict[str, Curves], path: Path, title: str) -> Path:
    """One panel per metric (e.g. train/loss, val/acc); per group the mean over its runs at each
    step with the min-max band, in the same colour in every panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (metric, curves) in zip(axes[0], panels.items(), strict=True):
        drawn = 0
        for i, (label, runs) in enumerate(curves.items()):
            by_step: dict[int, list[float]] = {}
            for run in runs:
                for step, value in run:
                    by_step.setdefault(step, []).append(value)
            if not by_step:
                continue
            steps = sorted(by_step)
            mean = [sum(by_step[s]) / len(by_step[s]) for s in steps]
            colour = cmap(i % 10)
            marker = "o" if len(steps) <= 30 else None
            ax.plot(
                steps,
                mean,
                color=colour,
                label=f"{label} (n={len(runs)})",
                marker=marker,
                markersize=3,
            )
            if len(runs) > 1:
                lo = [min(by_step[s]) for s in steps]
                hi = [max(by_step[s]) for s in steps]
                ax.fill_between(steps, lo, hi, color=colour, alpha=0.15, linewidth=0)
            drawn += 1
        ax.set_xlabel("training step")
        ax.set_ylabel(metric)
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, f"no {metric} history logged", ha="center", transform=ax.transAxes)
    fig.suptitle(
        f"{title}\nline = mean over runs, band = min-max over runs", fontsize=10, x=0.01, ha="left"
    )
    fig.tight_layout()
    return _save(fig, path)


COSTS = (("cost/train_s", "train seconds"), ("cost/params", "parameters"))


def cost_pareto(
    groups: Sequence[GroupPoint],
    metric: str,
    path: Path,
    title: str,
    higher_is_better: bool | None = True,
) -> Path:
    """Metric against cost (train seconds, parameters), the Pareto front drawn as a step line
    (none when the metric has no better direction: `higher_is_better=None`)."""
    fig, axes = plt.subplots(1, len(COSTS), figsize=(6.0 * len(COSTS), 4.5), squeeze=False)
    for ax, (key, name) in zip(axes[0], COSTS, strict=True):
        have = [g for g in groups if g.cost.get(key) is not None]
        points = [(float(g.cost[key]), g.mean) for g in have]  # type: ignore[arg-type]
        front = set() if higher_is_better is None else set(pareto_front(points, higher_is_better))
        placed: list[tuple[float, float]] = []
        xspan = (max(p[0] for p in points) - min(p[0] for p in points)) if points else 0.0
        yspan = (max(p[1] for p in points) - min(p[1] for p in points)) if points else 0.0
        for i, (g, (x, y)) in enumerate(zip(have, points, strict=True)):
            colour = _colour(groups.index(g))
            on_front = i in front
            if g.ci is not None:
                ax.errorbar(
                    x,
                    y,
                    yerr=[[y - g.ci[0]], [g.ci[1] - y]],
                    fmt="none",
                    ecolor=colour,
                    alpha=0.45,
                    capsize=3,
                )
            ax.scatter(
                x,
                y,
                s=80 if on_front else 45,
                color=colour,
                edgecolors="black" if on_front else "none",
                zorder=3,
            )
            # labels of points that nearly coincide go one under the other
            near = sum(
                abs(x - px) <= 0.04 * (xspan or 1.0) and abs(y - py) <= 0.08 * (yspan or 1.0)
                for px, py in placed
            )
            placed.append((x, y))
            ax.annotate(
                g.label,
                (x, y),
                textcoords="offset points",
                xytext=(7, 4 - 11 * near),
                fontsize=8,
                color=colour,
                fontweight="bold" if _bold(g) else "normal",
            )
        ordered = sorted(front, key=lambda i: points[i][0])
        if len(ordered) > 1:
            xs, ys = zip(*(points[i] for i in ordered), strict=True)
            ax.step(
                xs,
                ys,
                where="post",
                color="black",
                linestyle="--",
                linewidth=1,
                label="Pareto front",
            )
            ax.legend(fontsize=8, loc="lower right" if higher_is_better else "upper right")
        if not points:
            ax.text(0.5, 0.5, f"no {key} logged", ha="center", transform=ax.transAxes)
        if (
            key == "cost/params"
            and points
            and max(p[0] for p in points) / max(1.0, min(p[0] for p in points)) > 20
        ):
            ax.set_xscale("log")
        ax.margins(x=0.2, y=0.08)
        ax.set_xlabel(f"{name} (mean over runs; lower is cheaper)")
        ax.set_ylabel(f"{metric} (mean, 95 % CI)")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    return _save(fig, path)


# -- per run: classification -------------------------------------------------------------------
MAX_ANNOTATED_CLASSES = 20


def confusion_matrix_plot(matrix: Any, labels: Sequence[str], path: Path, title: str = "") -> Path:
    """A (K, K) confusion matrix of counts (row = true class, column = predicted class, as from
    ``tasks.metrics.classification_report``): cells coloured by the share of their row (each
    true class's recall on the diagonal), annotated with the count up to MAX_ANNOTATED_CLASSES
    classes; tick labels up to MAX_TICK_LABELS."""
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64)
    k = counts.shape[0]
    if counts.shape != (k, k) or len(labels) != k:
        raise ValueError(f"confusion matrix {counts.shape} does not match {len(labels)} labels")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    side = min(12.0, max(3.0, 0.45 * k + 1.5))
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    if k <= MAX_ANNOTATED_CLASSES:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black",
                )
    names = [str(x) for x in labels]
    _ticks(ax, names, names)
    ax.set_xlabel("predicted class", fontsize=9)
    ax.set_ylabel("true class", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("share of the true class")
    ax.set_title(title or f"confusion matrix ({int(counts.sum())} examples)", fontsize=10)
    return _save(fig, path)


# -- across tasks ---------------------------------------------------------------------------------
def cd_diagram(
    ranks: dict[str, float],
    p_values: dict[str, dict[str, float]],
    cd: float | None,
    path: Path,
    title: str,
    note: str,
) -> Path:
    """Demšar's critical-difference diagram (scikit-posthocs draws it): the variants on the
    average-rank axis (1 = best), bars joining those the Nemenyi test does not separate, and the
    CD span."""
    import pandas as pd
    import scikit_posthocs as sp

    names = list(ranks)
    sig = pd.DataFrame([[p_values[a][b] for b in names] for a in names], index=names, columns=names)
    fig, ax = plt.subplots(figsize=(8.0, 0.32 * len(names) + 2.0))
    sp.critical_difference_diagram(pd.Series(ranks), sig, ax=ax, cd=cd)
    ax.set_title(title, fontsize=10, loc="left")
    fig.text(0.01, -0.02, note, fontsize=7, ha="left", va="top", wrap=True)
    return _save(fig, path)

"""Rendering a comparison: the rich table, Markdown / CSV / JSON tables and the three plots,
written under ``<runs_dir>/reports/<name>/`` and logged on the sweep's parent run."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from attnbench.analysis import reruns, stats
from attnbench.analysis.model import POOLED, Comparison, Group
from attnbench.errors import ConfigError
from attnbench.store.handle import Tracker
from attnbench.store.schema import COST_COLUMNS, REPORT_DIR

FORMATS = ("table", "markdown", "csv", "json")
PLOTS = ("metric_ci.png", "learning_curves.png", "cost_pareto.png")


def records(comp: Comparison) -> list[dict[str, Any]]:
    """One flat record per group (the CSV/JSON rows)."""
    ref = reference_group(comp)
    delta = "delta_vs_best" if comp.baseline is None else "delta_vs_baseline"
    out = []
    for g in comp.groups:
        s = g.summary
        out.append(
            {
                **g.key,
                "n": s.n,
                "mean": s.mean,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "ci_half_width": s.half_width,
                "ci_clipped": s.clipped,
                "std": s.std,
                "min": s.min,
                "max": s.max,
                delta: None if ref is None else s.mean - ref.summary.mean,
                **effect_record(g),
                "p_value": g.test.p_value if g.test else None,
                "p_adjusted": g.test.p_adjusted if g.test else None,
                "test": g.test.test if g.test else "",
                "pairs": g.test.n_pairs if g.test else None,
                "status": g.status,
                "status_reason": g.reason,
                "pooled_keys": list(g.pooled),
                **{
                    label.replace(" ", "_").replace("/", "_per_"): g.cost[name]
                    for name, label in COST_COLUMNS
                },
                "steps": g.steps,
                "stopped_by": g.stopped_by,
                "run_ids": " ".join(r.run_id for r in g.runs),
            }
        )
    return out


def effect_record(g: Group) -> dict[str, Any]:
    """The effect against the reference: difference, its 95 % CI, how, over how many, d_z."""
    e = g.effect
    return {
        "effect_diff": e.diff if e else None,
        "effect_ci_low": e.ci_low if e else None,
        "effect_ci_high": e.ci_high if e else None,
        "effect_method": e.method if e else "",
        "effect_n": e.n if e else None,
        "cohens_dz": e.d_z if e else None,
    }


def reference_group(comp: Comparison) -> Group | None:
    """The group the others are tested against (None when the metric is not ranked)."""
    wanted = "best" if comp.baseline is None else "baseline"
    return next((g for g in comp.groups if g.status == wanted), None)


def status_text(g: Group) -> str:
    """The `vs best` cell: best, tied, inconclusive (n=K), worse, better, baseline, ? (why),
    with `pooled` marked."""
    if g.status in ("?", "inconclusive"):
        return f"{g.status} ({g.reason})"
    return f"{g.status} ({POOLED})" if g.pooled else g.status


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def ci_text(s: stats.Summary, digits: int = 4) -> str:
    """`mean ± half-width`; `mean [low, high]` when the interval was clipped to the range."""
    if s.ci_low is None or s.ci_high is None:
        return f"{s.mean:.{digits}f}"
    if s.clipped:
        return f"{s.mean:.{digits}f} [{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]"
    return f"{s.mean:.{digits}f} ± {s.ci_high - s.mean:.{digits}f}"


def delta_text(g: Group, ref: Group) -> str:
    """The Δ cell: the effect ± the half-width of its 95 % CI (`[low, high]` when the CI was
    clipped to ± the range), or the difference of the means when there is no effect."""
    e = g.effect
    if e is None or e.ci_low is None or e.ci_high is None:
        return f"{g.summary.mean - ref.summary.mean:+.4f}"
    half = e.ci_high - e.diff
    if math.isclose(e.diff - e.ci_low, half, rel_tol=1e-9, abs_tol=1e-12):
        return f"{e.diff:+.4f} ± {half:.4f}"
    return f"{e.diff:+.4f} [{e.ci_low:+.4f}, {e.ci_high:+.4f}]"


def _shown_p(test: stats.PairedTest, correction: str) -> float | None:
    return test.p_adjusted if correction != "none" and test.p_adjusted is not None else test.p_value


def table_rows(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Column names and formatted cells shared by the rich and Markdown tables. A metric with
    no better direction has no Δ, p, test and status columns."""
    from attnbench.console import fmt

    ref = reference_group(comp)
    versus = "best" if comp.baseline is None else "baseline"
    tests = [
        f"Δ {versus} (95% CI)",
        "p (Holm)" if comp.correction == "holm" else "p",
        "test",
        f"vs {versus}",
    ]
    columns = [
        *comp.by,
        "n",
        f"{comp.metric} (mean ± 95% CI)",
        "std",
        "min",
        "max",
        *(tests if comp.ranked else ["pooled"] if comp.pooled else []),
        *(label for _, label in COST_COLUMNS),
        "steps (stopped by)",
    ]
    rows = []
    for g in comp.groups:
        s = g.summary
        ci = ci_text(s)
        if ref is not None:
            marks = [
                "" if g is ref else delta_text(g, ref),
                _p(_shown_p(g.test, comp.correction)) if g.test else "",
                g.test.test if g.test and g.test.test != "none" else "",
                status_text(g),
            ]
        else:
            marks = [POOLED if g.pooled else ""] if comp.pooled else []
        rows.append(
            [
                *g.key.values(),
                str(s.n),
                ci,
                _num(s.std),
                _num(s.min),
                _num(s.max),
                *marks,
                *(
                    fmt(round(g.cost[name], 1)) if g.cost[name] is not None else "—"
                    for name, _ in COST_COLUMNS
                ),
                f"{fmt(float(round(g.steps))) if g.steps is not None else '—'} ({g.stopped_by})",
            ]
        )
    return columns, rows


LEFT = ("test", "vs best", "vs baseline", "pooled")
TERMINAL_LEAVES_OUT = ("min", "max")


def rich_table(comp: Comparison) -> Any:
    from rich.table import Table

    columns, rows = table_rows(comp)
    # The terminal leaves out min and max (in the Markdown, CSV and JSON) to keep 160 columns.
    keep = [i for i, col in enumerate(columns) if col not in TERMINAL_LEAVES_OUT]
    columns, rows = [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]
    table = Table(
        title=f"{comp.label}: {comp.metric} by {', '.join(comp.by)}",
        title_justify="left",
        caption=comp.caption,
        caption_justify="left",
    )
    for i, col in enumerate(columns):
        table.add_column(
            col,
            justify="left" if i < len(comp.by) or col in LEFT else "right",
            no_wrap=i > len(comp.by) and col.partition(" ")[0] in (comp.metric, "Δ"),
            min_width=len("inconclusive") if col.startswith("vs ") else len("(max_steps)")
            if col.startswith("steps") else None,
        )
    for g, row in zip(comp.groups, rows, strict=True):
        style = {"best": "bold green", "baseline": "bold", "tied": "green"}.get(g.status)
        table.add_row(*row, style=style)
    return table


def to_markdown(comp: Comparison) -> str:
    columns, rows = table_rows(comp)
    esc = [[c.replace("|", "\\|") for c in row] for row in rows]
    lines = [
        f"### {comp.label}: {comp.metric} by {', '.join(comp.by)}",
        "",
        "| " + " | ".join(columns) + " |",
        "|"
        + "|".join(
            "---" if i < len(comp.by) or col in LEFT else "---:"
            for i, col in enumerate(columns)
        )
        + "|",
        *("| " + " | ".join(row) + " |" for row in esc),
        "",
        f"_{comp.caption}_",
        "",
    ]
    if comp.show_reruns:
        lines += reruns.markdown(comp)
    return "\n".join(lines)


def to_csv(comp: Comparison) -> str:
    return csv_text(records(comp))


def csv_text(recs: list[dict[str, Any]]) -> str:
    """Flat records as CSV, one row each (list values joined by spaces)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(recs[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {k: " ".join(v) if isinstance(v, list) else v for k, v in rec.items()} for rec in recs
    )
    return buf.getvalue()


def to_json(comp: Comparison) -> str:
    doc = {
        "compared": comp.label,
        "metric": comp.metric,
        "by": comp.by,
        "direction": comp.direction,
        "higher_is_better": comp.higher_is_better,
        "reference": comp.reference if comp.ranked else None,
        "rule": comp.rule,
        "correction": comp.correction,
        "sweep_run_id": comp.parent.run_id if comp.parent else None,
        "excluded_runs": comp.excluded,
        "duplicate_runs": comp.duplicates,
        "pooled_keys": comp.pooled,
        "range": list(comp.bounds) if comp.bounds else None,
        "margin": comp.margin,
        "budget_warning": comp.budget_warning,
        "groups": records(comp),
    }
    if comp.show_reruns:
        doc["reruns"] = reruns.records(comp)
    return json.dumps(doc, indent=2) + "\n"


RENDER = {"markdown": to_markdown, "csv": to_csv, "json": to_json}
SUFFIX = {"markdown": "md", "csv": "csv", "json": "json"}


def curve_metrics(comp: Comparison) -> list[str]:
    """The histories to plot: train/loss (every `trainer.log_every` steps) and the validation
    history of the compared metric (once per epoch), or the metric itself when it is not a
    test/val metric (e.g. attn/entropy)."""
    split, _, name = comp.metric.partition("/")
    other = f"val/{name}" if split in ("test", "val") else comp.metric
    return list(dict.fromkeys(("train/loss", other)))


def write_report(
    tracker: Tracker, comp: Comparison, out_dir: Path, plots: bool = True
) -> list[Path]:
    """Tables (Markdown, CSV, JSON) and plots under `out_dir`; logged on the sweep's parent run."""
    written = write_tables(RENDER, comp, out_dir)
    if plots:
        written += write_plots(tracker, comp, out_dir)
    if comp.parent is not None:
        for path in written:
            tracker.log_artifact(comp.parent.run_id, path, REPORT_DIR)
    return written


def write_tables(renders: dict[str, Any], what: Any, out_dir: Path) -> list[Path]:
    """`table.md`, `table.csv`, `table.json` of `what` (a comparison or a summary) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt_name, render in renders.items():
        path = out_dir / f"table.{SUFFIX[fmt_name]}"
        path.write_text(render(what), encoding="utf-8")
        written.append(path)
    return written


def write_plots(tracker: Tracker, comp: Comparison, out_dir: Path) -> list[Path]:
    from attnbench.analysis import plots

    points = [
        plots.GroupPoint(
            g.label,
            list(g.run_values),
            g.summary.mean,
            (g.summary.ci_low, g.summary.ci_high) if g.summary.ci_low is not None else None,
            g.status if not comp.ranked else status_text(g),
            dict(g.cost),
        )
        for g in comp.groups
    ]
    title = f"{comp.label}\n{comp.metric} by {', '.join(comp.by)}"
    panels = {
        key: {g.label: [tracker.metric_history(r.run_id, key) for r in g.runs] for g in comp.groups}
        for key in curve_metrics(comp)
    }
    note = "; ".join(filter(None, [
        (f"status vs {comp.reference}: " if comp.ranked else "") + comp.rule, comp.range_note]))
    return [
        plots.metric_ci(points, comp.metric, out_dir / PLOTS[0], title, note),
        plots.learning_curves(panels, out_dir / PLOTS[1], f"{comp.label}: learning curves"),
        plots.cost_pareto(points, comp.metric, out_dir / PLOTS[2], title, comp.higher_is_better),
    ]


def report_dir(runs_dir: str | Path, comp: Comparison) -> Path:
    from attnbench.naming import inside

    return inside(runs_dir, "reports", comp.name)


def output_format(fmt: str | None, output: Path | None) -> str:
    """The table format asked for: --format, else the -o file's suffix, else the rich table."""
    if fmt is not None:
        fmt = {"md": "markdown"}.get(fmt.lower(), fmt.lower())
        if fmt not in FORMATS:
            raise ConfigError(f"Unknown format '{fmt}'. Valid formats: {', '.join(FORMATS)}")
    if output is not None and fmt in (None, "table"):
        by_suffix = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json"}
        if output.suffix.lower() not in by_suffix:
            raise ConfigError(
                f"Cannot tell the format of '{output}' from its suffix: pass --format markdown, "
                "csv or json"
            )
        return by_suffix[output.suffix.lower()]
    return fmt or "table"

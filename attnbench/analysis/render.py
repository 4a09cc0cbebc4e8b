"""Rendering a comparison: its columns declared once (`columns`), the terminal's tables, the
Markdown / CSV / JSON / LaTeX tables and the three plots, written under
``<runs_dir>/reports/<sweep>/<metric>_by_<keys>/`` and logged on the sweep's parent run."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnbench.analysis import reruns, stats, writers
from attnbench.analysis.columns import (
    COST,
    DASH,
    DETAIL,
    KEY,
    LATEX,
    MAIN,
    NAME,
    STRONG,
    TEXT,
    WEAK,
    WIDE,
    Cell,
    Column,
    Num,
    Table,
    metric_style,
    round_names,
)
from attnbench.analysis.comparison import POOLED, Comparison, Group
from attnbench.errors import ConfigError
from attnbench.naming import inside, safe_name
from attnbench.store.names import BEST_VAL, COST_COLUMNS, COST_PARAMS, COST_STEPS, REPORT_DIR
from attnbench.store.tracker import Tracker

FORMATS = ("table", "markdown", "csv", "json", "latex")
PLOTS = ("metric_ci.png", "learning_curves.png", "cost_pareto.png")
STATUS_EMPHASIS = {"best": STRONG, "baseline": STRONG, "tied": WEAK}
STEPS_STYLE = metric_style(COST_STEPS)


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


def p_text(test: stats.PairedTest | None, correction: str) -> str:
    """The p cell: empty for the reference, `—` when the test gives none (CI overlap)."""
    if test is None:
        return ""
    value = shown_p(test, correction)
    if value is None:
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def ci_cell(s: stats.Summary, style: Num) -> Cell:
    """`mean ± half-width`; `mean [low, high]` when the interval was clipped to the range."""
    if s.ci_low is None or s.ci_high is None:
        return Cell((style(s.mean),))
    if s.clipped:
        return Cell((style(s.mean), f"[{style(s.ci_low)}, {style(s.ci_high)}]"))
    return Cell((style(s.mean), f"± {style(s.ci_high - s.mean)}"))


def summary_fields(s: stats.Summary) -> dict[str, Any]:
    return {"mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high,
            "ci_half_width": s.half_width, "ci_clipped": s.clipped}


def delta_cell(g: Group, ref: Group | None, style: Num) -> Cell | str:
    """The Δ cell: the effect ± the half-width of its 95 % CI (`[low, high]` when the CI was
    clipped to ± the range), or the difference of the means when there is no effect."""
    if ref is None or g is ref:
        return ""
    e, signed = g.effect, style.signed
    if e is None or e.ci_low is None or e.ci_high is None:
        return signed(g.summary.mean - ref.summary.mean)
    half = e.ci_high - e.diff
    if math.isclose(e.diff - e.ci_low, half, rel_tol=1e-9, abs_tol=1e-12):
        return Cell((signed(e.diff), f"± {style(half)}"))
    return Cell((signed(e.diff), f"[{signed(e.ci_low)}, {signed(e.ci_high)}]"))


def effect_fields(g: Group, ref: Group | None, delta: str) -> dict[str, Any]:
    """The effect against the reference: difference, its 95 % CI, how, over how many, d_z."""
    e = g.effect
    return {
        delta: None if ref is None else g.summary.mean - ref.summary.mean,
        "effect_diff": e.diff if e else None,
        "effect_ci_low": e.ci_low if e else None,
        "effect_ci_high": e.ci_high if e else None,
        "effect_method": e.method if e else "",
        "effect_n": e.n if e else None,
        "cohens_dz": e.d_z if e else None,
    }


def shown_p(test: stats.PairedTest | None, correction: str) -> float | None:
    if test is None:
        return None
    return test.p_adjusted if correction != "none" and test.p_adjusted is not None else test.p_value


def steps_cell(steps: float | None, stopped_by: str) -> Cell:
    return Cell((STEPS_STYLE(steps), f"({stopped_by})"))


def field_name(label: str) -> str:
    """A cost column's CSV/JSON field: `train s` -> train_s, `samples/s` -> samples_per_s."""
    return label.replace(" ", "_").replace("/", "_per_")


def columns(comp: Comparison) -> list[Column[Group]]:
    """The comparison's columns, declared once for every table and format: the group keys, the
    columns whoever read the sweep added (`Comparison.columns`: tuned and search sweeps), n, the
    metric's mean ± CI, std/min/max, the effect, p, the test, the mark, the cost columns
    (`names.COST_COLUMNS`, so a new cost metric appears without an edit here; one no run
    measured is left out of the tables) and the steps."""
    ref = reference_group(comp)
    versus = "best" if comp.baseline is None else "baseline"
    delta = f"delta_vs_{versus}"
    style = metric_style(comp.metric, [v for g in comp.groups for v in g.run_values])
    ranked = frozenset({MAIN, LATEX}) if comp.ranked else frozenset()
    pooled = frozenset({MAIN}) if not comp.ranked and comp.pooled else frozenset()

    def key(k: str) -> Column[Group]:
        shown = round_names([g.key[k] for g in comp.groups])
        return Column(k, lambda g: g.key[k], lambda v: shown.get(v, v), k, KEY, NAME)

    def cost(name: str, label: str) -> Column[Group]:
        values = [g.cost.get(name) for g in comp.groups]
        num = metric_style(name, values)
        shows = {COST, LATEX} if name == COST_PARAMS else {COST}
        if name != COST_PARAMS and all(v is None for v in values):  # none measured it: records
            shows = set()
        return Column(label, lambda g: g.cost.get(name), num, field_name(label),
                      frozenset(shows))

    return [
        *(key(k) for k in comp.by),
        *comp.columns,
        Column("n", lambda g: g.summary.n, Num(0, integer=True), "n", frozenset({MAIN, LATEX})),
        Column(f"{comp.metric} (mean ± 95% CI)", lambda g: g.summary,
               lambda s: ci_cell(s, style), summary_fields, frozenset({MAIN, LATEX})),
        Column("std", lambda g: g.summary.std, style, "std", frozenset({DETAIL})),
        Column("min", lambda g: g.summary.min, style, "min", frozenset({DETAIL})),
        Column("max", lambda g: g.summary.max, style, "max", frozenset({DETAIL})),
        Column(f"Δ {versus} (95% CI)", lambda g: g, lambda g: delta_cell(g, ref, style),
               lambda g: effect_fields(g, ref, delta), ranked),
        Column("p (Holm)" if comp.correction == "holm" else "p",
               lambda g: g.test, lambda t: p_text(t, comp.correction),
               lambda t: {"p_value": t.p_value if t else None,
                          "p_adjusted": t.p_adjusted if t else None}, ranked),
        Column("test", lambda g: g.test,
               lambda t: t.test if t is not None and t.test != "none" else "",
               lambda t: {"test": t.test if t else "", "pairs": t.n_pairs if t else None},
               frozenset({DETAIL}) if comp.ranked else frozenset(), TEXT),
        Column(f"vs {versus}", lambda g: g, status_text,
               lambda g: {"status": g.status, "status_reason": g.reason}, ranked, TEXT),
        Column("pooled", lambda g: g.pooled, lambda p: POOLED if p else "",
               lambda p: {"pooled_keys": list(p)}, pooled, TEXT),
        *(cost(name, label) for name, label in COST_COLUMNS),
        Column("steps (stopped by)", lambda g: g, lambda g: steps_cell(g.steps, g.stopped_by),
               lambda g: {"steps": STEPS_STYLE.record(g.steps), "stopped_by": g.stopped_by},
               frozenset({COST})),
        Column("run ids", lambda g: " ".join(r.run_id for r in g.runs), fields="run_ids",
               show=frozenset()),
    ]


def table(comp: Comparison) -> Table[Group]:
    """Every column of the comparison, its title and caption; `Table.only` picks a view."""
    return Table(f"{comp.label}: {comp.metric} by {', '.join(comp.by)}", columns(comp),
                 comp.groups, comp.caption, lambda g: STATUS_EMPHASIS.get(g.status, ""))


def terminal_tables(comp: Comparison, wide: bool = False) -> list[Table[Group]]:
    """What the terminal shows: the answer (MAIN) and, below it, what each group was given
    (COST); `wide`: all of it in one table."""
    full = table(comp)
    if wide:
        return [full.only(WIDE)]
    cost = full.only({COST}, title="what each group was given: cost and budget")
    return [full.only({MAIN}), cost]


def print_comparison(comp: Comparison, console: Any, wide: bool = False) -> None:
    from attnbench.analysis.layout import print_tables

    print_tables(terminal_tables(comp, wide), console, comp.caption)


def records(comp: Comparison) -> list[dict[str, Any]]:
    """One flat record per group (the CSV rows and JSON `groups`)."""
    return table(comp).records()


def to_markdown(comp: Comparison) -> str:
    text = writers.markdown(table(comp).only(WIDE))
    return text + "\n".join(reruns.markdown(comp)) if comp.show_reruns else text


def to_csv(comp: Comparison) -> str:
    return writers.csv_text(records(comp))


def to_latex(comp: Comparison) -> str:
    return writers.latex(table(comp).only({LATEX}), f"attnbench-{comp.name}-{comp.metric}")


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


RENDER = {"markdown": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}
SUFFIX = {"markdown": "md", "csv": "csv", "json": "json", "latex": "tex"}


def curve_metrics(comp: Comparison) -> list[str]:
    """The histories to plot: train/loss (every `trainer.log_every` steps) and the validation
    history of the compared metric (once per epoch), or the metric itself when it is not a
    test/val metric (e.g. attn/entropy)."""
    split, _, name = comp.metric.partition("/")
    other = f"val/{name}" if split in ("test", "val", BEST_VAL) else comp.metric
    return list(dict.fromkeys(("train/loss", other)))


def write_report(
    tracker: Tracker, comp: Comparison, out_dir: Path, plots: bool = True
) -> list[Path]:
    """Tables (Markdown, CSV, JSON, LaTeX) and plots under `out_dir`; logged on the sweep's
    parent run under `report/<the folder's name>/`."""
    written = write_tables(RENDER, comp, out_dir)
    if plots:
        written += write_plots(tracker, comp, out_dir)
    log_report(tracker, comp.parent, written, out_dir)
    return written


def log_report(tracker: Tracker, parent: Any, written: list[Path], out_dir: Path) -> None:
    """The report's files as artifacts of the sweep's parent run, under `report/<folder>/`."""
    if parent is not None:
        for path in written:
            tracker.log_artifact(parent.run_id, path, f"{REPORT_DIR}/{out_dir.name}")


def write_tables(renders: dict[str, Any], what: Any, out_dir: Path) -> list[Path]:
    """`table.md`, `.csv`, `.json`, `.tex` of `what` (a comparison or a summary) in `out_dir`."""
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


def report_name(what: str, by: Sequence[str] = (), where: str = "", versus: str = "") -> str:
    """A report's folder in its sweep's: what was compared (`test-acc_by_attention`), with the
    filter (`_where_backbone=rnn`) and the baseline (`_vs_attention=none`) when given, so a
    compare on another metric, grouping, filter or baseline never overwrites another's report."""
    name = what.replace("/", "-") + (f"_by_{'-'.join(by)}" if by else "")
    name += (f"_where_{where}" if where else "") + (f"_vs_{versus}" if versus else "")
    name = safe_name(name)
    if len(name) > 100:  # kept apart from another long name by a hash of the whole
        name = f"{name[:90]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name


def report_dir(runs_dir: str | Path, comp: Comparison) -> Path:
    """`<runs_dir>/reports/<experiment>-<sweep>/<report_name>/`."""
    versus = comp.reference if comp.baseline is not None else ""
    return inside(runs_dir, "reports", comp.name,
                  report_name(comp.metric, comp.by, comp.where, versus))


def output_format(fmt: str | None, output: Path | None) -> str:
    """The table format asked for: --format, else the -o file's suffix, else the rich table."""
    if fmt is not None:
        fmt = {"md": "markdown", "tex": "latex"}.get(fmt.lower(), fmt.lower())
        if fmt not in FORMATS:
            raise ConfigError(f"Unknown format '{fmt}'. Valid formats: {', '.join(FORMATS)}")
    if output is not None and fmt in (None, "table"):
        by_suffix = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json",
                     ".tex": "latex"}
        if output.suffix.lower() not in by_suffix:
            raise ConfigError(
                f"Cannot tell the format of '{output}' from its suffix: pass --format markdown, "
                "csv, json or latex"
            )
        return by_suffix[output.suffix.lower()]
    return fmt or "table"

"""Rendering the cross-task summary (`compare --across task`): its columns declared once, the
terminal, Markdown, CSV, JSON and LaTeX tables and the critical-difference diagram, written under
``<runs_dir>/reports/<sweep>/across-<key>/`` and logged on the sweep's parent run (under
``report/across-<key>/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attnbench.analysis import writers
from attnbench.analysis.across import Across, Row
from attnbench.analysis.columns import (
    DASH,
    KEY,
    LATEX,
    MAIN,
    NAME,
    STRONG,
    Cell,
    Column,
    Num,
    Table,
    metric_style,
    round_names,
)
from attnbench.analysis.comparison import Group
from attnbench.analysis.render import ci_cell, log_report, write_tables
from attnbench.store.tracker import Tracker

CD_PLOT = "cd_diagram.png"


def columns(a: Across) -> list[Column[Row]]:
    """The summary's columns, declared once: the variant's keys, per task its mean ± 95 % CI
    and n (in that metric's number style), the average rank and LRA's average."""

    def key(k: str) -> Column[Row]:
        shown = round_names([row.key[k] for row in a.rows])
        return Column(k, lambda r: r.key[k], lambda v: shown.get(v, v), k, KEY, NAME)

    def task(c: str) -> Column[Row]:
        metric = a.metrics[c]
        style = metric_style(metric, [v for r in a.rows if c in r.cells
                                      for v in r.cells[c].run_values])

        def cell(g: Group | None) -> Cell | str:
            return DASH if g is None else Cell((*ci_cell(g.summary, style).parts,
                                                f"(n={g.summary.n})"))

        def fields(g: Group | None) -> dict[str, object]:
            s = g.summary if g is not None else None
            return {f"{c}_n": s.n if s else None, f"{c}_mean": s.mean if s else None,
                    f"{c}_ci_low": s.ci_low if s else None,
                    f"{c}_ci_high": s.ci_high if s else None,
                    f"{c}_ci_clipped": s.clipped if s else None}

        return Column(f"{c} ({metric.partition('/')[2]})", lambda r: r.cells.get(c), cell,
                      fields, frozenset({MAIN, LATEX}))

    return [
        *(key(k) for k in a.by),
        *(task(c) for c in a.columns),
        Column("avg rank", lambda r: r.rank, Num(2), "avg_rank", frozenset({MAIN, LATEX})),
        Column("average", lambda r: r.average, Num(4), "average", frozenset({MAIN, LATEX})),
    ]


def title(a: Across) -> str:
    return f"{a.label}: {', '.join(a.by)} across {len(a.columns)} {a.key}s"


def table(a: Across) -> Table[Row]:
    return Table(title(a), columns(a), a.rows, a.caption,
                 lambda r: STRONG if r is a.rows[0] and r.rank is not None else "")


def to_markdown(a: Across) -> str:
    return writers.markdown(table(a))


def records(a: Across) -> list[dict[str, Any]]:
    """One flat record per variant (the CSV rows): per column its n, mean and interval."""
    return table(a).records()


def to_csv(a: Across) -> str:
    return writers.csv_text(records(a))


def to_latex(a: Across) -> str:
    return writers.latex(table(a).only({LATEX}), f"attnbench-{a.name}-across-{a.key}")


def to_json(a: Across) -> str:
    doc = {
        "compared": a.label,
        "across": a.key,
        "by": a.by,
        "columns": [{a.key: c, "metric": a.metrics[c]} for c in a.columns],
        "rule": a.caption,
        "sweep_run_id": a.parent.run_id if a.parent else None,
        "friedman": None if a.friedman is None else {
            "statistic": a.friedman[0], "p_value": a.friedman[1],
            "n_blocks": len(a.columns), "k": len(a.ranked),
        },
        "critical_difference": a.cd,
        "nemenyi_p": a.nemenyi,
        "different_pairs": [{"better": x, "worse": y, "p_value": p}
                            for x, y, p in a.different_pairs],
        "rows": records(a),
    }
    return json.dumps(doc, indent=2) + "\n"


RENDER = {"markdown": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}


def write_report(tracker: Tracker, a: Across, out_dir: Path, plots: bool = True) -> list[Path]:
    """Tables and the CD diagram under `out_dir`; logged on the sweep's parent run."""
    written = write_tables(RENDER, a, out_dir)
    if plots and a.cd is not None:
        from attnbench.analysis import plots as figures

        ranks = {r.label: float(r.rank) for r in a.ranked if r.rank is not None}
        written.append(figures.cd_diagram(
            ranks, a.nemenyi, a.cd, out_dir / CD_PLOT,
            f"{title(a)}: average rank (1 = best)",
            "bars join variants the Nemenyi test does not separate (p ≥ 0.05); "
            + next(p for p in a.caption.split("; ") if p.startswith("Friedman")),
        ))
    log_report(tracker, a.parent, written, out_dir)
    return written

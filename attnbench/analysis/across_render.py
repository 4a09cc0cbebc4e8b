"""Rendering the cross-task summary (`compare --across task`): the rich and Markdown tables, CSV,
JSON and the critical-difference diagram, written under ``<runs_dir>/reports/<name>-across-<key>/``
and logged on the sweep's parent run (under ``report/across-<key>/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attnbench.analysis.across import Across
from attnbench.analysis.render import ci_text, csv_text, write_tables
from attnbench.store.handle import Tracker
from attnbench.store.schema import REPORT_DIR

CD_PLOT = "cd_diagram.png"


def table_rows(a: Across) -> tuple[list[str], list[list[str]]]:
    """Column names and cells shared by the rich and Markdown tables."""
    columns = [*a.by, *(f"{c} ({a.metrics[c].partition('/')[2]})" for c in a.columns),
               "avg rank", "average"]
    rows = []
    for row in a.rows:
        cells = []
        for c in a.columns:
            g = row.cells.get(c)
            cells.append("—" if g is None else f"{ci_text(g.summary)} (n={g.summary.n})")
        rows.append([
            *row.key.values(),
            *cells,
            "—" if row.rank is None else f"{row.rank:.2f}",
            "—" if row.average is None else f"{row.average:.4f}",
        ])
    return columns, rows


def title(a: Across) -> str:
    return f"{a.label}: {', '.join(a.by)} across {len(a.columns)} {a.key}s"


def rich_table(a: Across) -> Any:
    from rich.table import Table

    columns, rows = table_rows(a)
    table = Table(title=title(a), title_justify="left", caption=a.caption, caption_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < len(a.by) else "right")
    for row in rows:
        table.add_row(*row)
    return table


def to_markdown(a: Across) -> str:
    columns, rows = table_rows(a)
    align = ["---" if i < len(a.by) else "---:" for i in range(len(columns))]
    return "\n".join([
        f"### {title(a)}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows),
        "",
        f"_{a.caption}_",
        "",
    ])


def records(a: Across) -> list[dict[str, Any]]:
    """One flat record per variant (the CSV rows): per column its n, mean and interval."""
    out = []
    for row in a.rows:
        rec: dict[str, Any] = dict(row.key)
        for c in a.columns:
            s = row.cells[c].summary if c in row.cells else None
            rec |= {
                f"{c}_n": s.n if s else None,
                f"{c}_mean": s.mean if s else None,
                f"{c}_ci_low": s.ci_low if s else None,
                f"{c}_ci_high": s.ci_high if s else None,
                f"{c}_ci_clipped": s.clipped if s else None,
            }
        rec |= {"avg_rank": row.rank, "average": row.average}
        out.append(rec)
    return out


def to_csv(a: Across) -> str:
    return csv_text(records(a))


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


RENDER = {"markdown": to_markdown, "csv": to_csv, "json": to_json}


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
    if a.parent is not None:
        for path in written:
            tracker.log_artifact(a.parent.run_id, path, f"{REPORT_DIR}/across-{a.key}")
    return written

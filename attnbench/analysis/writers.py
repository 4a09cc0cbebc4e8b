"""A declared table (`columns.Table`) as Markdown, CSV and LaTeX (booktabs). JSON documents are
built by their callers from `Table.records()`."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from attnbench.analysis.columns import STRONG, Table


def markdown(table: Table[Any], caption: str | None = None, level: str = "###") -> str:
    """A Markdown table under a `###` title (one line per row), the caption in italics below."""
    columns = table.columns
    rows = [[c.cell(row).text.replace("|", "\\|") for c in columns] for row in table.rows]
    caption = table.caption if caption is None else caption
    return "\n".join([
        f"{level} {table.title}",
        "",
        "| " + " | ".join(c.header for c in columns) + " |",
        "|" + "|".join("---:" if c.right else "---" for c in columns) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        *([f"_{caption}_", ""] if caption else []),
    ])


def csv_text(records: Sequence[dict[str, Any]]) -> str:
    """Flat records as CSV, one row each (list values joined by spaces)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {k: " ".join(v) if isinstance(v, list) else v for k, v in rec.items()} for rec in records
    )
    return buf.getvalue()


# LaTeX's special characters, and the symbols attnbench's tables and captions use, in text mode
TEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
    "±": r"$\pm$", "Δ": r"$\Delta$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$",
    "χ": r"$\chi$", "²": r"$^{2}$", "√": r"$\surd$", "₀": r"$_{0}$", "…": r"\dots{}",
    "—": "---", "–": "--", "−": "--",
}


def tex(text: str) -> str:
    """`text` escaped for LaTeX's text mode; a minus sign before a number typeset as one."""
    escaped = "".join(TEX.get(ch, ch) for ch in text)
    return re.sub(r"(?<![\w.-])-(?=\d)", r"$-$", escaped)


def latex(table: Table[Any], label: str, caption: str | None = None) -> str:
    """A booktabs table (`\\usepackage{booktabs}`): the caption above, `\\toprule`, the header,
    `\\midrule`, a row per group (the best in bold), `\\bottomrule`."""
    columns = table.columns
    caption = table.caption if caption is None else caption

    def line(cells: Sequence[str]) -> str:
        return "    " + " & ".join(cells) + r" \\"

    body = []
    for row in table.rows:
        cells = [tex(c.cell(row).text) for c in columns]
        if table.emphasis(row) == STRONG:
            cells = [rf"\textbf{{{c}}}" if c else c for c in cells]
        body.append(line(cells))
    spec = "".join("r" if c.right else "l" for c in columns)
    return "\n".join([
        f"% {' '.join(table.title.split())}",
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[htbp]",
        r"  \centering",
        rf"  \caption{{{tex(caption)}}}",
        rf"  \label{{tab:{re.sub(r'[^A-Za-z0-9:.-]+', '-', label)}}}",
        rf"  \begin{{tabular}}{{{spec}}}",
        r"    \toprule",
        line([tex(c.header) for c in columns]),
        r"    \midrule",
        *body,
        r"    \bottomrule",
        r"  \end{tabular}",
        r"\end{table}",
        "",
    ])

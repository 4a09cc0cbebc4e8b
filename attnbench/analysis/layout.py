"""A declared table (`columns.Table`) fitted to a terminal and drawn with rich.

The columns start at their natural width (every cell on one line). When the table is wider than
the terminal, the widest column that can still give a character gives one, again and again:
headers wrap (at spaces, then after `.`, `/` or `_`), text wraps at its spaces and numbers move
their parts to lines of their own (`0.8198` over `[0.4494, 1.0000]`, never splitting
`± 0.0056`); only then are names abbreviated (`multih…`, never below what keeps them apart,
never a name with a digit in it). No number is ever cut: a table that cannot fit even so (e.g.
`--wide` in a narrow terminal) keeps one line per row and is drawn as wide as it takes. Title
and caption are printed above and below at the terminal's width, the caption a clause a line.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attnbench.analysis.columns import NAME, NUMBER, STRONG, TEXT, WEAK, Cell, Table

GAP = 2  # between two columns: the (blank) divider and one space of padding
MIN_NAME = 4  # an abbreviated name keeps at least this many characters (the ellipsis included)
ELLIPSIS = "…"
STYLES = {STRONG: "bold green", WEAK: "green"}


def wrap(cell: Cell, width: int, text: bool = True) -> list[str]:
    """The cell's lines in a column `width` wide: parts packed onto lines; in `text`, a part
    longer than the width wrapped at its spaces (a word is never broken; a number's part, such
    as `± 0.0056`, never at all)."""
    if len(cell.text) <= width:
        return [cell.text]
    lines: list[str] = []
    line = ""
    for part in (p for p in cell.parts if p):
        if len(part) > width and text:
            lines += [line] if line else []
            lines += textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False)
            line = ""
        elif line and len(line) + 1 + len(part) <= width:
            line += " " + part
        else:
            lines += [line] if line else []
            line = part
    return lines + ([line] if line else []) or [""]


def header_pieces(header: str) -> list[str]:
    """A header's unbreakable pieces: its words, a long word split after `.`, `/` or `_`."""
    return [p for word in header.split() for p in re.findall(r"[^./_]*[./_]?", word) if p]


def wrap_header(header: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in header.split():
        pieces = [word] if len(word) <= width else header_pieces(word)
        for i, piece in enumerate(pieces):
            glue = " " if i == 0 else ""  # pieces of one word join without a space
            if lines and len(lines[-1]) + len(glue) + len(piece) <= width:
                lines[-1] += glue + piece
            else:
                lines.append(piece)
    return lines or [""]


def abbreviate(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + ELLIPSIS


def has_digit(name: str) -> bool:
    """A name with a number in it (`0.003`, `lr0.001235-heads4`) is never abbreviated."""
    return any(ch.isdigit() for ch in name)


@dataclass
class Fitted:
    """A column's header and cells, and the widths it can take."""

    header: str
    kind: str
    cells: list[Cell]

    @property
    def natural(self) -> int:
        return max(len(self.header), self.cells_natural)

    @property
    def cells_natural(self) -> int:
        return max((len(c.text) for c in self.cells), default=0)

    @property
    def header_floor(self) -> int:
        return max((len(p) for p in header_pieces(self.header)), default=0)

    @property
    def floor(self) -> int:
        head = self.header_floor
        if self.kind == TEXT:
            return max([head, *(c.longest_word for c in self.cells)])
        if self.kind == NUMBER:
            return max([head, *(len(p) for c in self.cells for p in c.parts)])
        names = [c.text for c in self.cells]
        fixed = max([head, MIN_NAME, *(len(n) for n in names if has_digit(n))])
        for width in range(fixed, self.natural):
            if len({abbreviate(n, width) for n in names}) == len(set(names)):
                return width
        return self.natural

    def lines(self, cell: Cell, width: int) -> list[str]:
        if self.kind == NAME:
            return [abbreviate(cell.text, width)]
        return wrap(cell, width, self.kind == TEXT)

    def used(self, limit: int) -> int:
        """The width the column takes when it may take `limit` (at most)."""
        widths = [len(line) for line in wrap_header(self.header, limit)]
        widths += [len(line) for c in self.cells for line in self.lines(c, limit)]
        return max(widths)


def fit(columns: Sequence[Fitted], width: int) -> list[int]:
    """Each column's width so that the table fits `width` (see the module's docstring)."""
    widths = [c.natural for c in columns]
    floors = [c.floor for c in columns]
    if sum(floors) + GAP * (len(floors) - 1) > width:
        return widths  # it cannot fit: one line per row, as wide as it takes (`less -S`)
    names = [c.kind == NAME for c in columns]
    phases = (  # how far each column may narrow: names keep their text until the last phase
        [max(c.cells_natural, c.header_floor) if name else floor
         for c, name, floor in zip(columns, names, floors, strict=True)],
        floors,
    )
    for lowest in phases:
        while sum(widths) + GAP * (len(widths) - 1) > width:
            slack = [i for i in range(len(columns)) if widths[i] > lowest[i]]
            if not slack:
                break
            i = max(slack, key=lambda j: (widths[j], j))
            widths[i] = max(lowest[i], columns[i].used(widths[i] - 1))
    return widths


def rich_table(table: Table[Any], width: int) -> Any:
    """`table` as a rich Table at most `width` wide (wider only where a number would be cut)."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    fitted = [Fitted(c.header, c.kind, [c.cell(row) for row in table.rows]) for c in table.columns]
    widths = fit(fitted, width)
    lines = [[f.lines(cell, w) for cell in f.cells] for f, w in zip(fitted, widths, strict=True)]
    out = RichTable(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
        width=sum(widths) + GAP * (len(widths) - 1),
    )
    for col, f, w in zip(table.columns, fitted, widths, strict=True):
        justify = "right" if col.right else "left"
        out.add_column(Text("\n".join(wrap_header(f.header, w)), justify=justify),
                       justify=justify, width=w, no_wrap=True, overflow="fold")
    best = [table.best_rows(c) for c in table.columns]
    for i, row in enumerate(table.rows):
        style = STYLES.get(table.emphasis(row))
        cells = [Text("\n".join(col[i]), style="bold green" if i in best[j] else "")
                 for j, col in enumerate(lines)]
        tall = any(len(col[i]) > 1 for col in lines) and i < len(table.rows) - 1
        out.add_row(*cells, style=style, end_section=tall)  # a blank line after a tall row
    return out


def caption_lines(caption: str, width: int) -> list[str]:
    """The caption one clause (`; `-separated) a line, each wrapped at `width`."""
    out = []
    for clause in clauses(caption):
        if clause:
            out += textwrap.wrap(clause, width, subsequent_indent="  ", break_long_words=False,
                                 break_on_hyphens=False)
    return out


def clauses(caption: str) -> list[str]:
    """The caption's `; `-separated clauses, a `; ` inside brackets kept (`(1 = best; ties …)`)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(caption):
        depth += (ch in "([") - (ch in ")]")
        if depth == 0 and caption.startswith("; ", i):
            out.append(caption[start:i].strip())
            start = i + 2
    return [c for c in [*out, caption[start:].strip()] if c]


def print_tables(tables: Sequence[Table[Any]], console: Any, caption: str = "") -> None:
    """Each table under its title, then the caption, at the console's width."""
    from rich.text import Text

    width = console.width
    for i, table in enumerate(tables):
        if i:
            console.print()
        if table.title:
            console.print(Text("\n".join(textwrap.wrap(table.title, width)), style="bold"))
        console.print(rich_table(table, width) if table.rows else Text("none"))
    if caption:
        console.print()
    for line in caption_lines(caption, width):
        console.print(Text(line), highlight=False)

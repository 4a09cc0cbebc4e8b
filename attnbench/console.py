"""Terminal output: progress bars, result tables and one-line errors (rich)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr, never wrapped (line breaks in quoted user input are shown escaped)."""
    from rich.markup import escape

    message = message.replace("\r", "\\r").replace("\n", "\\n")
    # escape: a message quotes user input and names like "imdb[train]", not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


class RichProgress:
    """The training loop's progress bar (the loop's `Progress` protocol)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]} loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
            disable=not sys.stderr.isatty(),
        )
        self._task: Any = None

    def start(self, total_steps: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total_steps, note="", loss=float("nan"))

    def advance(self, step: int, loss: float, note: str) -> None:
        self._bar.update(self._task, completed=step, loss=loss, note=note)

    def stop(self) -> None:
        self._bar.stop()


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return (
            f"{value:.{digits}g}"
            if abs(value) < 1e-3 and value
            else f"{value:.{digits}f}".rstrip("0").rstrip(".")
        )
    return str(value)


def results_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    best: dict[int, int] | None = None,
) -> Table:
    """A rich table; `best` maps a column index to the row index to highlight."""
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col[:1].islower() and "/" in col else "left")
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            text = fmt(value)
            if best and best.get(j) == i:
                text = f"[bold green]{text}[/]"
            cells.append(text)
        table.add_row(*cells)
    return table

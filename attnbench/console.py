"""Terminal output: progress bars, result tables and one-line errors (rich)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class _Stdout(Console):
    """Tables and summaries on stdout, as wide as the terminal, or $COLUMNS when it is set (a
    pipe, a test), else 160 — decided when something is printed, not when attnbench is
    imported (a command's environment may set COLUMNS after that)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._width = None  # rich fixes $COLUMNS at construction: read it when printing instead

    def _size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        if (self._width is None and not self.is_terminal
                and not os.environ.get("COLUMNS", "").isdigit()):
            return ConsoleDimensions(160, dims.height)
        return dims

    size = property(_size, Console.size.fset)  # type: ignore[assignment]


def stdout_console() -> Console:
    return _Stdout(soft_wrap=True)


console = stdout_console()
err_console = Console(stderr=True, soft_wrap=True)

# Set (to "1") by `-v/--verbose` for the command's duration; sweep workers inherit it.
VERBOSE_ENV = "ATTNBENCH_VERBOSE"


def verbose() -> bool:
    """Whether the libraries' own output (MLflow's log and run links, ...) is wanted on the
    terminal (`-v`). Hydra's lines and the jobs' INFO logging follow Hydra's logging configs
    (conf/hydra/*_logging/quiet.yaml by default; `-v` chooses Hydra's own `default`)."""
    return os.environ.get(VERBOSE_ENV) == "1"


def optuna_through_root() -> None:
    """Optuna prints through a handler of its own (with colour codes, even into a file); make
    it log through the root logger instead, so Hydra's logging config decides what shows:
    nothing below WARNING on the terminal by default, all of it with `-v`. Nothing to do when
    Optuna is not installed."""
    try:
        import optuna
    except ImportError:
        return
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def error(message: str) -> None:
    """One line on stderr, never wrapped (line breaks in quoted user input are shown escaped)."""
    from rich.markup import escape

    message = message.replace("\r", "\\r").replace("\n", "\\n")
    # escape: a message quotes user input and names like "imdb[train]", not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


class RichProgress:
    """The training loop's progress bar (the loop's `Progress` protocol), on stderr when stderr
    is a terminal; nothing otherwise (a log keeps the summary `run` prints on stdout).

    It shows from the job's start, so start-up never looks like a frozen `0/N`: while the job
    does something other than training steps, the status column names it (loading data, building
    the model, first step, opening the MLflow run), drawn the moment it begins, and the count
    reads `0/?` until the loop knows its total. The bar stops the moment it is full, so the
    finished bar is drawn once; left running it was redrawn ten times a second while the run
    validated and tested, each redraw a copy in anything that records the terminal (`script`,
    `docker run -t`, CI with a pty). A run that ends early (`trainer.max_time`, an error,
    Ctrl-C) is drawn where it stopped, once, by `stop()`; one that stops before training (a data
    error, a cell `--resume` skips) leaves no bar. Epoch and loss show from the first logged loss
    on (not "loss nan" before it).
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
            disable=not sys.stderr.isatty(),
        )
        self._task: Any = None
        self._total = 0
        self._trained = False  # the loop has its total (`start`)
        self._loss = ""  # the latest logged loss, as shown
        self._stopped = False

    def phase(self, text: str | None) -> None:
        """What the job does besides training steps, shown now; None: training again (the latest
        loss)."""
        if self._stopped:
            return
        status = text if text is not None else self._loss or "training"
        if self._task is None:
            self._show(None, status)
        else:
            self._bar.update(self._task, status=status, refresh=True)

    def start(self, total_steps: int) -> None:
        self._total, self._trained = total_steps, True
        if self._task is None:
            self._show(total_steps, "")
        else:
            self._bar.update(self._task, total=total_steps)

    def _show(self, total: int | None, status: str) -> None:
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total, status=status)
        self._bar.refresh()

    def advance(self, step: int, loss: float, note: str) -> None:
        status = self._loss = f"{note} loss {loss:.4f}"
        if step < self._total:
            self._bar.update(self._task, completed=step, status=status)
            return
        # Full: update and stop under the display's lock (rich's refresh thread takes it to
        # draw), so the full bar is drawn by stop() alone, not also by a refresh in between.
        with getattr(self._bar.live, "_lock", contextlib.nullcontext()):  # (private in rich)
            self._bar.update(self._task, completed=step, status=status)
            self.stop()

    def stop(self) -> None:
        if not self._stopped:  # (a second stop would print a blank line on a dumb terminal)
            self._stopped = True
            if self._task is not None and not self._trained:
                self._bar.live.transient = True  # phases only: the display is cleared
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

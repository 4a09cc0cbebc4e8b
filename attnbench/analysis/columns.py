"""Tables declared once. A table is a list of columns; each column is a header, a function that
reads its value from a row, a format that turns the value into a cell, the fields it gives the
CSV/JSON record, and the tables it appears in. The comparison (`render`), the cross-task summary
(`across_render`), the end-of-sweep table (`sweep_table`), the tuned and search sweeps' extra
columns (`tuning`) and the list of reruns (`reruns`) declare their columns here; `layout` fits
them to a terminal and `writers` turns them into Markdown, CSV, JSON records and LaTeX, so a new
column is one entry in one list.

One number style per column (`Num`): fixed decimals per metric (`metric_style`: accuracy-like
metrics 4, BLEU 2, seconds 1, counts 0), thousands separators, right-aligned; counts (parameters,
steps) are integers in CSV/JSON as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from attnbench.store.names import (
    COST_EPOCH_S,
    COST_PARAMS,
    COST_PEAK_MEM_MB,
    COST_SAMPLES_PER_S,
    COST_STEPS,
    COST_TRAIN_S,
    metric_range,
)

R = TypeVar("R")

# The tables a column appears in. The terminal shows MAIN, then a second table of the group keys
# and COST; `--wide` and Markdown show MAIN, DETAIL and COST in one; LaTeX shows the LATEX ones.
MAIN, DETAIL, COST, LATEX = "main", "detail", "cost", "latex"
KEY = frozenset({MAIN, COST, LATEX})  # what names a row: in every table
WIDE = frozenset({MAIN, DETAIL, COST})
# What a cell holds: a name may be abbreviated in a narrow terminal (never a number-like one); a
# number is never cut (it moves its parts to lines of their own instead); text wraps at spaces.
NAME, NUMBER, TEXT = "name", "number", "text"
DASH = "—"  # no value
STRONG, WEAK = "strong", "weak"  # row emphasis: the best group (bold), a tied one


@dataclass(frozen=True)
class Cell:
    """A table cell in parts kept on one line where the column is wide enough (a mean and its
    interval); a narrow column gives each part a line, and wraps a part only at its spaces."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(p for p in self.parts if p)

    @property
    def longest_word(self) -> int:
        return max((len(w) for p in self.parts for w in p.split()), default=0)


def as_cell(value: Cell | str) -> Cell:
    return value if isinstance(value, Cell) else Cell((value,))


@dataclass(frozen=True)
class Num:
    """A number style: `decimals` fixed, thousands separated; `integer`: a count (an int in
    records); `sign`: always signed (a difference)."""

    decimals: int
    integer: bool = False
    sign: bool = False

    def __call__(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return DASH
        return f"{value:{'+' if self.sign else ''},.{self.decimals}f}"

    def record(self, value: Any) -> Any:
        if value is None:
            return None
        return int(round(value)) if self.integer and math.isfinite(value) else value

    @property
    def signed(self) -> Num:
        return replace(self, sign=True)


def plain(value: Any) -> str:
    """The default format: the value as text (`—` for none)."""
    return DASH if value is None else str(value)


@dataclass(frozen=True)
class Column(Generic[R]):
    """One column: `header`, `value` (row -> raw value), `fmt` (value -> cell), `fields` (the
    CSV/JSON fields: one name for the value, a function value -> several, or None: tables only),
    `show` (the tables it is in: MAIN, DETAIL, COST, LATEX; empty: records only), `kind`
    (NAME, NUMBER or TEXT) and `best` ("max" or "min": the best value is highlighted)."""

    header: str
    value: Callable[[R], Any]
    fmt: Callable[[Any], Cell | str] = plain
    fields: str | Callable[[Any], dict[str, Any]] | None = None
    show: frozenset[str] = frozenset({MAIN})
    kind: str = NUMBER
    best: str | None = None

    def cell(self, row: R) -> Cell:
        return as_cell(self.fmt(self.value(row)))

    def record(self, row: R) -> dict[str, Any]:
        if self.fields is None:
            return {}
        value = self.value(row)
        if callable(self.fields):
            return self.fields(value)
        return {self.fields: self.fmt.record(value) if isinstance(self.fmt, Num) else value}

    @property
    def right(self) -> bool:
        return self.kind == NUMBER


@dataclass
class Table(Generic[R]):
    """Rows under declared columns, with a title, a caption and each row's emphasis."""

    title: str
    columns: list[Column[R]]
    rows: list[R]
    caption: str = ""
    emphasis: Callable[[R], str] = field(default=lambda row: "")

    def only(self, shows: Iterable[str], title: str | None = None) -> Table[R]:
        """The columns shown in any of `shows`."""
        wanted = set(shows)
        return replace(self, columns=[c for c in self.columns if c.show & wanted],
                       title=self.title if title is None else title)

    def records(self) -> list[dict[str, Any]]:
        """One flat record per row (CSV/JSON), the fields in column order."""
        out = []
        for row in self.rows:
            rec: dict[str, Any] = {}
            for col in self.columns:
                rec |= col.record(row)
            out.append(rec)
        return out

    def best_rows(self, col: Column[R]) -> set[int]:
        """The rows whose value is the column's best (by its raw value; none when it has no
        `best`)."""
        if col.best is None:
            return set()
        scored = [(v, i) for i, row in enumerate(self.rows)
                  if isinstance(v := col.value(row), (int, float)) and math.isfinite(v)]
        if not scored:
            return set()
        top = (max if col.best == "max" else min)(v for v, _ in scored)
        return {i for v, i in scored if v == top}


# -- the number style of a metric ------------------------------------------------------------
# Whole metric names; anything else by its range (accuracy-like [0, 1]: 4, BLEU [0, 100]: 2), a
# loss or another task metric 4, and a metric attnbench does not know (e.g. a cost metric added
# to COST_COLUMNS) by the size of its values: about three significant digits, 0 to 4 decimals.
METRIC_STYLES = {
    COST_PARAMS: Num(0, integer=True),
    COST_STEPS: Num(0, integer=True),
    COST_TRAIN_S: Num(1),
    COST_EPOCH_S: Num(1),
    COST_SAMPLES_PER_S: Num(0),
    COST_PEAK_MEM_MB: Num(1),
}
TASK_SPLITS = ("train/", "val/", "best_val/", "test/")


def metric_style(name: str, values: Iterable[float | None] = ()) -> Num:
    """The number style of metric `name` (its values decide only for a metric with no rule)."""
    if name in METRIC_STYLES:
        return METRIC_STYLES[name]
    bounds = metric_range(name)
    if bounds is not None:
        return Num(4 if bounds[1] - bounds[0] <= 1 else 2)
    if name.endswith("loss") or name.startswith(TASK_SPLITS):
        return Num(4)
    known = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not known:
        return Num(2)
    return Num(min(4, max(0, 2 - math.floor(math.log10(max(known))))))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def round_names(values: Sequence[str]) -> dict[str, str]:
    """How a table shows group values: a number with more than 4 significant digits (an Optuna
    trial's `0.0012345678901234567`) rounded to 4 (`0.001235`), or to as many as keep the values
    apart; any other value as it is."""
    numbers = {v: x for v in dict.fromkeys(values) if (x := _number(v)) is not None}
    long = {v: x for v, x in numbers.items() if len(f"{x:.4g}") < len(v.strip())}
    for digits in range(4, 18):
        shown = {v: f"{x:.{digits}g}" for v, x in long.items()}
        if len(set(shown.values()) | set(values) - set(long)) == len(set(values)):
            return {v: shown.get(v, v) for v in values}
    return {v: v for v in values}

"""The evaluate / reproduce runs `compare` leaves out of every group (they are not seeds),
listed when asked (`compare --reruns`): their columns, declared once for the terminal, the
Markdown section and the JSON records."""

from __future__ import annotations

from typing import Any

from attnbench.analysis import writers
from attnbench.analysis.columns import NAME, TEXT, Column, Table, metric_style
from attnbench.analysis.comparison import Comparison
from attnbench.store.names import EVALUATES_TAG, IDENTITY_TAGS, REPRODUCES_TAG, rerun_kind
from attnbench.store.tracker import RunInfo

TITLE = "evaluate / reproduce runs (not seeds: left out of the groups)"


def columns(comp: Comparison) -> list[Column[RunInfo]]:
    """The evaluate / reproduce runs' columns: what they are and their metric."""
    style = metric_style(comp.metric, [r.metrics.get(comp.metric) for r in comp.reruns])
    return [
        Column("run_id", lambda r: r.run_id, fields="run_id", kind=TEXT),
        Column("kind", lambda r: rerun_kind(r.tags), fields="kind", kind=NAME),
        Column("of_run", lambda r: r.tags.get(EVALUATES_TAG) or r.tags.get(REPRODUCES_TAG),
               fields="of_run", kind=TEXT),
        *(Column(k, lambda r, k=k: r.tags.get(k), fields=k, kind=NAME) for k in IDENTITY_TAGS),
        Column("status", lambda r: r.status, fields="status", kind=NAME),
        Column(comp.metric, lambda r: r.metrics.get(comp.metric), style, comp.metric),
    ]


def table(comp: Comparison) -> Table[RunInfo]:
    return Table(TITLE, columns(comp), list(comp.reruns))


def records(comp: Comparison) -> list[dict[str, Any]]:
    """The evaluate / reproduce runs left out of the groups: what they are and their metric."""
    return table(comp).records()


def markdown(comp: Comparison) -> list[str]:
    """The Markdown section that lists them."""
    if not comp.reruns:
        return [f"#### {TITLE}", "", "none", ""]
    return [writers.markdown(table(comp), level="####")]

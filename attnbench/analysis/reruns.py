"""The evaluate / reproduce runs `compare` leaves out of every group (they are not seeds),
listed when asked (`compare --reruns`): records for JSON, a Markdown section, a rich table."""

from __future__ import annotations

from typing import Any

from attnbench.analysis.model import Comparison
from attnbench.store.schema import EVALUATES_TAG, IDENTITY_TAGS, REPRODUCES_TAG, rerun_kind

TITLE = "evaluate / reproduce runs (not seeds: left out of the groups)"


def records(comp: Comparison) -> list[dict[str, Any]]:
    """The evaluate / reproduce runs left out of the groups: what they are and their metric."""
    return [
        {
            "run_id": r.run_id,
            "kind": rerun_kind(r.tags),
            "of_run": r.tags.get(EVALUATES_TAG) or r.tags.get(REPRODUCES_TAG),
            **{k: r.tags.get(k) for k in IDENTITY_TAGS},
            "status": r.status,
            comp.metric: r.metrics.get(comp.metric),
        }
        for r in comp.reruns
    ]


def _markdown_rows(recs: list[dict[str, Any]]) -> list[str]:
    if not recs:
        return ["none"]
    head = list(recs[0])
    cells = [["—" if v is None else str(v) for v in r.values()] for r in recs]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(c) + " |" for c in cells)]


def markdown(comp: Comparison) -> list[str]:
    """The Markdown section that lists them."""
    return [f"#### {TITLE}", "", *_markdown_rows(records(comp)), ""]


def rich_table(comp: Comparison) -> Any:
    """The evaluate / reproduce runs left out of the groups (compare --reruns)."""
    from rich.table import Table

    recs = records(comp)
    table = Table(title=TITLE, title_justify="left")
    for col in recs[0] if recs else ("run_id",):
        table.add_column(col)
    for rec in recs:
        table.add_row(*("—" if v is None else str(v) for v in rec.values()))
    return table

"""Run ids as people type them: the full 32-character MLflow id, or any unique prefix of at least
`MIN_PREFIX` characters (attnbench prints 8). `Tracker.get_run` resolves every id through
`resolve`, so every command that takes a run id (`compare --sweep`, `evaluate`, `reproduce`)
takes a prefix too."""

from __future__ import annotations

import re
from typing import Any

from attnbench.errors import TrackingError

MIN_PREFIX = 6
FULL_LENGTH = 32
SHOWN = 5  # matches named when a prefix is ambiguous
_HEX = re.compile(r"^[0-9a-f]+$")


def resolve(client: Any, run_id: str, where: str) -> str:
    """The full id of the one run whose id starts with `run_id` (case-insensitive); TrackingError
    in one line for a prefix too short, unknown or ambiguous (naming the matches). `where`:
    the store, for messages."""
    typed = run_id.strip().lower()
    if len(typed) == FULL_LENGTH or not _HEX.match(typed):
        return run_id  # a full id (or not an id at all): the store says whether it exists
    if len(typed) < MIN_PREFIX:
        raise TrackingError(
            f"Run id '{run_id}' is too short: give at least {MIN_PREFIX} characters of it"
        )
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, f"attributes.run_id LIKE '{typed}%'",
                               ViewType.ACTIVE_ONLY, max_results=SHOWN + 1) if experiments else []
    if not found:
        raise TrackingError(f"No run with id {run_id!r} (or starting so) in {where}")
    if len(found) > 1:
        shown = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in found[:SHOWN])
        more = " and more" if len(found) > SHOWN else ""
        raise TrackingError(
            f"Run id prefix '{run_id}' is ambiguous: it matches {shown}{more}; give more characters"
        )
    return str(found[0].info.run_id)

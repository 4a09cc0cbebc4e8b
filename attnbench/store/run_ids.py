"""Run ids as people type them: the full 32-character MLflow id, any unique prefix of at least
`MIN_PREFIX` characters (attnbench prints 8), or the name a sweep was given (`sweep --name`: the
newest sweep of that name). `Tracker.get_run` resolves every id through `resolve`, so every
command that takes a run id (`compare --sweep`, `evaluate`, `reproduce`) takes these too."""

from __future__ import annotations

import re
from typing import Any

from attnbench.errors import TrackingError
from attnbench.store.names import KIND_TAG, SWEEP_KIND, SWEEP_NAME, SWEEP_NAME_TAG

MIN_PREFIX = 6
FULL_LENGTH = 32
SHOWN = 5  # matches named when a prefix is ambiguous
_HEX = re.compile(r"^[0-9a-f]+$")
NAME = re.compile(SWEEP_NAME)


def resolve(client: Any, run_id: str, where: str) -> str:
    """The full id of the one run whose id starts with `run_id` (case-insensitive), or of the
    newest sweep named `run_id` (`sweep --name`); TrackingError in one line for a prefix too
    short, unknown or ambiguous (naming the matches). `where`: the store, for messages."""
    typed = run_id.strip().lower()
    if len(typed) == FULL_LENGTH:
        return run_id  # a full id: the store says whether it exists
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in client.search_experiments()]
    hexish = bool(_HEX.match(typed)) and len(typed) >= MIN_PREFIX
    found = client.search_runs(experiments, f"attributes.run_id LIKE '{typed}%'",
                               ViewType.ACTIVE_ONLY, max_results=SHOWN + 1) \
        if experiments and hexish else []
    if len(found) > 1:
        shown = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in found[:SHOWN])
        more = " and more" if len(found) > SHOWN else ""
        raise TrackingError(
            f"Run id prefix '{run_id}' is ambiguous: it matches {shown}{more}; give more characters"
        )
    if found:
        return str(found[0].info.run_id)
    named = _sweep_named(client, experiments, run_id.strip())
    if named is not None:
        return named
    if _HEX.match(typed) and len(typed) < MIN_PREFIX:
        raise TrackingError(
            f"Run id '{run_id}' is too short: give at least {MIN_PREFIX} characters of it"
        )
    starting = " (or starting so)" if _HEX.match(typed) else ""
    raise TrackingError(f"No run with id {run_id!r}{starting}, nor a sweep named so, in {where}")


def _sweep_named(client: Any, experiments: list[str], name: str) -> str | None:
    """The id of the newest sweep named `name` (`sweep --name`), or None."""
    if not experiments or not NAME.fullmatch(name):
        return None
    from mlflow.entities import ViewType

    found = client.search_runs(
        experiments, f"tags.`{SWEEP_NAME_TAG}` = '{name}' and tags.`{KIND_TAG}` = '{SWEEP_KIND}'",
        ViewType.ACTIVE_ONLY, max_results=1, order_by=["attributes.start_time DESC"])
    return str(found[0].info.run_id) if found else None

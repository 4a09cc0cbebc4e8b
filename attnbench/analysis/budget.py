"""What each group was given: steps trained, what stopped training, parameters; and the warning
when groups differ in steps or parameters by more than 10 % (Long Range Arena's rule: a model may
have at most 10 % more parameters than the baseline; Tay et al. 2021, §3.2)."""

from __future__ import annotations

from collections.abc import Sequence

from attnbench.store.names import COST_STEPS, STOPPED_BY_TAG
from attnbench.store.tracker import RunInfo

TOLERANCE = 0.10  # groups whose steps or parameters differ by more than this share are flagged
ALL_EPOCHS = "epochs"  # stopped_by of a run that ran every epoch (it has no stopped_by tag)


def run_steps(run: RunInfo) -> float | None:
    """The optimiser steps a run trained: its `cost/steps`; for runs logged before that metric,
    `trainer.max_steps` when the cap stopped it; else unknown (None)."""
    if COST_STEPS in run.metrics:
        return float(run.metrics[COST_STEPS])
    if run.tags.get(STOPPED_BY_TAG) == "max_steps":
        try:
            return float(run.params.get("trainer.max_steps", ""))
        except ValueError:
            return None
    return None


def group_steps(runs: Sequence[RunInfo]) -> float | None:
    """The mean steps over the runs that say (None when none does)."""
    known = [s for s in map(run_steps, runs) if s is not None]
    return sum(known) / len(known) if known else None


def stopped_by(runs: Sequence[RunInfo]) -> str:
    """What ended training in a group's runs: `max_steps`, `max_time` or `epochs` (all ran);
    several joined with `/` when the runs differ."""
    return "/".join(sorted({r.tags.get(STOPPED_BY_TAG) or ALL_EPOCHS for r in runs}))


def spread(values: dict[str, float | None]) -> str | None:
    """`min (label) to max (label)` when the largest exceeds the smallest by more than
    TOLERANCE of it, else None (labels -> values; unknown values are skipped)."""
    known = {k: v for k, v in values.items() if v is not None and v > 0}
    if len(known) < 2:
        return None
    low = min(known, key=lambda k: known[k])
    high = max(known, key=lambda k: known[k])
    if known[high] <= (1 + TOLERANCE) * known[low]:
        return None
    share = known[high] / known[low] - 1
    return f"{known[low]:,.0f} ({low}) to {known[high]:,.0f} ({high}), +{share * 100:.0f} %"


def budget_warning(
    steps: dict[str, float | None], params: dict[str, float | None]
) -> str | None:
    """One line when groups (label -> mean steps / parameters) differ by more than 10 %."""
    parts = [
        f"{what} {text}"
        for what, values in (("steps", steps), ("parameters", params))
        if (text := spread(values)) is not None
    ]
    if not parts:
        return None
    return (
        f"groups differ by more than {TOLERANCE * 100:.0f} % in {'; '.join(parts)}: the "
        "comparison does not hold the budget or the model size fixed (LRA's rule: within 10 %)"
    )

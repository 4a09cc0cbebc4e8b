"""Before measuring: refuse a bench none of whose cases would run.

`measure.run_cases` skips a case whose estimated memory (`measure.estimate_bytes`) exceeds
``bench.mem_fraction`` of the available memory. When that is every case of every variant at
every length, the bench would time nothing and log an empty run; `check_fits` says so in one
line instead, naming ``bench.seq_lens`` and the longest length at which some variant fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attnbench.errors import ConfigError

if TYPE_CHECKING:
    from attnbench.bench.plan import BenchPlan


def check_fits(plan: BenchPlan, available: int | None = None) -> None:
    """ConfigError when every variant's own case needs more than ``mem_fraction`` × the
    available memory at every length (host memory: the check is skipped on a GPU)."""
    from attnbench.config.resources import available_memory, gib

    if getattr(plan, "device", "cpu") != "cpu":
        return
    if available is None:
        available, _ = available_memory()
        if available is None:
            return
    s = plan.settings
    budget = s.mem_fraction * available
    if any(_need(plan, v, n) <= budget for v in plan.variants for n in s.seq_lens):
        return
    longest = max((_longest(plan, v, budget, max(s.seq_lens)) for v in plan.variants), default=0)
    lengths = ", ".join(str(n) for n in sorted(s.seq_lens))
    fits = (f"the longest that fits is {longest}" if longest
            else "no length fits: lower bench.batch or bench.dim")
    raise ConfigError(
        f"'bench.seq_lens' = [{lengths}]: every case would be skipped (memory estimate above "
        f"bench.mem_fraction={s.mem_fraction:g} x {gib(available)} available); {fits}"
    )


def _need(plan: BenchPlan, variant: str, n: int) -> int:
    from attnbench.bench.measure import estimate_bytes
    from attnbench.bench.plan import Case

    return estimate_bytes(Case(variant, "variant", n), plan.variants[variant], plan.settings)


def _longest(plan: BenchPlan, variant: str, budget: float, hi: int) -> int:
    """The largest T <= hi whose case fits `budget` (0 if none): memory grows with T."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _need(plan, variant, mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo

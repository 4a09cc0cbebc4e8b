"""Effect sizes against the reference group and the rule that tells a tie from a lack of power.

Pure functions over plain numbers (no MLflow, no torch), tested against hand-computed values.

Effect of a group against the reference (the best group, or ``--baseline``):

- Paired, when they share at least 2 pairing keys (seeds): the differences ``other - reference``
  per pair, their mean, the 95 % t-interval of that mean ``mean ± t(0.975, n-1) · sd / √n`` and
  Cohen's d_z = mean / sd (Cohen 1988; Lakens 2013: the standardised mean difference of paired
  data; none when sd = 0).
- Welch, when they share fewer than 2 pairs but both have at least 2 runs: the difference of the
  means with Welch's 95 % interval (unequal variances; scipy ``ttest_ind(equal_var=False)``).
- For a bounded metric the interval is clipped to ± the range's width (a difference of two
  accuracies lies in [-1, 1]).

Tied or inconclusive (an equivalence rule, the two one-sided tests' reading of an interval;
Schuirmann 1987, Lakens 2017): a group the test does not separate from the reference (p ≥ 0.05)
is

- **tied** only when the 95 % interval of the difference lies within ± margin, i.e. the data
  rule out any difference larger than the margin;
- **inconclusive (n=K)** otherwise: the difference may be larger than the margin and K seeds
  cannot tell (a power statement, not a tie).

Using the 95 % interval (rather than TOST's 90 %) makes "tied" the stricter of the two readings.
The margin is ``compare --margin`` in the metric's units, by default 2 % of the metric's range
(0.02 for accuracy, 2 points for BLEU) or, for an unbounded metric, 2 % of the reference's mean.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from attnbench.analysis.stats import CONFIDENCE, Bounds, summarize

DEFAULT_MARGIN_SHARE = 0.02  # of the metric's range, or of the reference's mean when unbounded
MARGIN_RULE = (
    "tied = p ≥ 0.05 and the 95 % CI of the difference within ± {margin}; inconclusive (n=K) = "
    "p ≥ 0.05 but the CI reaches past the margin: K seeds cannot tell a tie from a difference"
)


@dataclass(frozen=True)
class Effect:
    method: str  # "paired" | "Welch"
    n: int  # pairs (paired) or the smaller group's runs (Welch)
    diff: float  # other - reference: the mean paired difference, or the difference of means
    ci_low: float | None  # 95 % interval of `diff` (None when it cannot be computed)
    ci_high: float | None
    d_z: float | None = None  # Cohen's d_z (paired only; None when the differences do not vary)

    def within(self, margin: float) -> bool:
        """The interval lies inside [-margin, margin]: any larger difference is ruled out."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return -margin <= self.ci_low and self.ci_high <= margin


def default_margin(bounds: Bounds, reference_mean: float) -> float:
    """2 % of the metric's range; of the reference's mean when the metric is unbounded."""
    if bounds is not None:
        return DEFAULT_MARGIN_SHARE * (bounds[1] - bounds[0])
    return DEFAULT_MARGIN_SHARE * abs(reference_mean)


def effect(
    reference: Mapping[Hashable, float],
    other: Mapping[Hashable, float],
    bounds: Bounds = None,
) -> Effect | None:
    """The effect of `other` against `reference` (both: pairing key -> value); None when neither
    a paired (≥ 2 shared keys) nor a Welch (≥ 2 runs each) interval can be made."""
    keys = [k for k in reference if k in other]
    if len(keys) >= 2:
        diffs = [float(other[k]) - float(reference[k]) for k in keys]
        s = summarize(diffs)
        assert s.std is not None and s.ci_low is not None and s.ci_high is not None
        low, high = _clip(s.ci_low, s.ci_high, bounds)
        d_z = s.mean / s.std if s.std > 0 else None
        return Effect("paired", s.n, s.mean, low, high, d_z)
    ref, oth = list(reference.values()), list(other.values())
    if len(ref) < 2 or len(oth) < 2:
        return None
    return _welch(ref, oth, bounds)


def _welch(ref: Sequence[float], oth: Sequence[float], bounds: Bounds) -> Effect:
    from scipy import stats

    diff = math.fsum(oth) / len(oth) - math.fsum(ref) / len(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_ind(oth, ref, equal_var=False).confidence_interval(CONFIDENCE)
    low, high = float(ci.low), float(ci.high)
    if math.isnan(low) or math.isnan(high):  # neither group varies: the difference is exact
        low = high = diff
    low, high = _clip(low, high, bounds)
    return Effect("Welch", min(len(ref), len(oth)), diff, low, high)


def _clip(low: float, high: float, bounds: Bounds) -> tuple[float, float]:
    if bounds is None:
        return low, high
    width = bounds[1] - bounds[0]
    return max(low, -width), min(high, width)


def tie_or_inconclusive(found: Effect | None, margin: float) -> str:
    """The mark of a group the test did not separate from the reference: `tied` when the
    effect's interval lies within ± margin, else `inconclusive`."""
    return "tied" if found is not None and found.within(margin) else "inconclusive"

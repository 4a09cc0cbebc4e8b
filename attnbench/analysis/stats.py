"""Statistics for `attnbench compare`: aggregation over seeds and paired tests against the best.

Pure functions over plain numbers (no MLflow, no torch), tested against hand-computed values.

Rules (stated in every comparison's caption, see ``RULE``):

- Aggregation over the runs of a group: n, mean, sample standard deviation (ddof = 1), the 95 %
  Student-t confidence interval ``mean ± t(0.975, n-1) · std / √n`` (none when n < 2), min, max.
- Bounded metrics (accuracy, exact match, F1, ... in [0, 1]; BLEU in [0, 100]: the range is
  ``store.names.metric_range``): the t-interval is clipped to the range, and a clipped interval
  is flagged (shown as ``[low, high]`` instead of ``± half-width``). Clipping was chosen over a
  transformed (logit) or bootstrap interval because it keeps the t-interval's coverage of the
  mean exactly (the true mean lies in the range, so the clipped interval holds it whenever the
  unclipped one does), works with values of exactly 0 or 1 (where the logit is infinite), and
  with 3 seeds a bootstrap interval is far too narrow. Its cost: at the edge the interval says
  only "up to the bound", which is all 3 seeds can say there.
- Each group is compared with the best group on the runs they share a pairing key with (the
  seed, plus any run identity not grouped on): differences ``best - other`` per pair.
- Test: the paired t-test; the Wilcoxon signed-rank test instead when there are at least 6 pairs
  and Shapiro-Wilk rejects normality of the differences (p < 0.05). Below 6 pairs Wilcoxon cannot
  reach p < 0.05 at all (its smallest two-sided p is 2 / 2ⁿ), so it would mark everything tied,
  and normality cannot usefully be checked; the t-test is the only informative choice there.
- Not separated from the best: p ≥ 0.05 (``PairedTest.tied``; whether that is a tie or a lack of
  power is `analysis.effects`' equivalence rule). With fewer than 2 pairs no test is possible:
  not separated when the two groups' confidence intervals overlap, unknown (None) when either
  group has a single run.
- Multiple comparisons (k groups make k - 1 tests against the best): none by default, so with
  many groups some "worse" marks are chance; ``correction="holm"`` (compare --correction holm)
  applies Holm's step-down adjustment, which keeps the family-wise error rate at 5 %, and
  decides "tied" on the adjusted p-values. CI-overlap decisions have no p-value and stay as
  they are.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

ALPHA = 0.05
CONFIDENCE = 0.95
WILCOXON_MIN_PAIRS = 6

CORRECTIONS = ("none", "holm")
RULE = (
    "mean ± half-width of the 95 % t-interval over seeds; worse (or better) = significantly "
    "different from the best (p < 0.05): paired t-test over seeds, Wilcoxon signed-rank when ≥ 6 "
    "pairs and Shapiro-Wilk rejects normal differences; CI overlap when < 2 pairs; no "
    "multiple-comparison correction"
)


def rule(correction: str = "none") -> str:
    """The caption's statement of the rules, for this multiple-comparison correction."""
    if correction == "holm":
        return RULE.replace(
            "no multiple-comparison correction",
            "p-values Holm-adjusted over the comparisons with the best (family-wise error 5 %)",
        )
    return RULE


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None entries are not tests and stay None).

    With the m p-values sorted ascending, p(1) <= ... <= p(m): adjusted p(i) =
    max over j <= i of min(1, (m - j + 1) · p(j)). Rejecting where adjusted p < α keeps the
    family-wise error rate at α (Holm 1979).
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


Bounds = tuple[float, float] | None  # a metric's range (store.names.metric_range); None: unbounded


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None  # sample std (ddof = 1); None when n < 2
    ci_low: float | None  # 95 % t-interval, clipped to the metric's range; None when n < 2
    ci_high: float | None
    min: float
    max: float
    clipped: bool = False  # the t-interval reached past the range and was cut at its bound

    @property
    def half_width(self) -> float | None:
        """mean ± this is the interval; None when there is none or it was clipped (asymmetric)."""
        return None if self.ci_high is None or self.clipped else self.ci_high - self.mean


def clip(low: float, high: float, bounds: Bounds) -> tuple[float, float, bool]:
    """(low, high) cut to `bounds`, and whether anything was cut."""
    if bounds is None:
        return low, high, False
    lo, hi = max(low, bounds[0]), min(high, bounds[1])
    return lo, hi, (lo, hi) != (low, high)


@dataclass(frozen=True)
class PairedTest:
    test: str  # "paired t-test" | "Wilcoxon" | "CI overlap" | "none"
    n_pairs: int
    p_value: float | None
    mean_diff: float | None  # mean of best - other over the pairs
    tied: bool | None  # None = cannot tell (too few runs)
    p_adjusted: float | None = None  # after a multiple-comparison correction (``tied`` uses it)


def t_quantile(q: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(q, df))


def summarize(values: Sequence[float], bounds: Bounds = None) -> Summary:
    """n, mean, std, 95 % t-interval (clipped to `bounds`), min, max of one group's values."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("summarize() needs at least one value")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return Summary(n, mean, None, None, None, min(xs), max(xs))
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    low, high, clipped = clip(mean - half, mean + half, bounds)
    return Summary(n, mean, std, low, high, min(xs), max(xs), clipped)


def choose_test(diffs: Sequence[float]) -> str:
    """The paired test for these differences (see the module docstring for the rule)."""
    if len(diffs) < 2:
        return "none"
    if len(diffs) >= WILCOXON_MIN_PAIRS and len(set(diffs)) > 1:
        from scipy import stats

        if float(stats.shapiro(diffs).pvalue) < ALPHA:
            return "Wilcoxon"
    return "paired t-test"


def paired_test(
    best: Mapping[Hashable, float], other: Mapping[Hashable, float], alpha: float = ALPHA
) -> PairedTest:
    """Compare a group with the best one on their shared pairing keys (e.g. seeds)."""
    keys = [k for k in best if k in other]
    diffs = [float(best[k]) - float(other[k]) for k in keys]
    n = len(diffs)
    if n < 2:
        return _overlap(list(best.values()), list(other.values()), n)
    mean_diff = math.fsum(diffs) / n
    test = choose_test(diffs)
    if all(d == diffs[0] for d in diffs):  # no spread: the tests divide by zero
        p = 1.0 if diffs[0] == 0 else 0.0
        return PairedTest(test, n, p, mean_diff, p >= alpha)
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "Wilcoxon":
            p = float(stats.wilcoxon(diffs).pvalue)
        else:
            p = float(stats.ttest_1samp(diffs, 0.0).pvalue)  # = ttest_rel(best, other)
    if math.isnan(p):
        p = 1.0
    return PairedTest(test, n, p, mean_diff, p >= alpha)


def _overlap(best: Sequence[float], other: Sequence[float], n_pairs: int) -> PairedTest:
    if len(best) < 2 or len(other) < 2:
        return PairedTest("none", n_pairs, None, None, None)
    a, b = summarize(best), summarize(other)
    assert a.ci_low is not None and a.ci_high is not None
    assert b.ci_low is not None and b.ci_high is not None
    tied = a.ci_low <= b.ci_high and b.ci_low <= a.ci_high
    return PairedTest("CI overlap", n_pairs, None, a.mean - b.mean, tied)


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points (cost, metric) no other point beats on both (lower cost, better
    metric), ordered by cost."""
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front: list[int] = []
    best_so_far = -math.inf
    for i in order:
        score = sign * points[i][1]
        if score > best_so_far:
            front.append(i)
            best_so_far = score
    return front

"""attnbench.analysis.stats against numbers computed by hand.

Closed forms used (no scipy in the expectations):
- Student t with 2 degrees of freedom: CDF F(t) = 1/2 + t / (2 sqrt(t² + 2)), so the two-sided
  p-value is 1 - |t| / sqrt(t² + 2) and the 0.975 quantile solves t / sqrt(t² + 2) = 0.95:
  t² = 0.9025 · 2 / 0.0975, t = 4.302652...
- Student t with 1 degree of freedom (Cauchy): the 0.975 quantile is tan(0.475 π) = 12.7062...
- Exact Wilcoxon signed-rank, n pairs all of one sign: two-sided p = 2 / 2ⁿ.
"""

from __future__ import annotations

import math

import pytest

from attnbench.analysis import stats

T2_975 = math.sqrt(0.9025 * 2 / 0.0975)  # 4.3026527...
T1_975 = math.tan(0.475 * math.pi)  # 12.7062047...


def p_df2(t: float) -> float:
    return 1 - abs(t) / math.sqrt(t * t + 2)


def test_t_quantiles_match_the_closed_forms() -> None:
    assert abs(T2_975 - 4.302652729911275) < 1e-9  # the table value 4.303
    assert stats.t_quantile(0.975, 2) == pytest.approx(T2_975, rel=1e-9)
    assert stats.t_quantile(0.975, 1) == pytest.approx(T1_975, rel=1e-9)


def test_summary_of_three_values() -> None:
    s = stats.summarize([0.8, 0.9, 1.0])
    assert s.n == 3
    assert s.mean == pytest.approx(0.9)
    assert s.std == pytest.approx(0.1)  # sqrt((0.01 + 0 + 0.01) / 2)
    half = T2_975 * 0.1 / math.sqrt(3)  # 0.248414...
    assert half == pytest.approx(0.2484138, abs=1e-6)
    assert s.ci_low == pytest.approx(0.9 - half)
    assert s.ci_high == pytest.approx(0.9 + half)
    assert s.half_width == pytest.approx(half)
    assert (s.min, s.max) == (0.8, 1.0)


def test_summary_of_one_value_has_no_spread() -> None:
    s = stats.summarize([0.7])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high, s.half_width) == (
        1,
        0.7,
        None,
        None,
        None,
        None,
    )


def test_paired_t_test_tied() -> None:
    # differences best - other: 0.1, 0.2, 0.3 -> mean 0.2, sd 0.1, t = 0.2 / (0.1 / √3) = 2√3
    best = {0: 0.9, 1: 0.8, 2: 0.7}
    other = {0: 0.8, 1: 0.6, 2: 0.4}
    r = stats.paired_test(best, other)
    assert r.test == "paired t-test" and r.n_pairs == 3
    assert r.mean_diff == pytest.approx(0.2)
    assert r.p_value == pytest.approx(p_df2(2 * math.sqrt(3)), abs=1e-9)  # 0.074180
    assert r.p_value == pytest.approx(0.074180, abs=1e-6)
    assert r.tied is True


def test_paired_t_test_significant() -> None:
    # differences 0.10, 0.11, 0.12 -> mean 0.11, sd 0.01, t = 0.11 √3 / 0.01 = 19.0526
    r = stats.paired_test({0: 0.90, 1: 0.91, 2: 0.92}, {0: 0.80, 1: 0.80, 2: 0.80})
    t = 0.11 * math.sqrt(3) / 0.01
    assert r.p_value == pytest.approx(p_df2(t), abs=1e-9)  # 0.002743
    assert r.p_value == pytest.approx(0.002743, abs=1e-6)
    assert r.tied is False


def test_pairs_only_on_shared_seeds() -> None:
    # seed 3 exists only in `best`, seed 9 only in `other`: the same three pairs as above
    best = {0: 0.90, 1: 0.91, 2: 0.92, 3: 0.0}
    other = {0: 0.80, 1: 0.80, 2: 0.80, 9: 1.0}
    r = stats.paired_test(best, other)
    assert r.n_pairs == 3
    assert r.p_value == pytest.approx(p_df2(0.11 * math.sqrt(3) / 0.01), abs=1e-9)


def test_wilcoxon_for_six_non_normal_differences() -> None:
    # one huge difference among small ones: Shapiro-Wilk rejects normality -> Wilcoxon, all six
    # differences positive -> exact two-sided p = 2 / 2**6 = 0.03125 (the t-test would say p ~ 0.29)
    diffs = [0.010, 0.012, 0.014, 0.016, 0.018, 0.500]
    best = {i: 0.5 + d for i, d in enumerate(diffs)}
    other = {i: 0.5 for i in range(6)}
    r = stats.paired_test(best, other)
    assert r.test == "Wilcoxon"
    assert r.p_value == pytest.approx(2 / 2**6)
    assert r.tied is False
    mean = sum(diffs) / 6
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 5)
    assert mean / (sd / math.sqrt(6)) == pytest.approx(1.17, abs=0.01)  # t: not significant


def test_t_test_for_six_normal_looking_differences() -> None:
    diffs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
    assert stats.choose_test(diffs) == "paired t-test"
    assert stats.choose_test(diffs[:4] + [0.9]) == "paired t-test"  # < 6 pairs: always the t-test
    assert stats.choose_test(diffs[:5] + [0.01, 0.9]) == "Wilcoxon"


def test_identical_and_constant_differences() -> None:
    same = stats.paired_test({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert same.p_value == 1.0 and same.tied is True
    shifted = stats.paired_test({0: 0.75, 1: 0.625}, {0: 0.5, 1: 0.375})  # exactly +0.25 twice
    assert shifted.p_value == 0.0 and shifted.tied is False


def test_fewer_than_two_pairs_falls_back_to_ci_overlap() -> None:
    # disjoint seeds: no pairs. best CI: 0.91 ± 12.706 * 0.01414 / √2 = 0.91 ± 0.1271
    best = {0: 0.90, 1: 0.92}
    far = {2: 0.50, 3: 0.52}  # CI 0.51 ± 0.1271: [0.383, 0.637] vs [0.783, 1.037] -> no overlap
    near = {2: 0.80, 3: 0.82}  # CI [0.683, 0.937]: overlaps
    assert T1_975 * math.sqrt(0.0002) / math.sqrt(2) == pytest.approx(0.12706, abs=1e-5)
    r_far, r_near = stats.paired_test(best, far), stats.paired_test(best, near)
    assert (r_far.test, r_far.n_pairs, r_far.p_value, r_far.tied) == ("CI overlap", 0, None, False)
    assert r_near.tied is True
    single = stats.paired_test(best, {5: 0.1})
    assert single.tied is None and single.test == "none"


def test_pareto_front() -> None:
    points = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.9), (4.0, 0.8)]
    assert stats.pareto_front(points) == [0, 1, 3]
    assert stats.pareto_front([(1.0, 3.0), (2.0, 1.0)], higher_is_better=False) == [0, 1]


def test_holm_adjusts_step_down_by_hand() -> None:
    # sorted: .005 (x4 = .02), .01 (x3 = .03), .03 (x2 = .06), .04 (x1 = .04 -> max .06)
    got = stats.holm([0.01, 0.04, None, 0.03, 0.005])
    assert got == [pytest.approx(0.03), pytest.approx(0.06), None, pytest.approx(0.06),
                   pytest.approx(0.02)]
    assert stats.holm([0.5, 0.9]) == [pytest.approx(1.0), pytest.approx(1.0)]  # capped at 1
    assert stats.holm([]) == [] and stats.holm([None]) == [None]
    assert stats.holm([0.02]) == [pytest.approx(0.02)]  # one test: unchanged

"""Bounded intervals, effect sizes and the tied / inconclusive rule, against hand-computed values
and scipy (t with 2 degrees of freedom: 0.975 quantile √(0.9025 · 2 / 0.0975) = 4.302653)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from attnbench.analysis import effects, stats
from attnbench.analysis.comparison import compare_runs
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.names import metric_range
from attnbench.store.tracker import RunInfo

T2_975 = math.sqrt(0.9025 * 2 / 0.0975)


def test_metric_ranges_live_next_to_the_directions() -> None:
    unit = ["test/acc", "val/token_acc", "test/exact_match", "test/f1", "test/precision",
            "val/recall", "attn/alignment", "attn/alignment_pm1"]
    assert {m: metric_range(m) for m in unit} == dict.fromkeys(unit, (0.0, 1.0))
    assert metric_range("test/bleu") == metric_range("test/bleu_tok") == (0.0, 100.0)
    for unbounded in ("test/loss", "cost/train_s", "cost/params", "attn/entropy", "cost/steps"):
        assert metric_range(unbounded) is None, unbounded


def test_multihead_like_interval_stays_inside_0_1() -> None:
    """[0.449, 0.82, 0.99]: mean 0.753, sd √(0.153074 / 2) = 0.276653, half-width
    4.302653 · 0.276653 / √3 = 0.687246, so the t-interval [0.0658, 1.4402] leaves [0, 1]."""
    values = [0.449, 0.82, 0.99]
    raw = stats.summarize(values)
    assert raw.ci_high == pytest.approx(0.753 + 0.687246, abs=1e-5)
    assert raw.ci_high > 1 and not raw.clipped
    s = stats.summarize(values, (0.0, 1.0))
    assert s.clipped and s.ci_high == 1.0
    assert s.ci_low == pytest.approx(0.753 - 0.687246, abs=1e-5)
    assert 0.0 <= s.ci_low <= s.mean <= s.ci_high <= 1.0
    assert s.half_width is None  # no symmetric ± once clipped
    low = stats.summarize([0.0, 0.0, 0.3], (0.0, 1.0))  # mean 0.1, half 0.430 -> low clipped
    assert low.clipped and low.ci_low == 0.0 and low.ci_high == pytest.approx(0.1 + 0.430265, 1e-5)
    inside = stats.summarize([0.5, 0.6, 0.7], (0.0, 1.0))  # 0.6 ± 0.248414: inside
    assert not inside.clipped and inside.half_width == pytest.approx(0.2484138, abs=1e-6)
    bleu = stats.summarize([10.0, 90.0, 95.0], (0.0, 100.0))
    assert bleu.clipped and bleu.ci_low == 0.0 and bleu.ci_high == 100.0


def test_paired_effect_by_hand_and_scipy() -> None:
    """Differences other - reference -0.01, 0.005, -0.01: mean -0.005, sd 0.0086603,
    CI -0.005 ± 4.302653 · 0.0086603 / √3 = ± 0.021514, d_z = -0.005 / 0.0086603 = -0.57735."""
    ref = {0: 0.90, 1: 0.92, 2: 0.94}
    other = {0: 0.89, 1: 0.925, 2: 0.93}
    e = effects.effect(ref, other, (0.0, 1.0))
    assert e is not None and (e.method, e.n) == ("paired", 3)
    assert e.diff == pytest.approx(-0.005)
    half = T2_975 * 0.0086603 / math.sqrt(3)
    assert (e.ci_low, e.ci_high) == (pytest.approx(-0.005 - half, abs=1e-6),
                                     pytest.approx(-0.005 + half, abs=1e-6))
    assert e.d_z == pytest.approx(-1 / math.sqrt(3), abs=1e-6)
    ci = sps.ttest_1samp([-0.01, 0.005, -0.01], 0.0).confidence_interval(0.95)
    assert (e.ci_low, e.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    same = effects.effect(ref, {k: v - 0.01 for k, v in ref.items()})  # no spread: d_z undefined
    assert same is not None and same.d_z is None and same.ci_low == pytest.approx(-0.01)


def test_welch_effect_when_runs_do_not_pair() -> None:
    """Reference 0.90, 0.92, 0.94 (var 4e-4), other 0.80, 0.85 (var 1.25e-3), no shared key:
    diff -0.095, se √(4e-4/3 + 1.25e-3/2) = 0.027538, Welch-Satterthwaite df
    se⁴ / ((4e-4/3)² / 2 + (1.25e-3/2)² / 1) = 1.4394."""
    ref = {0: 0.90, 1: 0.92, 2: 0.94}
    other = {10: 0.80, 11: 0.85}
    e = effects.effect(ref, other)
    assert e is not None and (e.method, e.n, e.d_z) == ("Welch", 2, None)
    se2 = 4e-4 / 3 + 1.25e-3 / 2
    df = se2**2 / ((4e-4 / 3) ** 2 / 2 + (1.25e-3 / 2) ** 2 / 1)
    assert df == pytest.approx(1.4394, abs=1e-4)
    half = sps.t.ppf(0.975, df) * math.sqrt(se2)
    assert e.diff == pytest.approx(-0.095)
    assert e.ci_low == pytest.approx(-0.095 - half) and e.ci_high == pytest.approx(-0.095 + half)
    assert effects.effect({0: 0.9}, other) is None  # one run: no interval of any kind


def test_difference_interval_is_clipped_to_the_range_width() -> None:
    """Diffs 1, -1, 1: mean 1/3, sd 1.1547, half 2.8685: [-2.535, 3.202] -> [-1, 1]."""
    e = effects.effect({0: 0.0, 1: 1.0, 2: 0.0}, {0: 1.0, 1: 0.0, 2: 1.0}, (0.0, 1.0))
    assert e is not None and (e.ci_low, e.ci_high) == (-1.0, 1.0)
    wide = effects.effect({0: 0.0, 1: 1.0, 2: 0.0}, {0: 1.0, 1: 0.0, 2: 1.0})
    assert wide is not None and wide.ci_high == pytest.approx(1 / 3 + T2_975 * 1.1547005 / 3**0.5)


def test_default_margin() -> None:
    assert effects.default_margin((0.0, 1.0), 0.5) == pytest.approx(0.02)
    assert effects.default_margin((0.0, 100.0), 30.0) == pytest.approx(2.0)
    assert effects.default_margin(None, -250.0) == pytest.approx(5.0)  # 2 % of |mean|


def run(i: int, attention: str, seed: int, value: float) -> RunInfo:
    return RunInfo(f"r{i}", "x", "FINISHED", "1",
                   {"attention": attention, "seed": str(seed), "attnbench.primary_metric": "acc"},
                   {"attention.name": attention, "seed": str(seed)}, {"test/acc": value}, i, i)


def compared(values: dict[str, list[float]], margin: float | None = None):  # noqa: ANN201
    runs = [run(10 * k + s, name, s, v) for k, (name, vs) in enumerate(values.items())
            for s, v in enumerate(vs)]
    return compare_runs(Selection(runs, "t", "t"), margin=margin)


def test_tied_only_inside_the_margin_else_inconclusive() -> None:
    """Hand-computed cases (t with 2 df):
    - `close`: diffs -0.004, 0.002, -0.001: mean -0.001, sd 0.003, t = -0.57735,
      p = 1 - 0.57735 / √2.3333 = 0.622; CI ± 4.302653 · 0.003 / √3 = ± 0.007453, inside ± 0.02:
      tied.
    - `far`: reference 0.99, 0.995, 0.99 and 0.449, 0.82, 0.99: diffs -0.541, -0.175, 0: mean
      -0.238667, sd 0.276062, t = -1.497426, p = 1 - 1.497426 / √4.242286 = 0.272981: not
      significant, but CI -0.2387 ± 0.6858 = [-0.9244, 0.4471] reaches far past ± 0.02:
      inconclusive (n=3).
    """
    comp = compared({"best": [0.99, 0.995, 0.99], "close": [0.986, 0.997, 0.989],
                     "far": [0.449, 0.82, 0.99]})
    marks = {g.label: (g.status, g.reason) for g in comp.groups}
    assert marks == {"best": ("best", ""), "close": ("tied", ""), "far": ("inconclusive", "n=3")}
    groups = {g.label: g for g in comp.groups}
    assert groups["close"].test.p_value == pytest.approx(1 - (1 / 3**0.5) / (7 / 3) ** 0.5, 1e-6)
    far = groups["far"]
    assert far.test.p_value == pytest.approx(0.272981, abs=1e-6)
    assert far.effect.diff == pytest.approx(-0.238667, abs=1e-6)
    assert far.effect.ci_high - far.effect.diff == pytest.approx(T2_975 * 0.276062 / 3**0.5, 1e-5)
    assert "inconclusive (n=K)" in comp.caption and "± 0.02 (default" in comp.caption
    # a margin wider than the whole interval (|-0.9244|, 0.4471) makes `far` a tie; 0.6 does not
    assert {g.label: g.status for g in compared(
        {"best": [0.99, 0.995, 0.99], "far": [0.449, 0.82, 0.99]}, margin=0.93).groups
    }["far"] == "tied"
    assert compared({"best": [0.99, 0.995, 0.99], "far": [0.449, 0.82, 0.99]},
                    margin=0.6).groups[1].status == "inconclusive"
    assert "± 0.93 (--margin)" in compared({"best": [0.99, 0.995, 0.99],
                                            "far": [0.449, 0.82, 0.99]}, margin=0.93).caption
    with pytest.raises(ConfigError, match="--margin -1"):
        compared({"best": [0.9, 0.9]}, margin=-1.0)


def test_significant_stays_worse_and_one_run_stays_unknown() -> None:
    comp = compared({"best": [0.90, 0.92, 0.94], "low": [0.80, 0.81, 0.83], "one": [0.5]})
    marks = {g.label: (g.status, g.reason) for g in comp.groups}
    assert marks["low"] == ("worse", "") and marks["one"] == ("?", "n<2")

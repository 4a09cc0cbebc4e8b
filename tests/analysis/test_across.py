"""`compare --across task`: average ranks, Friedman, Nemenyi and the critical difference against
hand-computed values, scipy, scikit-posthocs and Demšar's (2006) table; the summary on fake runs
and on a store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats as sps

from attnbench.analysis import across
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.tracker import RunInfo
from tests.analysis.test_compare_grouping import one_line_error
from tests.conftest import tracker_for


def test_average_ranks_by_hand() -> None:
    """Rows are tasks, columns variants; rank 1 = highest; ties share the mean rank.
    Row 1: 1, 2, 3; row 2: 2, 1, 3; row 3 (a tie at the top): 1.5, 1.5, 3."""
    matrix = [[0.9, 0.8, 0.7], [0.8, 0.9, 0.7], [0.9, 0.9, 0.1]]
    assert across.average_ranks(matrix) == pytest.approx([4.5 / 3, 4.5 / 3, 3.0])


def test_friedman_matches_the_closed_form_and_scipy() -> None:
    """No ties: χ² = 12 N / (k (k+1)) Σ R̄² - 3 N (k+1). N = 3 tasks, k = 4 variants with average
    ranks 4/3, 7/3, 7/3, 4: 1.8 · 28.6667 - 45 = 6.6, p = P(χ²₃ > 6.6) = 0.085801."""
    matrix = [[0.95, 0.92, 0.90, 0.10], [0.80, 0.60, 0.85, 0.0], [0.30, 0.28, 0.25, 0.05]]
    chi2, p = across.friedman(matrix)
    assert chi2 == pytest.approx(6.6)
    # χ² with 3 df: P(χ² > x) = erfc(√(x/2)) + √(2x/π) e^(-x/2)
    closed = math.erfc(math.sqrt(3.3)) + math.sqrt(13.2 / math.pi) * math.exp(-3.3)
    assert p == pytest.approx(closed)
    assert p == pytest.approx(0.085801, abs=1e-6)
    columns = [[row[j] for row in matrix] for j in range(4)]
    ref = sps.friedmanchisquare(*columns)
    assert (chi2, p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    assert across.friedman(matrix[:1]) is None  # one task
    assert across.friedman([row[:2] for row in matrix]) is None  # two variants
    assert across.friedman([[0.5, 0.5, 0.5], [0.2, 0.2, 0.2]]) is None  # all tied


# Demšar (2006), Table 5(a): q_0.05 of the two-tailed Nemenyi test for k = 2..10
DEMSAR_Q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]


def test_critical_difference_matches_demsar_table() -> None:
    for k, q in enumerate(DEMSAR_Q05, start=2):
        cd = across.critical_difference(k, 6)
        assert cd / math.sqrt(k * (k + 1) / 36) == pytest.approx(q, abs=1.5e-3), k
    # the suite's shape: 10 variants on 4 tasks need a gap of 3.164 · √(110 / 24) = 6.77 ranks
    assert across.critical_difference(10, 4) == pytest.approx(6.774, abs=2e-3)


def test_nemenyi_is_scikit_posthocs_and_agrees_with_the_critical_difference() -> None:
    import numpy as np
    import pandas as pd
    import scikit_posthocs as sp

    rng = np.random.default_rng(0)
    matrix = rng.random((12, 5)).tolist()
    labels = list("abcde")
    got = across.nemenyi(matrix, labels)
    ref = sp.posthoc_nemenyi_friedman(pd.DataFrame(matrix, columns=labels))
    ranks = dict(zip(labels, across.average_ranks(matrix), strict=True))
    cd = across.critical_difference(5, 12)
    for a in labels:
        for b in labels:
            assert got[a][b] == pytest.approx(float(ref.loc[a, b]))
            if a != b:  # p < 0.05 exactly when the ranks are further apart than CD
                assert (got[a][b] < 0.05) == (abs(ranks[a] - ranks[b]) > cd), (a, b)


# variant -> task -> mean (two seeds at mean ∓ spread); `linear` ran on recall only
MEANS = {
    "scaled": {"assoc_recall": 0.95, "reverse": 0.80, "translation": 30.0},
    "additive": {"assoc_recall": 0.92, "reverse": 0.60, "translation": 28.0},
    "dot": {"assoc_recall": 0.90, "reverse": 0.85, "translation": 25.0},
    "none": {"assoc_recall": 0.10, "reverse": 0.0, "translation": 5.0},
    "linear": {"assoc_recall": 0.50},
}
PRIMARY = {"assoc_recall": "acc", "reverse": "exact_match", "translation": "bleu"}


def spread(task: str, mean: float) -> float:
    return 0.0 if mean == 0 else 1.0 if task == "translation" else 0.01


def fake_runs() -> list[RunInfo]:
    runs = []
    for attention, tasks in MEANS.items():
        for task, mean in tasks.items():
            for seed, sign in enumerate((-1, 1)):
                i = len(runs)
                tags = {"attention": attention, "backbone": "transformer", "task": task,
                        "seed": str(seed), "attnbench.primary_metric": PRIMARY[task]}
                params = {"attention.name": attention, "task.name": task, "seed": str(seed)}
                value = mean + sign * spread(task, mean)
                runs.append(RunInfo(f"r{i}", "x", "FINISHED", "1", tags, params,
                                    {f"test/{PRIMARY[task]}": value, "cost/steps": 100.0}, i, i))
    evaluation = runs[0]  # scaled on assoc_recall, scored again: not a seed
    runs.append(RunInfo("eval", "x", "FINISHED", "1",
                        {**evaluation.tags, "attnbench.kind": "evaluate",
                         "attnbench.evaluates": evaluation.run_id},
                        evaluation.params, {"test/acc": 0.0}, 999, 999))
    return runs


def test_across_summary_on_fake_runs() -> None:
    """Ranks per task: recall scaled 1, additive 2, dot 3, none 4; reverse dot 1, scaled 2,
    additive 3, none 4; translation scaled 1, additive 2, dot 3, none 4: average ranks 4/3, 7/3,
    7/3, 4 (the matrix of the Friedman test above: χ² = 6.6). LRA average, BLEU / 100:
    scaled (0.95 + 0.80 + 0.30) / 3 = 0.683333."""
    a = across.across_runs(Selection(fake_runs(), "experiment suite", "suite"))
    assert a.by == ["attention"] and a.columns == ["assoc_recall", "reverse", "translation"]
    assert a.metrics == {"assoc_recall": "test/acc", "reverse": "test/exact_match",
                         "translation": "test/bleu"}
    assert [r.label for r in a.rows] == ["scaled", "additive", "dot", "none", "linear"]
    ranks = {r.label: r.rank for r in a.rows}
    assert ranks == {"scaled": pytest.approx(4 / 3), "additive": pytest.approx(7 / 3),
                     "dot": pytest.approx(7 / 3), "none": pytest.approx(4.0), "linear": None}
    averages = {r.label: r.average for r in a.rows}
    assert averages["scaled"] == pytest.approx((0.95 + 0.80 + 0.30) / 3)
    assert averages["none"] == pytest.approx((0.10 + 0.0 + 0.05) / 3)
    assert averages["linear"] is None
    assert a.friedman == (pytest.approx(6.6), pytest.approx(0.085801, abs=1e-6))
    assert a.cd == pytest.approx(2.569 * math.sqrt(20 / 18), abs=2e-3)  # 2.708
    assert a.different_pairs == []  # scaled vs none: 2.667 ranks apart, under CD
    cell = a.rows[0].cells["translation"].summary  # 29, 31: 30 ± 12.7062 · 1.41421 / √2
    assert (cell.n, cell.mean) == (2, pytest.approx(30.0))
    assert cell.ci_high == pytest.approx(30 + 12.7062047, abs=1e-5) and not cell.clipped
    assert "not ranked (missing a task): linear" in a.caption
    assert "1 evaluate/reproduce run(s) left out (not seeds)" in a.caption
    assert "Friedman χ² = 6.600, p = 0.086" in a.caption


def one_seed_runs(means: dict[str, dict[str, float]]) -> list[RunInfo]:
    return [
        RunInfo(f"{a}-{t}", "x", "FINISHED", "1",
                {"attention": a, "task": t, "seed": "0", "attnbench.primary_metric": "acc"},
                {"attention.name": a, "task.name": t, "seed": "0"}, {"test/acc": v}, 0, 0)
        for a, tasks in means.items() for t, v in tasks.items()
    ]


def test_nemenyi_pairs_only_after_friedman_rejects() -> None:
    """a > b > c on 6 tasks: ranks 1, 2, 3; χ² = 12·6/(3·4) · 14 - 3·6·4 = 12, p = e^(-6) =
    0.00248 (χ² with 2 df); CD = 2.343 · √(12 / 36) = 1.353, so only a vs c (2 ranks) differ."""
    tasks = [f"t{i}" for i in range(6)]
    means = {"a": dict.fromkeys(tasks, 0.9), "b": dict.fromkeys(tasks, 0.8),
             "c": dict.fromkeys(tasks, 0.7)}
    a = across.across_runs(Selection(one_seed_runs(means), "t", "t"))
    assert a.friedman == (pytest.approx(12.0), pytest.approx(math.exp(-6)))
    assert a.cd == pytest.approx(2.343 * math.sqrt(1 / 3), abs=1e-3)
    assert [(x, y) for x, y, _ in a.different_pairs] == [("a", "c")]
    assert a.nemenyi["a"]["c"] == pytest.approx(0.0015429, abs=1e-6)  # q = 2 / √(1/3)
    assert "pairs that differ: a > c (p = 0.002)" in a.caption


def test_nemenyi_is_not_read_when_friedman_does_not_reject() -> None:
    """One seed of the suite (measured): Friedman p = 0.058, yet Nemenyi alone would call
    additive > none (p = 0.043): not reported."""
    measured = {  # assoc_recall, listops, reverse, sort
        "additive": (0.565, 0.255, 0.965, 0.515), "scaled": (0.9894, 0.225, 1.0, 0.025),
        "multihead": (0.3862, 0.22, 1.0, 0.35), "cosine": (0.9994, 0.2, 1.0, 0.0),
        "general": (0.8325, 0.235, 0.07, 0.0), "linear": (0.1113, 0.2, 0.925, 0.505),
        "dot": (0.2013, 0.23, 0.955, 0.0), "local": (0.0488, 0.175, 1.0, 0.345),
        "lowrank": (0.06, 0.175, 0.005, 0.335), "none": (0.025, 0.135, 0.0, 0.0),
    }
    tasks = ("assoc_recall", "listops", "reverse", "sort")
    runs = one_seed_runs({k: dict(zip(tasks, v, strict=True)) for k, v in measured.items()})
    a = across.across_runs(Selection(runs, "t", "t"))
    assert a.friedman[1] == pytest.approx(0.058, abs=5e-4) and not a.rejected
    assert a.nemenyi["additive"]["none"] == pytest.approx(0.043, abs=5e-4)
    assert a.different_pairs == []
    assert "not read, as Friedman did not reject" in a.caption


def test_across_refusals() -> None:
    runs = fake_runs()
    one_task = [r for r in runs if r.tags["task"] == "reverse"]  # (the evaluation is recall's)
    with pytest.raises(ConfigError, match="needs runs of at least 2 tasks"):
        across.across_runs(Selection(one_task, "t", "t"))
    with pytest.raises(ConfigError, match="task is the column of --across task"):
        across.across_runs(Selection(runs, "t", "t"), by=["attention", "task"])


def test_pooling_two_tasks_in_one_group_points_to_across() -> None:
    from attnbench.analysis.comparison import compare_runs

    runs = [r for r in fake_runs() if r.tags["task"] == "assoc_recall"]
    for r in list(runs):  # the same variants on a second task scored by accuracy
        runs.append(RunInfo(r.run_id + "b", "x", "FINISHED", "1", {**r.tags, "task": "listops"},
                            {**r.params, "task.name": "listops"}, r.metrics, 100, 100))
    comp = compare_runs(Selection(runs, "t", "t"), by=["attention"])
    assert comp.pooled == {"task.name": 2}
    assert comp.pooled_message.endswith("or summarise over tasks with --across task")


def fill_suite(runs_dir: Path) -> str:
    """The fake runs as a sweep in a store, plus an evaluate run that must not count."""
    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("suite")
    keys = json.dumps(["attention", "task", "seed"])
    parent = tracker.start_run(exp, "sweep-suite",
                               {"attnbench.kind": "sweep", "attnbench.sweep_keys": keys})
    for r in fake_runs():
        run = tracker.start_run(exp, r.run_id, r.tags, parent)
        tracker.log_params(run, r.params)
        tracker.log_metrics(run, r.metrics, 1)
        tracker.end_run(run, "FINISHED")
    tracker.end_run(parent, "FINISHED")
    return parent


def test_compare_across_task_writes_tables_and_the_cd_diagram(cli, runs_dir: Path) -> None:
    parent = fill_suite(runs_dir)
    result = cli("compare", "--across", "task", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["across"] == "task" and doc["sweep_run_id"] == parent
    assert doc["friedman"]["p_value"] == pytest.approx(0.085801, abs=1e-6)
    assert (doc["friedman"]["n_blocks"], doc["friedman"]["k"]) == (3, 4)
    assert [r["attention"] for r in doc["rows"]] == ["scaled", "additive", "dot", "none", "linear"]
    assert doc["rows"][0]["avg_rank"] == pytest.approx(4 / 3)
    assert doc["rows"][0]["average"] == pytest.approx(0.683333, abs=1e-6)
    assert doc["critical_difference"] == pytest.approx(2.708, abs=2e-3)
    folder = runs_dir / "reports" / "suite-sweep-suite" / "across-task"
    for name in ("table.md", "table.csv", "table.json", "table.tex", "cd_diagram.png"):
        assert (folder / name).stat().st_size > 0, name
    md = (folder / "table.md").read_text()
    assert "| attention | assoc_recall (acc) | reverse (exact_match) | translation (bleu) |" in md
    # 0.95 ± 12.7062 · 0.014142 / √2 = ± 0.12706 leaves [0, 1]: clipped, shown as [low, high]
    assert "| scaled | 0.9500 [0.8229, 1.0000] (n=2) |" in md
    header = (folder / "table.csv").read_text().splitlines()[0]
    assert header.startswith("attention,assoc_recall_n,assoc_recall_mean,assoc_recall_ci_low")
    assert header.endswith("avg_rank,average")
    logged = {a.path for a in tracker_for(runs_dir).client.list_artifacts(parent,
                                                                          "report/across-task")}
    assert "report/across-task/cd_diagram.png" in logged


def test_pooling_tasks_points_to_across(cli, runs_dir: Path) -> None:
    fill_suite(runs_dir)
    line = one_line_error(cli("compare", "--by", "attention"))  # acc, bleu, exact_match
    assert "different primary metrics" in line and "--across task" in line
    line = one_line_error(cli("compare", "--across", "task", "--baseline", "attention=none"))
    assert "--baseline does not apply to --across" in line
    line = one_line_error(cli("compare", "--across", "task", "--margin", "0.1"))
    assert "--margin does not apply to --across" in line
    assert not (runs_dir / "reports").exists()

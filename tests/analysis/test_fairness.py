"""What a fair comparison holds: only training runs are seeds, intervals stay in the metric's
range in every output, and budgets (steps, parameters) are shown and warned about."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from attnbench.analysis import budget, plots
from attnbench.analysis.comparison import compare_runs
from attnbench.analysis.render import RENDER, write_plots
from attnbench.analysis.select import Selection
from attnbench.store.tracker import RunInfo
from tests.conftest import all_runs


def run(i: int, attention: str, seed: int, value: float, tags: dict | None = None,
        metrics: dict | None = None) -> RunInfo:
    return RunInfo(
        f"r{i}", "x", "FINISHED", "1",
        {"attention": attention, "seed": str(seed), "attnbench.primary_metric": "acc",
         **(tags or {})},
        {"attention.name": attention, "seed": str(seed)},
        {"test/acc": value, **(metrics or {})}, i, i,
    )


def test_evaluate_and_reproduce_runs_are_not_seeds() -> None:
    """Two evaluations of dot's seed-0 run (new kind tag), a reproduction and an evaluation from
    an older store (only the evaluates / reproduces tags): none joins a group or its n."""
    runs = [run(i, "dot", i, v) for i, v in enumerate([0.80, 0.86])]
    runs += [run(10 + i, "scaled", i, v) for i, v in enumerate([0.90, 0.94])]
    reruns = [
        run(20, "dot", 0, 0.99, {"attnbench.kind": "evaluate", "attnbench.evaluates": "r0"}),
        run(21, "dot", 0, 0.99, {"attnbench.kind": "evaluate", "attnbench.evaluates": "r0"}),
        run(22, "dot", 1, 0.10, {"reproduces": "r1"}),
        run(23, "scaled", 0, 0.10, {"attnbench.evaluates": "r10"}),
    ]
    comp = compare_runs(Selection(runs + reruns, "t", "t"))
    groups = {g.label: g for g in comp.groups}
    assert groups["dot"].summary.n == 2 and groups["dot"].summary.mean == pytest.approx(0.83)
    assert groups["scaled"].summary.n == 2 and groups["scaled"].summary.mean == pytest.approx(0.92)
    assert {r.run_id for r in comp.reruns} == {"r20", "r21", "r22", "r23"}
    assert comp.excluded == 0 and comp.duplicates == 0
    assert "4 evaluate/reproduce run(s) left out (not seeds; --reruns lists them)" in comp.caption
    comp.show_reruns = True
    doc = json.loads(RENDER["json"](comp))
    assert [(r["run_id"], r["kind"], r["of_run"]) for r in doc["reruns"]] == [
        ("r20", "evaluate", "r0"), ("r21", "evaluate", "r0"), ("r22", "reproduce", "r1"),
        ("r23", "evaluate", "r10")]
    assert "evaluate / reproduce runs" in RENDER["markdown"](comp)


@pytest.mark.slow  # ~18 s: trains; the rule itself is tested above, the tag in test_evaluate.py
def test_evaluate_twice_keeps_the_groups_n(cli, runs_dir: Path) -> None:
    """The issue's figure, end to end: two seeds trained, one evaluated twice: n stays 2."""
    assert cli("sweep", "attention=scaled", "seed=0,1", "hydra/launcher=basic").exit_code == 0
    first = next(r for r in all_runs(runs_dir) if r.tags.get("seed") == "0")
    for _ in range(2):
        assert cli("evaluate", first.run_id, "--runs-dir", str(runs_dir)).exit_code == 0
    experiment = ["-e", "assoc_recall", "--no-plots"]
    result = cli("compare", *experiment, "--format", "json", "--reruns")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (group,) = doc["groups"]
    assert group["n"] == 2 and group["steps"] == 3.0 and group["stopped_by"] == "max_steps"
    assert [r["of_run"] for r in doc["reruns"]] == [first.run_id] * 2
    assert "reruns" not in json.loads(cli("compare", *experiment, "--format", "json").stdout)


BOUNDED = {"scaled": [0.999, 1.0, 0.995], "multihead": [0.449, 0.82, 0.99],
           "none": [0.0, 0.0, 0.06]}


def test_no_interval_leaves_0_1_in_any_output(tmp_path: Path, monkeypatch) -> None:
    runs = [run(10 * k + s, name, s, v) for k, (name, vs) in enumerate(BOUNDED.items())
            for s, v in enumerate(vs)]
    comp = compare_runs(Selection(runs, "t", "t"))
    for g in comp.groups:
        assert 0.0 <= g.summary.ci_low <= g.summary.ci_high <= 1.0, g.label
        e = g.effect
        assert e is None or -1.0 <= e.ci_low <= e.ci_high <= 1.0
    assert all(g.summary.clipped for g in comp.groups)  # every one reached past a bound
    doc = json.loads(RENDER["json"](comp))
    rows = list(csv.DictReader(io.StringIO(RENDER["csv"](comp))))
    for rec in [*doc["groups"], *rows]:
        low, high = float(rec["ci_low"]), float(rec["ci_high"])
        assert 0.0 <= low <= high <= 1.0
        assert rec["ci_half_width"] in (None, "")  # no mean ± half-width once clipped
        assert rec["ci_clipped"] in (True, "True")
    md = RENDER["markdown"](comp)
    assert "0.7530 [0.0658, 1.0000]" in md  # multihead: 0.753 ± 0.687 cut at 1
    assert "intervals clipped to the metric's range [0, 1]" in md
    drawn = []
    monkeypatch.setattr(plots, "metric_ci", lambda points, *a: drawn.extend(points) or a[1])
    monkeypatch.setattr(plots, "learning_curves", lambda *a: a[1])
    monkeypatch.setattr(plots, "cost_pareto", lambda *a, **k: a[2])

    class NoHistory:
        def metric_history(self, run_id: str, key: str) -> list:
            return []

    write_plots(NoHistory(), comp, tmp_path)
    assert len(drawn) == 3 and all(0.0 <= p.ci[0] <= p.ci[1] <= 1.0 for p in drawn)


def test_budget_warning_rule() -> None:
    """More than 10 % between the smallest and the largest group, in steps or parameters."""
    assert budget.spread({"a": 100.0, "b": 110.0}) is None  # exactly 10 %: within
    assert budget.spread({"a": 100.0, "b": 111.0}) == "100 (a) to 111 (b), +11 %"
    assert budget.spread({"none": 1690.0, "additive": 837.0, "x": None}) == (
        "837 (additive) to 1,690 (none), +102 %")
    line = budget.budget_warning({"a": 100.0, "b": 100.0}, {"a": 1000.0, "b": 1250.0})
    assert line == ("groups differ by more than 10 % in parameters 1,000 (a) to 1,250 (b), "
                    "+25 %: the comparison does not hold the budget or the model size fixed "
                    "(LRA's rule: within 10 %)")
    assert budget.budget_warning({"a": 5.0, "b": None}, {"a": None, "b": None}) is None


def test_steps_and_stopped_by_per_group() -> None:
    capped = {"attnbench.stopped_by": "max_steps"}
    timed = {"attnbench.stopped_by": "max_time"}
    runs = [
        run(0, "none", 0, 0.5, timed, {"cost/steps": 1690.0, "cost/params": 1000.0}),
        run(1, "none", 1, 0.5, timed, {"cost/steps": 1710.0, "cost/params": 1000.0}),
        run(2, "additive", 0, 0.6, timed, {"cost/steps": 837.0, "cost/params": 1050.0}),
        run(3, "additive", 1, 0.6, capped, {"cost/params": 1050.0}),  # older run: no cost/steps
    ]
    for r in runs:  # one setting: the cap (which stopped only run 3) is the same everywhere
        r.params["trainer.max_steps"] = "837"
    comp = compare_runs(Selection(runs, "t", "t"))
    groups = {g.label: g for g in comp.groups}
    assert (groups["none"].steps, groups["none"].stopped_by) == (1700.0, "max_time")
    assert (groups["additive"].steps, groups["additive"].stopped_by) == (837.0,
                                                                        "max_steps/max_time")
    assert comp.budget_warning.startswith(
        "groups differ by more than 10 % in steps 837 (additive) to 1,700 (none), +103 %:")
    assert f"warning: {comp.budget_warning}" in comp.caption
    rec = {r["attention"]: r for r in json.loads(RENDER["json"](comp))["groups"]}
    assert (rec["none"]["steps"], rec["none"]["stopped_by"]) == (1700.0, "max_time")
    assert "| 1,700 (max_time) |" in RENDER["markdown"](comp)
    assert budget.run_steps(run(9, "x", 0, 0.1)) is None  # all epochs, no metric: unknown


def test_compare_warns_once_on_stderr(cli, runs_dir: Path) -> None:
    from tests.analysis.test_compare import fill_store

    fill_store(runs_dir)  # params 3,000 (none) to 5,000 (multihead)
    result = cli("compare", "--no-plots")
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: groups differ")]
    assert warnings == ["warning: groups differ by more than 10 % in parameters 3,000 (none) to "
                        "5,000 (multihead), +67 %: the comparison does not hold the budget or "
                        "the model size fixed (LRA's rule: within 10 %)"]

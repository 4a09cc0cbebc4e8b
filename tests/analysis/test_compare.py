"""`attnbench compare` on a store filled with known metrics (no training).

Expected numbers are worked out by hand in the comments (t with 2 degrees of freedom: two-sided
p = 1 - |t| / sqrt(t² + 2); 0.975 quantile sqrt(0.9025 · 2 / 0.0975) = 4.302653).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from attnbench.analysis.comparison import compare_runs
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.tracker import RunInfo
from tests.conftest import tracker_for

T2_975 = math.sqrt(0.9025 * 2 / 0.0975)

# test/acc per seed 0, 1, 2
VALUES = {
    "scaled": [0.90, 0.92, 0.94],  # best: mean 0.92, sd 0.02
    "multihead": [0.89, 0.925, 0.93],  # diffs .01 -.005 .01: mean .005, sd .0086603, t = 1.0
    "dot": [0.85, 0.86, 0.90],  # diffs .05 .06 .04: mean .05, sd .01, t = 8.6603
    "additive": [0.80, 0.81, 0.83],  # diffs .10 .11 .11: mean .106667, sd .0057735, t = 32
    "none": [0.50, 0.55, 0.60],
}
PARAMS = {"scaled": 4000.0, "multihead": 5000.0, "dot": 4000.0, "additive": 4500.0, "none": 3000.0}
TRAIN_S = {"scaled": 2.0, "multihead": 3.0, "dot": 1.5, "additive": 4.0, "none": 1.0}
ENTROPY = {"scaled": 1.0, "multihead": 2.0, "dot": 0.5, "additive": 1.5}  # + seed; none: no weights
EXPECTED_P = {
    "multihead": 1 - 1 / math.sqrt(3),  # 0.422650
    "dot": 1 - 8.660254 / math.sqrt(75 + 2),  # 0.013072
    "additive": 1 - 32 / math.sqrt(32**2 + 2),  # 0.000975
}


def fill_store(runs_dir: Path) -> tuple[str, list[str]]:
    """A sweep of 5 variants x 3 seeds with the VALUES above, plus one FAILED job."""
    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("toy")
    keys = json.dumps(["attention", "seed"])
    parent = tracker.start_run(
        exp, "sweep-toy", {"attnbench.kind": "sweep", "attnbench.sweep_keys": keys}
    )
    ids = []
    for attention, values in VALUES.items():
        for seed, value in enumerate(values):
            tags = {
                "attention": attention,
                "backbone": "transformer",
                "task": "toy",
                "seed": seed,
                "attnbench.primary_metric": "acc",
            }
            run = tracker.start_run(exp, f"{attention}-transformer-toy-s{seed}", tags, parent)
            tracker.log_params(
                run,
                {
                    "attention.name": attention,
                    "seed": seed,
                    "trainer.lr": 0.003,
                    "runs_dir": f"/somewhere/{attention}",
                },
            )
            for step in (10, 20, 30):
                tracker.log_metrics(
                    run, {"val/acc": value * step / 30, "train/loss": 3 - step / 15}, step
                )
            tracker.log_metrics(
                run,
                {
                    "test/acc": value,
                    "cost/params": PARAMS[attention],
                    "cost/train_s": TRAIN_S[attention],
                    "cost/samples_per_s": 100.0,
                    "cost/peak_mem_mb": 500.0,
                    **({} if attention == "none" else {"attn/entropy": ENTROPY[attention] + seed}),
                },
                30,
            )
            tracker.end_run(run, "FINISHED")
            ids.append(run)
    failed = tracker.start_run(
        exp, "dot-transformer-toy-s3", {"attention": "dot", "seed": 3}, parent
    )
    tracker.end_run(failed, "FAILED")
    tracker.end_run(parent, "FINISHED")
    return parent, ids


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory, empty_store: Path
) -> tuple[Path, str, list[str]]:
    """Filled once per module (hundreds of writes); tests get a copy of the database. Artifacts
    logged by a test land in this module folder (the experiment's artifact location)."""
    root = tmp_path_factory.mktemp("filled")
    shutil.copy(empty_store, root / "mlflow.db")
    parent, ids = fill_store(root)
    return root / "mlflow.db", parent, ids


@pytest.fixture
def store(runs_dir: Path, filled: tuple[Path, str, list[str]]) -> tuple[str, list[str]]:
    db, parent, ids = filled
    shutil.copy(db, runs_dir / "mlflow.db")
    return parent, ids


def one_line_error(result) -> str:  # noqa: ANN001 - click Result
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_compare_latest_sweep_json_matches_hand_computed(cli, runs_dir: Path, store) -> None:
    parent, _ = store
    result = cli("compare", "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["metric"] == "test/acc" and doc["by"] == ["attention"]
    assert doc["sweep_run_id"] == parent
    assert doc["excluded_runs"] == 1  # the FAILED job
    groups = {g["attention"]: g for g in doc["groups"]}
    assert [g["attention"] for g in doc["groups"]] == [
        "scaled",
        "multihead",
        "dot",
        "additive",
        "none",
    ]
    best = groups["scaled"]
    assert best["status"] == "best" and best["n"] == 3
    assert best["mean"] == pytest.approx(0.92)
    assert best["std"] == pytest.approx(0.02)
    assert best["ci_half_width"] == pytest.approx(T2_975 * 0.02 / math.sqrt(3))  # 0.049683
    assert best["ci_low"] == pytest.approx(0.92 - 0.049683, abs=1e-6)
    assert (best["min"], best["max"]) == (0.90, 0.94)
    for name, p in EXPECTED_P.items():
        assert groups[name]["p_value"] == pytest.approx(p, abs=1e-6), name
        assert groups[name]["test"] == "paired t-test" and groups[name]["pairs"] == 3
    # multihead: not significant, but the CI of its difference, -0.005 ± 4.3027 · 0.0086603 / √3
    # = -0.005 ± 0.021514, reaches past the default margin 0.02: 3 seeds cannot call it a tie
    mh = groups["multihead"]
    assert (mh["status"], mh["status_reason"]) == ("inconclusive", "n=3")
    half = T2_975 * 0.0086603 / math.sqrt(3)
    assert mh["effect_diff"] == pytest.approx(-0.005)
    assert mh["effect_ci_low"] == pytest.approx(-0.005 - half, abs=1e-6)
    assert mh["effect_ci_high"] == pytest.approx(-0.005 + half, abs=1e-6)
    assert mh["cohens_dz"] == pytest.approx(-0.005 / 0.0086603, abs=1e-4)  # -0.57735
    assert (mh["effect_method"], mh["effect_n"]) == ("paired", 3)
    assert doc["margin"] == pytest.approx(0.02) and doc["range"] == [0.0, 1.0]
    assert groups["dot"]["status"] == groups["additive"]["status"] == "worse"
    assert groups["none"]["status"] == "worse"
    assert groups["multihead"]["delta_vs_best"] == pytest.approx(-0.005)
    assert groups["additive"]["params"] == 4500.0 and groups["additive"]["train_s"] == 4.0
    assert groups["none"]["samples_per_s"] == 100.0 and groups["none"]["peak_MB"] == 500.0


def test_compare_table_plots_and_artifacts(cli, runs_dir: Path, store, tmp_path: Path) -> None:
    parent, _ = store
    out = tmp_path / "results.md"
    result = cli("compare", "-o", str(out))
    assert result.exit_code == 0, result.output
    # the rich table: 5 rows with mean ± CI, ties marked
    assert "0.9200 ± 0.0497" in result.stdout
    assert "0.9150 ± 0.0541" in result.stdout  # multihead: sd sqrt(.00095 / 2) = .021794
    for name in VALUES:
        assert name in result.stdout
    assert "inconclusive" in result.stdout and "best" in result.stdout
    assert "paired t-test" in result.stdout
    md = out.read_text()
    assert md.count("\n| ") == 6  # header + 5 groups
    assert "| scaled | 3 | 0.9200 ± 0.0497 |" in md
    folder = runs_dir / "reports" / "toy-sweep-toy" / "test-acc_by_attention"
    for name in (
        "table.md",
        "table.csv",
        "table.json",
        "table.tex",
        "metric_ci.png",
        "learning_curves.png",
        "cost_pareto.png",
    ):
        assert (folder / name).stat().st_size > 0, name
    logged = {a.path for a in tracker_for(runs_dir).client.list_artifacts(
        parent, "report/test-acc_by_attention")}
    assert {
        "report/test-acc_by_attention/metric_ci.png",
        "report/test-acc_by_attention/learning_curves.png",
        "report/test-acc_by_attention/cost_pareto.png",
        "report/test-acc_by_attention/table.md",
    } <= logged


def test_compare_experiment_csv_and_grouping(cli, runs_dir: Path, store) -> None:
    result = cli(
        "compare",
        "--experiment",
        "toy",
        "--by",
        "attention,backbone",
        "--format",
        "csv",
        "--no-plots",
    )
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.strip().splitlines()
    assert header.startswith("attention,backbone,n,mean,")
    assert len(rows) == 5 and rows[0].startswith("scaled,transformer,3,")
    assert float(rows[0].split(",")[3]) == pytest.approx(0.92)


def test_compare_lower_is_better_metric(cli, store) -> None:
    result = cli("compare", "--metric", "cost/train_s", "--format", "json", "--no-plots")
    doc = json.loads(result.stdout)
    assert doc["higher_is_better"] is False
    assert doc["groups"][0]["attention"] == "none"  # 1.0 s, the cheapest


def test_compare_errors_are_one_line_exit_2(cli, runs_dir: Path, store, tmp_path: Path) -> None:
    _, ids = store
    assert "nope" in one_line_error(cli("compare", "--experiment", "nope"))
    assert "toy" in one_line_error(cli("compare", "--experiment", "nope"))  # names the valid ones
    line = one_line_error(cli("compare", "--metric", "test/nope"))
    assert "test/nope" in line and "test/acc" in line
    assert "0123456789abcdef" in one_line_error(cli("compare", "--sweep", "0123456789abcdef" * 2))
    assert "not a sweep" in one_line_error(cli("compare", "--sweep", ids[0]))
    assert "nope" in one_line_error(cli("compare", "--by", "nope"))
    assert "format" in one_line_error(cli("compare", "--format", "xml"))
    missing = tmp_path / "elsewhere"
    assert "No MLflow store" in one_line_error(cli("compare", "--runs-dir", str(missing)))
    assert not missing.exists()


def test_compare_empty_store(cli, runs_dir: Path) -> None:
    assert "No sweep" in one_line_error(cli("compare"))


# -- grouping rules, without a store ---------------------------------------------------------------
def fake_run(i: int, attention: str, seed: int, value: float, lr: str = "0.003") -> RunInfo:
    return RunInfo(
        run_id=f"r{i}",
        name="x",
        status="FINISHED",
        experiment_id="1",
        tags={"attention": attention, "seed": str(seed), "attnbench.primary_metric": "acc"},
        params={"attention.name": attention, "seed": str(seed), "trainer.lr": lr},
        metrics={"test/acc": value},
        start_time=i,
        end_time=i,
    )


def test_default_skips_a_sweep_still_running(cli, runs_dir: Path, store) -> None:
    """A sweep in progress has only some cells: the default is the latest one that ended, and
    stderr says which sweep was passed over and how to compare it anyway."""
    parent, _ = store
    tracker = tracker_for(runs_dir)
    running = tracker.start_run(
        tracker.experiment_id("toy"), "sweep-live", {"attnbench.kind": "sweep"}
    )
    child = tracker.start_run(
        tracker.experiment_id("toy"), "scaled-transformer-toy-s0",
        {"attention": "scaled", "seed": 0, "attnbench.primary_metric": "acc"}, running,
    )
    tracker.log_metrics(child, {"test/acc": 0.1}, 1)
    tracker.end_run(child, "FINISHED")
    result = cli("compare", "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sweep_run_id"] == parent
    assert f"sweep-live ({running[:8]}), is still running" in result.stderr
    assert f"--sweep {running}" in result.stderr
    tracker.end_run(running, "FINISHED")  # once it ends, it is the default
    result = cli("compare", "--format", "json", "--no-plots")
    assert json.loads(result.stdout)["sweep_run_id"] == running
    assert "still running" not in result.stderr


def test_latest_duplicate_wins_and_pairs_ignore_grouped_keys() -> None:
    runs = [
        fake_run(1, "dot", 0, 0.1),
        fake_run(2, "dot", 0, 0.5),  # same config twice: keep 0.5
        fake_run(3, "dot", 1, 0.6),
        fake_run(4, "scaled", 0, 0.7),
        fake_run(5, "scaled", 1, 0.8),
    ]
    comp = compare_runs(Selection(runs, "t", "t"))
    assert comp.duplicates == 1
    dot = next(g for g in comp.groups if g.key == {"attention": "dot"})
    assert dot.summary.n == 2 and dot.summary.mean == pytest.approx(0.55)
    assert dot.test is not None and dot.test.n_pairs == 2  # paired with scaled on seeds 0 and 1


def test_group_by_a_param_pairs_runs_that_differ_only_there() -> None:
    runs = [
        fake_run(i, "dot", seed, 0.5 + 0.1 * i, lr)
        for i, (seed, lr) in enumerate([(0, "0.1"), (1, "0.1"), (0, "0.01"), (1, "0.01")])
    ]
    comp = compare_runs(Selection(runs, "t", "t"), by=["trainer.lr"])
    assert [g.key["trainer.lr"] for g in comp.groups] == ["0.01", "0.1"]
    assert comp.groups[1].test is not None and comp.groups[1].test.n_pairs == 2


def test_pooling_different_configs_is_pointed_out() -> None:
    runs = [
        fake_run(i, attention, seed, 0.5, lr)
        for i, (attention, seed, lr) in enumerate(
            [("dot", 0, "0.1"), ("dot", 0, "0.01"), ("scaled", 0, "0.1"), ("scaled", 0, "0.01")]
        )
    ]
    comp = compare_runs(Selection(runs, "t", "t"))
    assert [g.summary.n for g in comp.groups] == [2, 2]  # two settings, not two seeds
    assert [g.pooled for g in comp.groups] == [{"trainer.lr": 2}] * 2
    assert [(g.status, g.reason) for g in comp.groups] == [("best", ""), ("?", "pooled")]
    assert comp.groups[1].test is None  # no paired test across pooled groups
    assert comp.pooled_message == (
        "groups pool runs that differ in trainer.lr (2 values): 4 runs; add it to --by to split "
        "the groups"
    )
    assert "pooled: the group mixes runs that differ in trainer.lr" in comp.caption
    split = compare_runs(Selection(runs, "t", "t"), by=["attention", "trainer.lr"])
    assert "pool" not in split.caption and len(split.groups) == 4
    assert not split.pooled and [g.reason for g in split.groups[1:]] == ["n<2"] * 3


def test_holm_correction_can_turn_worse_into_not_significant() -> None:
    """Two groups each 'worse' at p = 0.0351 alone (3 seeds, diffs with mean .045 and sd .015:
    t = 3√3, p = 1 - t / √(t² + 2)); Holm doubles the smaller one, so neither is significant."""
    best, a, b = [0.90, 0.92, 0.94], [0.87, 0.875, 0.88], [0.84, 0.875, 0.91]
    runs = [
        fake_run(10 * k + seed, name, seed, values[seed])
        for k, (name, values) in enumerate([("scaled", best), ("dot", a), ("additive", b)])
        for seed in range(3)
    ]
    t = 3 * math.sqrt(3)
    p = 1 - t / math.sqrt(t * t + 2)  # 0.035098
    plain = compare_runs(Selection(runs, "t", "t"))
    holm = compare_runs(Selection(runs, "t", "t"), correction="holm")
    # Holm makes them not significant; the CI of each difference (-0.045 ± 0.0373) lies outside
    # ± 0.02, so they are inconclusive, not tied
    for comp, status, adjusted in ((plain, "worse", None), (holm, "inconclusive", 2 * p)):
        others = comp.groups[1:]
        assert [g.status for g in others] == [status, status]
        for g in others:
            assert g.test is not None and g.test.p_value == pytest.approx(p, abs=1e-9)
            assert g.test.p_adjusted == (pytest.approx(adjusted) if adjusted else None)
    assert "Holm-adjusted" in holm.caption and "no multiple-comparison" in plain.caption
    with pytest.raises(ConfigError, match="Unknown --correction 'bonf'. Choose one of: none, holm"):
        compare_runs(Selection(runs, "t", "t"), correction="bonf")


def test_compare_correction_holm_in_json_and_table(cli, runs_dir: Path, store) -> None:
    """The toy sweep's 4 tests against the best, Holm-adjusted by hand."""
    result = cli("compare", "--format", "json", "--no-plots", "--correction", "holm")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["correction"] == "holm" and "Holm-adjusted" in doc["rule"]
    groups = {g["attention"]: g for g in doc["groups"]}
    t_none = 0.37 / (0.03 / math.sqrt(3))  # diffs .40 .37 .34
    raw = {**EXPECTED_P, "none": 1 - t_none / math.sqrt(t_none**2 + 2)}
    order = sorted(raw, key=raw.get)  # additive, none, dot, multihead
    running = 0.0
    for rank, name in enumerate(order):
        running = max(running, min(1.0, (4 - rank) * raw[name]))
        assert groups[name]["p_value"] == pytest.approx(raw[name], abs=1e-6), name
        assert groups[name]["p_adjusted"] == pytest.approx(running, abs=1e-6), name
    assert groups["scaled"]["p_adjusted"] is None
    table = cli("compare", "--no-plots", "--correction", "holm")
    assert "p (Holm)" in table.stdout
    bad = cli("compare", "--correction", "bonf")
    assert bad.exit_code == 2 and "Unknown --correction 'bonf'" in bad.output

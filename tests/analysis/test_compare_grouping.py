"""What `compare` groups by, and what it refuses to treat as seeds of one setting: the keys a
sweep varied, runs pooled over other config keys (warning, no paired test, --strict), a named
--baseline, and metrics with no better direction. Stores are filled by hand (no training)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from attnbench.analysis.comparison import compare_runs, default_by
from attnbench.analysis.select import Selection
from attnbench.errors import ConfigError
from attnbench.store.names import metric_direction
from attnbench.store.tracker import RunInfo
from tests.conftest import tracker_for

# An experiment like the one a user compared: two attention variants on two backbones at two
# step budgets, 3 seeds each (24 runs). test/acc = attention + backbone + steps + seed offsets.
ATTENTION = {"dot": 0.60, "scaled": 0.65}
BACKBONE = {"rnn": 0.0, "transformer": 0.10}
STEPS = {"100": 0.0, "600": 0.15}
SEED = [0.0, 0.012, -0.007]
POOLED_LINE = (
    "warning: groups pool runs that differ in backbone.name (2 values), trainer.max_steps "
    "(2 values): 24 runs; add them to --by to split the groups"
)


def backbone_params(name: str) -> dict[str, object]:
    # the backbones have different settings: their differences follow from backbone.name
    return (
        {"backbone.hidden": 32} if name == "rnn" else {"backbone.d_model": 64, "backbone.layers": 2}
    )


def fill_mixed(runs_dir: Path) -> None:
    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("mixed")
    for attention, a in ATTENTION.items():
        for backbone, b in BACKBONE.items():
            for steps, s in STEPS.items():
                for seed, noise in enumerate(SEED):
                    tags = {
                        "attention": attention,
                        "backbone": backbone,
                        "task": "reverse",
                        "seed": seed,
                        "attnbench.primary_metric": "acc",
                    }
                    run = tracker.start_run(exp, f"{attention}-{backbone}-s{seed}", tags)
                    params = {
                        "attention.name": attention,
                        "backbone.name": backbone,
                        "task.name": "reverse",
                        "trainer.max_steps": steps,
                        "seed": seed,
                        "runs_dir": "/x",
                        **backbone_params(backbone),
                    }
                    tracker.log_params(run, params)
                    value = a + b + s + noise * (1 + len(attention) / 10)
                    metrics = {"test/acc": value, "attn/entropy": 3 - value, "cost/params": 1e3}
                    tracker.log_metrics(run, metrics, 1)
                    tracker.end_run(run, "FINISHED")


@pytest.fixture(scope="module")
def mixed_db(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    shutil.copy(empty_store, root / "mlflow.db")
    fill_mixed(root)
    return root / "mlflow.db"


@pytest.fixture
def mixed(runs_dir: Path, mixed_db: Path) -> Path:
    shutil.copy(mixed_db, runs_dir / "mlflow.db")
    return runs_dir


def one_line_error(result) -> str:  # noqa: ANN001 - click Result
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_pooled_groups_warn_above_the_table_and_are_not_tested(cli, mixed: Path) -> None:
    result = cli("compare", "-e", "mixed", "--by", "attention", "--format", "json", "--no-plots")
    assert result.exit_code == 0, result.output
    assert POOLED_LINE in result.stderr.splitlines()
    doc = json.loads(result.stdout)
    assert doc["pooled_keys"] == {"backbone.name": 2, "trainer.max_steps": 2}
    best, other = doc["groups"]
    assert (best["attention"], best["n"], best["status"]) == ("scaled", 12, "best")
    assert (other["status"], other["status_reason"]) == ("?", "pooled")
    assert other["p_value"] is None and other["test"] == ""
    assert best["pooled_keys"] == other["pooled_keys"] == ["backbone.name", "trainer.max_steps"]
    table = cli("compare", "-e", "mixed", "--by", "attention", "--no-plots")
    assert "? (pooled)" in table.stdout and "best (pooled)" in table.stdout
    assert table.stderr.index("warning: groups pool") < table.stderr.index("report:")


def test_default_grouping_of_an_experiment_adds_backbone_and_task_when_they_differ(
    cli, mixed: Path
) -> None:
    result = cli("compare", "-e", "mixed", "--format", "csv", "--no-plots")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("attention,backbone,n,")
    assert (
        "warning: groups pool runs that differ in trainer.max_steps (2 values): 24 runs; add it "
        "to --by to split the groups"
    ) in result.stderr.splitlines()
    assert "pooled_keys" in result.stdout.splitlines()[0]
    assert ",trainer.max_steps," in result.stdout  # the CSV cell of the pooled_keys field


def test_by_every_varied_key_splits_the_groups_and_tests_them(cli, mixed: Path) -> None:
    by = "attention,backbone,trainer.max_steps"
    result = cli("compare", "-e", "mixed", "--by", by, "--format", "json", "--no-plots", "--strict")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["by"] == by.split(",") and doc["pooled_keys"] == {}
    groups = doc["groups"]
    assert len(groups) == 8 and all(g["n"] == 3 and g["pooled_keys"] == [] for g in groups)
    assert (groups[0]["attention"], groups[0]["backbone"], groups[0]["trainer.max_steps"]) == (
        "scaled",
        "transformer",
        "600",
    )
    assert groups[0]["mean"] == pytest.approx(0.65 + 0.10 + 0.15 + sum(SEED) * 1.6 / 3)
    assert all(g["test"] == "paired t-test" and g["pairs"] == 3 for g in groups[1:])


def test_strict_refuses_pooled_groups(cli, mixed: Path) -> None:
    line = one_line_error(cli("compare", "-e", "mixed", "--by", "attention", "--strict"))
    assert line.startswith("error: --strict: groups pool runs that differ in backbone.name")
    assert "trainer.max_steps (2 values)" in line
    assert not (mixed / "reports").exists()  # nothing written


def test_baseline_names_the_reference_group(cli, mixed: Path) -> None:
    by = ["--by", "attention,backbone,trainer.max_steps", "--no-plots"]
    base = "attention=dot,backbone=rnn,trainer.max_steps=100"
    result = cli("compare", "-e", "mixed", *by, "--baseline", base, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["reference"] == base
    statuses = {(g["attention"], g["backbone"], g["trainer.max_steps"]): g for g in doc["groups"]}
    ref = statuses[("dot", "rnn", "100")]
    assert ref["status"] == "baseline" and ref["delta_vs_baseline"] == 0.0
    assert statuses[("scaled", "rnn", "100")]["delta_vs_baseline"] == pytest.approx(0.05, abs=0.01)
    assert statuses[("scaled", "transformer", "600")]["status"] == "better"
    assert all(g["status"] in ("better", "tied") for g in doc["groups"] if g is not ref)
    table = cli("compare", "-e", "mixed", *by, "--baseline", base, "--format", "markdown")
    assert "| Δ baseline (95% CI) | p | test | vs baseline |" in table.stdout
    assert "| dot | rnn | 100 | 3 |" in table.stdout and "| baseline |" in table.stdout
    # a value that matches no group names the groups; one that matches several asks for more
    line = one_line_error(cli("compare", "-e", "mixed", *by, "--baseline", "attention=none"))
    assert "--baseline attention=none matches no group" in line
    assert "attention=dot,backbone=rnn,trainer.max_steps=100" in line
    line = one_line_error(cli("compare", "-e", "mixed", *by, "--baseline", "attention=dot"))
    assert "matches 4 groups" in line
    line = one_line_error(cli("compare", "-e", "mixed", *by, "--baseline", "lr=1"))
    assert "'lr' is not a grouping key" in line


# -- without a store -------------------------------------------------------------------------
def run(i: int, attention: str, seed: int, value: float, **params: str) -> RunInfo:
    return RunInfo(
        run_id=f"r{i}",
        name="x",
        status="FINISHED",
        experiment_id="1",
        tags={"attention": attention, "seed": str(seed), "attnbench.primary_metric": "acc"},
        params={"attention.name": attention, "seed": str(seed), **params},
        metrics={"test/acc": value, "attn/entropy": value * 2},
        start_time=i,
        end_time=i,
    )


def sweep_parent(keys: list[str]) -> RunInfo:
    return RunInfo(
        "p",
        "sweep",
        "FINISHED",
        "1",
        {"attnbench.kind": "sweep", "attnbench.sweep_keys": json.dumps(keys)},
        {},
        {},
        0,
        0,
    )


def test_default_by_is_what_the_sweep_varied() -> None:
    runs = [
        run(i, "multihead", i % 3, 0.5, **{"attention.heads": str(1 + i // 3), "task.length": "10"})
        for i in range(6)
    ]

    def by(keys: list[str]) -> list[str]:
        return default_by(Selection(runs, "t", "t", sweep_parent(keys)), runs)

    assert by(["attention.heads", "seed"]) == ["attention.heads"]
    assert by(["seed", "task.length", "attention"]) == ["attention", "task.length"]
    assert by(["trainer", "seed"]) == ["attention"]  # no run has a value for `trainer`
    assert by(["seed"]) == ["attention"]
    comp = compare_runs(Selection(runs, "t", "t", sweep_parent(["attention.heads", "seed"])))
    assert comp.by == ["attention.heads"] and [g.summary.n for g in comp.groups] == [3, 3]
    assert not comp.pooled


def test_pooling_is_folded_into_the_differing_group_name() -> None:
    """Runs of two backbones differ in every backbone.* key: only backbone.name is named; a key
    under the grouped group (attention.heads under attention) is pooling too."""
    runs = [
        run(0, "dot", 0, 0.5, **{"backbone.name": "rnn", "backbone.hidden": "8"}),
        run(1, "dot", 0, 0.6, **{"backbone.name": "transformer", "backbone.layers": "2"}),
        run(2, "multihead", 0, 0.5, **{"backbone.name": "rnn", "attention.heads": "2"}),
        run(3, "multihead", 1, 0.6, **{"backbone.name": "rnn", "attention.heads": "4"}),
    ]
    comp = compare_runs(Selection(runs, "t", "t"), by=["attention"])
    pooled = {g.label: g.pooled for g in comp.groups}
    assert pooled == {"dot": {"backbone.name": 2}, "multihead": {"attention.heads": 2}}
    assert comp.duplicates == 0  # different configs with the same seed are not duplicates


def test_the_best_with_one_run_says_so() -> None:
    runs = [run(0, "scaled", 0, 0.9)] + [run(i, "dot", i, 0.5 + i / 100) for i in range(1, 4)]
    comp = compare_runs(Selection(runs, "t", "t"))
    assert [(g.status, g.reason) for g in comp.groups] == [("best", ""), ("?", "best n<2")]


def test_metric_directions() -> None:
    higher = [
        "test/acc",
        "val/f1",
        "test/exact_match",
        "test/bleu",
        "val/token_acc",
        "attn/alignment",
        "attn/alignment_pm1",
        "cost/samples_per_s",
        "test/precision",
        "val/recall",
    ]
    lower = [
        "train/loss",
        "val/loss",
        "cost/params",
        "cost/train_s",
        "cost/epoch_s",
        "cost/peak_mem_mb",
        "cost/base_mem_mb",
    ]
    none = ["attn/entropy", "overlap/count", "epoch", "something/else"]
    assert {m: metric_direction(m) for m in higher} == dict.fromkeys(higher, "higher")
    assert {m: metric_direction(m) for m in lower} == dict.fromkeys(lower, "lower")
    assert {m: metric_direction(m) for m in none} == dict.fromkeys(none, "none")


def test_a_diagnostic_is_shown_never_ranked() -> None:
    runs = [
        run(10 * k + s, name, s, v + s / 100)
        for k, (name, v) in enumerate([("scaled", 0.9), ("dot", 0.5)])
        for s in range(3)
    ]
    comp = compare_runs(Selection(runs, "t", "t"), metric="attn/entropy")
    assert comp.direction == "none" and comp.higher_is_better is None
    assert [g.label for g in comp.groups] == ["dot", "scaled"]  # by name, not by value
    assert all(g.status == "unranked" and g.test is None for g in comp.groups)
    assert "no better direction" in comp.caption and "is better" not in comp.caption
    with pytest.raises(ConfigError, match="no better direction"):
        compare_runs(Selection(runs, "t", "t"), metric="attn/entropy", baseline="dot")


def test_entropy_table_has_no_marks(cli, mixed: Path) -> None:
    """`dot` has the highest entropy and is neither better nor worse for it."""
    by = ["-e", "mixed", "--by", "attention,backbone,trainer.max_steps", "--no-plots"]
    result = cli("compare", *by, "--metric", "attn/entropy", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["direction"] == "none" and doc["higher_is_better"] is None
    assert doc["reference"] is None
    assert {g["status"] for g in doc["groups"]} == {"unranked"}
    assert all(g["p_value"] is None and g["delta_vs_best"] is None for g in doc["groups"])
    table = cli("compare", *by, "--metric", "attn/entropy")
    assert "no better direction" in table.stdout
    for word in ("best", "worse", "tied", "vs best"):
        assert word not in table.stdout.replace("no better direction", "")

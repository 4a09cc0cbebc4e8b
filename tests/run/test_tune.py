"""The tuned protocol (`attnbench sweep ... --tune KEY=V1,V2`), compare on tuned and search
sweeps (selection on validation, never on test), and "the" val metric (`best_val/*`).

The hand-filled stores below make validation and test disagree on purpose: a choice that
followed test would pick the other value, and every assertion would fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attnbench.analysis.tuning import Protocol, choose
from attnbench.store.names import (
    FINAL_STAGE,
    KIND_TAG,
    PARENT_RUN_TAG,
    STAGE_TAG,
    SWEEP_KIND,
    TUNE_STAGE,
    TUNE_TAG,
)
from attnbench.store.tracker import RunInfo
from tests.conftest import all_runs, tracker_for

OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def job_runs(runs_dir: Path) -> list[RunInfo]:
    return [r for r in all_runs(runs_dir) if r.tags.get(KIND_TAG) != SWEEP_KIND]


def lr_of(run: RunInfo) -> float:
    return float(run.params["trainer.lr"])


def compare_json(cli: Any, *args: str) -> dict[str, Any]:
    result = cli("compare", "--format", "json", "--no-plots", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- a real tuned sweep -----------------------------------------------------------------------
GRID = ("attention=none,dot", "seed=0,1")
TUNE = ("--tune", "trainer.lr=1e-3,1e-2")


def test_tuned_sweep_trains_equal_trials_then_the_validation_choice(cli, runs_dir: Path) -> None:
    result = cli("sweep", *GRID, *TUNE)
    assert result.exit_code == 0, result.output
    runs = job_runs(runs_dir)
    parents = [r for r in all_runs(runs_dir) if r.tags.get(KIND_TAG) == SWEEP_KIND]
    assert len(parents) == 1 and parents[0].status == "FINISHED"  # one sweep for both stages
    parent = parents[0]
    assert {r.tags[PARENT_RUN_TAG] for r in runs} == {parent.run_id}
    assert json.loads(parent.tags[TUNE_TAG]) == {
        "params": {"trainer.lr": [0.001, 0.01]}, "tune_seeds": [0], "seeds": [0, 1]}
    tune = [r for r in runs if r.tags[STAGE_TAG] == TUNE_STAGE]
    final = [r for r in runs if r.tags[STAGE_TAG] == FINAL_STAGE]
    assert len(runs) == 6 and len(tune) == 4 and len(final) == 2
    for attention in ("none", "dot"):  # equal trials: every value on the tuning seed, once
        trials = [r for r in tune if r.tags["attention"] == attention]
        assert sorted(lr_of(r) for r in trials) == [0.001, 0.01]
        assert {r.tags["seed"] for r in trials} == {"0"}
        assert {r.params["trainer.max_steps"] for r in trials} == {"3"}  # same budget
        # the choice: best validation accuracy, ties to the lower validation loss
        best = max(trials, key=lambda r: (r.metrics["best_val/acc"], -r.metrics["best_val/loss"]))
        (kept,) = [r for r in final if r.tags["attention"] == attention]
        assert (kept.tags["seed"], lr_of(kept)) == ("1", lr_of(best))
        assert kept.params["trainer.max_steps"] == "3"

    doc = compare_json(cli)
    assert doc["sweep_run_id"] == parent.run_id and doc["by"] == ["attention", "trainer.lr"]
    assert len(doc["groups"]) == 2
    for group in doc["groups"]:
        chosen = [r for r in final if r.tags["attention"] == group["attention"]]
        assert float(group["trainer.lr"]) == lr_of(chosen[0])
        assert (group["n"], group["chosen by"], group["trials"]) == (2, "1/1", "2")
    (table,) = (runs_dir / "reports").glob("*/*/table.md")  # the report compare also wrote
    assert "tuned: per group, trainer.lr in 0.001, 0.01 chosen on best_val/acc" in table.read_text()


class CtrlCAtCall:
    """Stands in for a function: its `n`-th call raises KeyboardInterrupt (Ctrl-C there)."""

    def __init__(self, real: Any, n: int) -> None:
        self.real, self.n, self.calls = real, n, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


@pytest.mark.slow  # trains a tuned sweep, kills it in stage 2, resumes it
def test_resume_across_stages_trains_only_what_is_missing(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attnbench.training.loop as loop

    real = loop.fit
    # Ctrl-C in the first stage-2 job, once stage 1's 4 trials finished
    monkeypatch.setattr(loop, "fit", CtrlCAtCall(real, 5))
    assert cli("sweep", *GRID, *TUNE).exit_code != 0
    before = {r.run_id: r for r in job_runs(runs_dir)}
    assert sorted(r.status for r in before.values()) == ["FINISHED"] * 4 + ["KILLED"]
    monkeypatch.setattr(loop, "fit", real)

    result = cli("sweep", *GRID, *TUNE, "--resume")
    assert result.exit_code == 0, result.output
    new = [r for r in job_runs(runs_dir) if r.run_id not in before]
    assert len(new) == 2  # the killed final run and the one that never started
    assert {(r.tags[STAGE_TAG], r.tags["seed"], r.status) for r in new} == {
        (FINAL_STAGE, "1", "FINISHED")}
    doc = compare_json(cli)
    assert [g["n"] for g in doc["groups"]] == [2, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tune", "seed=0,1"), "--tune seed: not a hyper-parameter"),
        (("--tune", "trainer.lrr=1e-3,1e-2"), "--tune trainer.lrr: no such config value"),
        (("--tune", "trainer=default,smoke"), "--tune trainer: not a hyper-parameter"),
        (("--tune", "trainer.lr=1e-3"), "--tune trainer.lr: give at least two values"),
        (("trainer.lr=1e-3,1e-2", "--tune", "trainer.lr=1e-3,1e-2"),
         "trainer.lr is both swept (trainer.lr=0.001,0.01) and tuned"),
        (("--tune", "trainer.lr=1e-3,1e-2", "--tune-seeds", "x"), "--tune-seeds 'x'"),
        (("--tune", "trainer.lr=interval(0,1)"), "give the values as a list"),
    ],
)
def test_a_bad_protocol_is_one_line_and_writes_nothing(
    cli, runs_dir: Path, args: tuple[str, ...], message: str
) -> None:
    result = cli("sweep", "attention=none,dot", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert job_runs(runs_dir) == []


# -- the choice, on hand-filled stores --------------------------------------------------------
def run_info(attention: str, seed: int, lr: float, val: float | None, loss: float = 1.0,
             test: float = 0.5, status: str = "FINISHED", start: int = 0) -> RunInfo:
    tags = {"attention": attention, "backbone": "transformer", "task": "toy", "seed": str(seed),
            "attnbench.primary_metric": "acc", "attnbench.swept": json.dumps({"trainer.lr": lr})}
    metrics = {"test/acc": test} if val is None else {
        "best_val/acc": val, "best_val/loss": loss, "test/acc": test}
    return RunInfo(f"{attention}{seed}{lr}", f"{attention}-s{seed}", status, "0", tags,
                   {"trainer.lr": str(lr)}, metrics, start, None)


def test_choice_reads_validation_ties_go_to_the_lower_loss_and_failures_score_worst() -> None:
    protocol = Protocol({"trainer.lr": [0.001, 0.01]}, [0], [0, 1, 2])
    runs = [
        run_info("dot", 0, 0.001, 0.90, test=0.50),  # best on val, worst on test: chosen
        run_info("dot", 0, 0.01, 0.80, test=0.99),
        run_info("scaled", 0, 0.001, 0.70, loss=1.0, test=0.95),
        run_info("scaled", 0, 0.01, 0.70, loss=0.6, test=0.40),  # val tie, lower loss: chosen
        run_info("additive", 0, 0.001, 0.60),
        run_info("additive", 0, 0.01, None, status="FAILED", test=0.99),  # diverged
        run_info("dot", 1, 0.01, 0.99, test=0.99),  # a final seed: never a trial
    ]
    chosen = {c.label: (c.combo, c.votes, c.seeds, c.trials) for c in choose(runs, protocol)}
    assert chosen == {
        "dot-transformer-toy": ((0.001,), 1, 1, 2),
        "scaled-transformer-toy": ((0.01,), 1, 1, 2),
        "additive-transformer-toy": ((0.001,), 1, 1, 2),
    }


def test_choice_over_two_tuning_seeds_is_the_mean_and_counts_the_seeds_that_agree() -> None:
    protocol = Protocol({"trainer.lr": [0.001, 0.01]}, [0, 1], [0, 1, 2])
    runs = [run_info("dot", 0, 0.001, 0.90), run_info("dot", 1, 0.001, 0.60),  # mean 0.75
            run_info("dot", 0, 0.01, 0.80), run_info("dot", 1, 0.01, 0.75)]  # mean 0.775
    (choice,) = choose(runs, protocol)
    assert (choice.combo, choice.votes, choice.seeds, choice.trials) == ((0.01,), 1, 2, 4)
    assert choice.score == pytest.approx(0.775)
    # a later finished run of a cell replaces a killed one; a seed without a run scores worst
    again = [*runs[:3], run_info("dot", 1, 0.01, None, status="KILLED", start=1)]
    (choice,) = choose(again, protocol)
    assert (choice.combo, choice.trials) == ((0.001,), 4)


def fill(runs_dir: Path, parent_tags: dict[str, str], runs: list[RunInfo]) -> str:
    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("toy")
    parent = tracker.start_run(exp, "sweep-toy", {KIND_TAG: SWEEP_KIND, **parent_tags})
    for r in runs:
        run = tracker.start_run(exp, r.name, r.tags, parent)
        tracker.log_params(run, {**r.params, "attention.name": r.tags["attention"],
                                 "seed": r.tags["seed"]})
        tracker.log_metrics(run, r.metrics, 30)
        tracker.end_run(run, r.status)
    tracker.end_run(parent, "FINISHED")
    return parent


def test_compare_on_a_tuned_sweep_uses_the_final_runs_and_never_test(cli, runs_dir: Path) -> None:
    protocol = Protocol({"trainer.lr": [0.001, 0.01]}, [0], [0, 1, 2])
    trials = [run_info("dot", 0, 0.001, 0.90, test=0.50), run_info("dot", 0, 0.01, 0.80, test=0.99),
              run_info("scaled", 0, 0.001, 0.70, 1.0, test=0.95),
              run_info("scaled", 0, 0.01, 0.70, 0.6, test=0.40)]
    finals = [run_info("dot", s, 0.001, 0.9, test=t) for s, t in ((1, 0.60), (2, 0.70))]
    finals += [run_info("scaled", s, 0.01, 0.7, test=t) for s, t in ((1, 0.44), (2, 0.48))]
    decoys = [run_info(a, s, lr, 0.1, test=1.0) for a, lr in (("dot", 0.01), ("scaled", 0.001))
              for s in (1, 2)]  # the values test would have picked, on the final seeds
    keys = json.dumps(["attention", "trainer.lr", "seed"])
    parent = fill(runs_dir, {TUNE_TAG: protocol.to_tag(), "attnbench.sweep_keys": keys},
                  [*trials, *finals, *decoys])
    doc = compare_json(cli)
    assert doc["sweep_run_id"] == parent
    groups = {g["attention"]: g for g in doc["groups"]}
    assert {a: (float(g["trainer.lr"]), g["n"]) for a, g in groups.items()} == {
        "dot": (0.001, 3), "scaled": (0.01, 3)}
    assert groups["dot"]["mean"] == pytest.approx((0.50 + 0.60 + 0.70) / 3)  # seed 0: its trial
    assert groups["scaled"]["mean"] == pytest.approx((0.40 + 0.44 + 0.48) / 3)
    assert (groups["dot"]["chosen by"], groups["dot"]["trials"]) == ("1/1", "2")
    assert doc["excluded_runs"] == 0  # decoys and unchosen trials are not the compared runs
    # --by without the tuned key still pairs runs across chosen values
    doc = compare_json(cli, "--by", "attention")
    assert doc["by"] == ["attention", "trainer.lr"] and {g["pairs"] for g in doc["groups"]} == {
        None, 3}


def test_compare_on_a_search_sweep_picks_the_best_on_validation(cli, runs_dir: Path) -> None:
    trials = [run_info("multihead", 0, lr, val, test=test)
              for lr, val, test in ((0.001, 0.90, 0.60), (0.002, 0.80, 0.95), (0.004, 0.70, 0.70))]
    keys = json.dumps(["trainer.lr"])
    fill(runs_dir, {"attnbench.sweeper": OPTUNA, "attnbench.sweep_keys": keys}, trials)
    doc = compare_json(cli)
    assert doc["metric"] == "best_val/acc"
    ranked = [(float(g["trainer.lr"]), g["test/acc (mean ± 95% CI)"], g["status"])
              for g in doc["groups"]]
    assert ranked[0] == (0.001, "0.6000", "best")  # best on validation, though worst on test
    assert [lr for lr, _, _ in ranked] == [0.001, 0.002, 0.004]
    table = cli("compare", "--format", "markdown", "--no-plots").stdout
    assert ("search sweep: groups ranked and the best picked on best_val/acc (validation), "
            "test/acc reported, never used to choose; best on validation: 0.001, test/acc "
            "0.6000 (n=1)") in table


@pytest.mark.slow  # a real Optuna study of 3 trials
def test_compare_on_a_real_optuna_sweep_ranks_on_validation(cli, runs_dir: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = cli("sweep", "experiment=optuna_lr_width", "hydra.sweeper.n_trials=3")
    assert result.exit_code == 0, result.output
    runs = {r.run_id: r for r in job_runs(runs_dir)}
    doc = compare_json(cli)
    assert doc["metric"] == "best_val/acc"
    vals = [g["mean"] for g in doc["groups"]]
    assert vals == sorted(vals, reverse=True)
    for g in doc["groups"]:
        (run,) = [runs[i] for i in g["run_ids"].split()]
        assert g["mean"] == run.metrics["best_val/acc"]
        assert g["test/acc (mean ± 95% CI)"] == f"{run.metrics['test/acc']:.4f}"


# -- "the" val metric -------------------------------------------------------------------------
def test_summary_and_mlflow_agree_on_the_best_checkpoints_val_metric(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validations score 0.5, 0.9, 0.7: the best checkpoint is the second; the summary and
    best_val/acc say 0.9 while val/acc keeps the history (its latest is 0.7)."""
    import attnbench.training.loop as loop

    scripted = iter([{"acc": 0.5, "loss": 1.0}, {"acc": 0.9, "loss": 0.8},
                     {"acc": 0.7, "loss": 0.9}])
    real = loop.evaluate

    def evaluate(model, data, split, cfg):  # noqa: ANN001, ANN202
        return dict(next(scripted)) if split is data.val else real(model, data, split, cfg)

    monkeypatch.setattr(loop, "evaluate", evaluate)
    result = cli("run", "trainer.eval_every=1")
    assert result.exit_code == 0, result.output
    assert "best_val/acc 0.9000" in result.output
    (run,) = job_runs(runs_dir)
    tracker = tracker_for(runs_dir)
    assert [v for _, v in tracker.metric_history(run.run_id, "val/acc")] == [0.5, 0.9, 0.7]
    assert tracker.metric_history(run.run_id, "best_val/acc") == [(3, 0.9)]
    assert (run.metrics["best_val/acc"], run.metrics["best_val/loss"]) == (0.9, 0.8)
    assert run.tags["attnbench.best_epoch"] == "1"

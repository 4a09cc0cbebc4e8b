"""The comparison in a real terminal (issue 26): at 100 and at 80 columns every number of the
answer (group, n, mean ± CI, Δ with its CI, p, mark) and of the cost table shows whole, no line
is longer than the terminal, and no cell is cut with an ellipsis; `--wide` puts everything in one
table; reports of other metrics do not overwrite each other; `--filter` narrows the runs.

The store is the README's quickstart sweep (5 variants x 3 seeds) with numbers shaped like the
real one's (docs/comparison.md): an interval clipped at 1, six-digit parameter counts, thousands
of samples per second, a time budget that stopped some runs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.analysis.test_compare import one_line_error
from tests.conftest import tracker_for

# test/acc per seed 0, 1, 2 and the costs of each variant
ACC = {
    "scaled": [0.9941, 0.9946, 0.9945],
    "dot": [0.9832, 0.9860, 0.9858],
    "additive": [0.8076, 0.8786, 0.8641],
    "multihead": [0.6524, 0.9383, 0.8687],  # 0.8198 ± 0.37: clipped at 1
    "none": [0.0310, 0.0321, 0.0320],
}
COST = {  # params, train s, samples/s, peak MB, steps
    "scaled": (141408, 8.04, 807.4, 40.0, 1690),
    "dot": (141408, 8.13, 789.7, 40.0, 1690),
    "additive": (158048, 17.31, 373.6, 92.0, 837),
    "multihead": (141408, 8.92, 750.3, 40.0, 1690),
    "none": (108128, 2.44, 2736.4, 30.8, 1690),
}


def fill_quickstart(runs_dir: Path) -> str:
    tracker = tracker_for(runs_dir)
    exp = tracker.experiment_id("assoc_recall")
    parent = tracker.start_run(exp, "sweep-20260101-000000", {
        "attnbench.kind": "sweep", "attnbench.sweep_keys": json.dumps(["attention", "seed"])})
    for attention, values in ACC.items():
        params, train_s, rate, peak, steps = COST[attention]
        for seed, value in enumerate(values):
            tags = {"attention": attention, "backbone": "transformer", "task": "assoc_recall",
                    "seed": str(seed), "attnbench.primary_metric": "acc"}
            if attention == "additive":
                tags["attnbench.stopped_by"] = "max_time"
            run = tracker.start_run(exp, f"{attention}-transformer-assoc_recall-s{seed}", tags,
                                    parent)
            tracker.log_params(run, {"attention.name": attention, "seed": seed,
                                     "trainer.lr": "0.003",
                                     "attention.heads": 4 if attention == "multihead" else 1})
            tracker.log_metrics(run, {"val/acc": value - 0.001, "train/loss": 1.0}, 10)
            tracker.log_metrics(run, {
                "test/acc": value, "best_val/acc": value - 0.001, "cost/params": params,
                "cost/train_s": train_s, "cost/samples_per_s": rate, "cost/peak_mem_mb": peak,
                "cost/steps": steps}, 10)
            tracker.end_run(run, "FINISHED")
    tracker.end_run(parent, "FINISHED")
    return parent


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Path:
    root = tmp_path_factory.mktemp("quickstart")
    shutil.copy(empty_store, root / "mlflow.db")
    fill_quickstart(root)
    return root / "mlflow.db"


@pytest.fixture
def store(runs_dir: Path, quickstart: Path) -> Path:
    shutil.copy(quickstart, runs_dir / "mlflow.db")
    return runs_dir


@pytest.fixture
def columns(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> int:
    """The terminal is `COLUMNS` wide (attnbench's console reads it, as in a real terminal)."""
    from attnbench import console as term

    width = request.param
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(term, "console", term.stdout_console())
    return width


def expected_numbers(doc: dict) -> dict[str, list[str]]:
    """Every number each group's row must show, formatted by hand from the JSON: the mean with
    its interval (± half-width, or [low, high] when clipped), Δ with its interval, p, and the
    costs (params and samples/s with thousands separators, seconds to 1 decimal)."""
    out = {}
    for g in doc["groups"]:
        if g["ci_clipped"]:
            ci = [f"{g['mean']:.4f}", f"[{g['ci_low']:.4f}, {g['ci_high']:.4f}]"]
        else:
            ci = [f"{g['mean']:.4f}", f"± {g['ci_half_width']:.4f}"]
        delta = [] if g["status"] == "best" else [
            f"{g['effect_diff']:+.4f}", f"± {g['effect_ci_high'] - g['effect_diff']:.4f}"]
        p = [] if g["p_value"] is None else [
            "<0.001" if g["p_value"] < 0.001 else f"{g['p_value']:.3f}"]
        costs = [f"{g['params']:,}", f"{g['train_s']:.1f}", f"{g['samples_per_s']:,.0f}",
                 f"{g['peak_MB']:.1f}", f"{g['steps']:,}", f"({g['stopped_by']})"]
        out[g["attention"]] = [str(g["n"]), *ci, *delta, *p, *costs]
    return out


@pytest.mark.parametrize("columns", [100, 80], indirect=True)
def test_compare_fits_the_terminal_and_shows_every_number(cli, store: Path, columns: int) -> None:
    doc = json.loads(cli("compare", "--format", "json", "--no-plots").stdout)
    assert doc["groups"][0]["params"] == 141408  # a count is an integer in JSON
    result = cli("compare", "--no-plots")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, result.stdout
    assert "…" not in result.stdout
    text = " ".join(result.stdout.split())  # a cell's parts may sit on lines of their own
    for attention, numbers in expected_numbers(doc).items():
        assert attention in text
        for number in numbers:
            assert number in result.stdout, (attention, number, result.stdout)
    assert "inconclusive" in text and "(n=3)" in text  # the mark, maybe wrapped
    # the answer first, the costs in a second table below it, then the caption
    main = next(i for i, ln in enumerate(lines) if ln.startswith("attention ") and " n " in ln)
    cost = next(i for i, ln in enumerate(lines) if "params" in ln)
    caption = next(i for i, ln in enumerate(lines) if ln == "test/acc: higher is better")
    assert main < cost < caption
    assert "paired t-test" not in " ".join(lines[main:cost])  # the test's name: in the caption
    assert "test used: paired t-test" in text


@pytest.mark.parametrize("columns", [100], indirect=True)
def test_wide_is_one_table_with_every_column(cli, store: Path, columns: int) -> None:
    result = cli("compare", "--no-plots", "--wide")
    assert result.exit_code == 0, result.output
    header = next(ln for ln in result.stdout.splitlines() if ln.startswith("attention "))
    for name in ("std", "min", "max", "test", "vs best", "params", "samples/s"):
        assert name in header, header
    assert "…" not in result.stdout
    # too wide for 100 columns: one line per group, as wide as it takes, nothing cut
    rows = [ln for ln in result.stdout.splitlines() if ln.startswith(tuple(ACC))]
    assert len(rows) == 5 and "158,048" in rows[[r.split()[0] for r in rows].index("additive")]


def test_a_second_metric_leaves_the_first_report(cli, store: Path) -> None:
    parent = tracker_for(store).search(
        [tracker_for(store).experiment_id("assoc_recall")],
        "tags.`attnbench.kind` = 'sweep'")[0].run_id
    assert cli("compare", "--no-plots").exit_code == 0
    assert cli("compare", "--metric", "val/acc", "--no-plots").exit_code == 0
    assert cli("compare", "--no-plots", "--filter", "attention=dot,scaled").exit_code == 0
    sweep = store / "reports" / "assoc_recall-sweep-20260101-000000"
    folders = sorted(p.name for p in sweep.iterdir())
    assert folders == ["test-acc_by_attention", "test-acc_by_attention_where_attention=dot-scaled",
                       "val-acc_by_attention"]
    for folder in folders:
        assert {p.name for p in (sweep / folder).iterdir()} == {
            "table.md", "table.csv", "table.json", "table.tex"}
    val = (sweep / "val-acc_by_attention" / "table.md").read_text()
    assert "| val/acc (mean ± 95% CI) |" in val
    assert "test/acc" in (sweep / "test-acc_by_attention" / "table.md").read_text()
    logged = {a.path for a in tracker_for(store).client.list_artifacts(parent, "report")}
    assert {"report/test-acc_by_attention", "report/val-acc_by_attention"} <= logged


def test_filter_compares_only_the_matching_runs(cli, store: Path) -> None:
    doc = json.loads(cli("compare", "--format", "json", "--no-plots",
                         "--filter", "attention=dot,scaled", "--filter", "trainer.lr=3e-3").stdout)
    assert [g["attention"] for g in doc["groups"]] == ["scaled", "dot"]  # 3e-3 is 0.003
    assert all(g["n"] == 3 for g in doc["groups"])
    assert doc["compared"].endswith("where attention=dot,scaled trainer.lr=3e-3")
    # the same with one comma-separated --filter
    again = json.loads(cli("compare", "--format", "json", "--no-plots",
                           "--filter", "attention.heads=1,attention=none,dot").stdout)
    assert [g["attention"] for g in again["groups"]] == ["dot", "none"]


def test_a_filter_matching_nothing_is_one_line_naming_the_values(cli, store: Path) -> None:
    line = one_line_error(cli("compare", "--filter", "backbone=rnn"))
    assert re.search(r"--filter backbone=rnn matches no run of sweep .*; backbone values there: "
                     r"transformer$", line), line
    line = one_line_error(cli("compare", "--filter", "attention=none",
                              "--filter", "attention.heads=4"))
    assert line.endswith("with attention=none; attention.heads values there: 1"), line
    line = one_line_error(cli("compare", "--filter", "nope=1"))
    assert "Unknown --filter key 'nope'" in line and "trainer.lr" in line
    line = one_line_error(cli("compare", "--filter", "attention"))
    assert "expected key=value" in line
    assert not (store / "reports").exists()


def test_numbers_in_csv_and_markdown(cli, store: Path) -> None:
    header, first, *_ = cli("compare", "--format", "csv", "--no-plots").stdout.splitlines()
    record = dict(zip(header.split(","), first.split(","), strict=True))
    assert (record["params"], record["steps"]) == ("141408", "1690")  # counts: integers
    assert float(record["train_s"]) == pytest.approx(8.04)  # full precision for machines
    md = cli("compare", "--format", "markdown", "--no-plots").stdout
    row = next(ln for ln in md.splitlines() if ln.startswith("| none |"))
    assert "| 108,128 | 2.4 | 2,736 | 30.8 | 1,690 (epochs) |" in row  # one style per column
    align = next(ln for ln in md.splitlines() if ln.startswith("|---"))
    assert align.startswith("|---|---:|---:|")  # names left, numbers right


def test_a_new_cost_metric_appears_without_an_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cost metric another stream adds to names.COST_COLUMNS shows in the cost table and the
    records, in a style read from its values."""
    from attnbench.analysis import comparison, render
    from attnbench.analysis.comparison import compare_runs
    from attnbench.analysis.select import Selection
    from attnbench.store.names import COST_COLUMNS
    from attnbench.store.tracker import RunInfo

    wider = (*COST_COLUMNS, ("cost/tokens_per_s", "tokens/s"))
    monkeypatch.setattr(comparison, "COST_COLUMNS", wider)
    monkeypatch.setattr(render, "COST_COLUMNS", wider)
    runs = [RunInfo(f"{a}{s}", "x", "FINISHED", "1", {"attention": a, "seed": str(s)},
                    {"attention.name": a}, {"test/acc": 0.5 + s / 10 + (a == "dot") / 20,
                                            "cost/tokens_per_s": 12345.6 + s}, s, s)
            for a in ("dot", "scaled") for s in range(3)]
    comp = compare_runs(Selection(runs, "t", "t"))
    cost = render.terminal_tables(comp)[1]
    assert [c.header for c in cost.columns][-2:] == ["tokens/s", "steps (stopped by)"]
    assert cost.columns[-2].cell(comp.groups[0]).text == "12,347"
    assert render.records(comp)[0]["tokens_per_s"] == pytest.approx(12346.6)


@pytest.mark.parametrize("columns", [100], indirect=True)
def test_tuned_and_search_sweeps_fit_with_their_columns(cli, runs_dir: Path, empty_store: Path,
                                                        columns: int) -> None:
    from attnbench.analysis.tuning import Protocol
    from tests.run.test_tune import OPTUNA, fill, run_info

    protocol = Protocol({"trainer.lr": [0.001, 0.01]}, [0], [0, 1])
    runs = [run_info(a, s, lr, val, test=t) for a, lr, val in (("dot", 0.001, 0.9),
                                                               ("dot", 0.01, 0.8),
                                                               ("scaled", 0.001, 0.7),
                                                               ("scaled", 0.01, 0.8))
            for s, t in ((0, 0.61), (1, 0.72))]
    fill(runs_dir, {"attnbench.tune": protocol.to_tag(), "attnbench.sweep_keys": json.dumps(
        ["attention", "trainer.lr", "seed"])}, [r for r in runs if r.tags["seed"] == "0"
                                                 or r.name.startswith("dot") == (
                                                     r.params["trainer.lr"] == "0.001")])
    out = cli("compare", "--no-plots").stdout
    lines = out.splitlines()
    assert max(map(len, lines)) <= columns and "…" not in out
    main = next(ln for ln in lines if ln.startswith("attention "))
    cost = next(ln for ln in lines if ln.startswith("attention ") and "params" in ln)
    assert "trainer.lr" in main and "chosen by" not in main  # the chosen value answers
    assert "chosen by" in cost and "trials" in cost  # how it was chosen: beside the costs

    optuna = runs_dir.parent / "optuna"
    optuna.mkdir()
    shutil.copy(empty_store, optuna / "mlflow.db")  # a store of its own: the search
    trials = [run_info("multihead", 0, lr, val, test=t) for lr, val, t in (
        (0.0012345678901234567, 0.9, 0.6), (0.004, 0.8, 0.9))]
    fill(optuna, {"attnbench.sweeper": OPTUNA, "attnbench.sweep_keys": '["trainer.lr"]'},
         trials)
    out = cli("compare", "--no-plots", "--runs-dir", str(optuna)).stdout
    assert max(map(len, out.splitlines())) <= columns and "…" not in out
    main = next(ln for ln in out.splitlines() if ln.startswith("trainer.lr "))
    assert "test/acc" in main and "best_val/acc" in main  # ranked on validation, test shown
    assert "0.001235 " in out and "0.0012345678901234567" not in out
    doc = json.loads(cli("compare", "--no-plots", "--format", "json", "--runs-dir",
                         str(optuna)).stdout)
    assert doc["groups"][0]["trainer.lr"] == "0.0012345678901234567"  # records keep the value


@pytest.mark.parametrize("columns", [100, 80], indirect=True)
def test_across_fits_the_terminal(cli, runs_dir: Path, columns: int) -> None:
    from tests.analysis.test_across import fill_suite

    fill_suite(runs_dir)
    result = cli("compare", "--across", "task", "--no-plots")
    assert result.exit_code == 0, result.output
    assert max(map(len, result.stdout.splitlines())) <= columns and "…" not in result.stdout
    text = " ".join(result.stdout.split())
    for part in ("scaled", "0.9500", "[0.8229, 1.0000]", "(n=2)", "30.00 ± 12.71", "1.33"):
        assert part in result.stdout, part  # BLEU: 2 decimals
    assert "avg rank over 3 tasks (1 = best; ties share ranks)" in text  # a clause kept whole
    assert "Friedman" in text
    tex = (runs_dir / "reports" / "suite-sweep-suite" / "across-task" / "table.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{scaled}" in tex  # the best average rank, in bold

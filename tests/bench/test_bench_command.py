"""`attnbench bench` end to end on tiny sizes: table, PNG plot and one MLflow run holding both;
bad settings get one line; cases that would not fit in memory are skipped with a note."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnbench.bench.measure import ratio, run_cases
from attnbench.bench.plan import BenchSettings, compose_plan
from attnbench.errors import ConfigError
from tests.conftest import all_runs, tracker_for

TINY = ["bench.seq_lens=[16,32]", "bench.repeats=2", "bench.peak_size=64", "bench.threads=1"]


def test_bench_writes_table_plot_and_one_mlflow_run(cli, runs_dir: Path) -> None:
    result = cli("bench", "attention=scaled,additive", *TINY, f"runs_dir={runs_dir}")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("GFLOP/s", "% peak", "scaling exponent", "scaled_bare", "scaled_naive",
                 "additive_naive", "matmul peak"):
        assert text in out, text
    pngs = list((runs_dir / "bench").glob("*/bench.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = all_runs(runs_dir)
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "FINISHED" and run.tags["attnbench.kind"] == "bench"
    assert run.params["bench.seq_lens"] == "[16, 32]"
    for key in ("scaled/time_ms", "scaled/time_iqr_ms", "scaled/peak_mem_mb", "scaled/gflops",
                "scaled/pct_of_peak", "scaled/x_bare", "scaled_bare/time_ms",
                "additive/time_ms", "additive/peak_mem_mb", "additive_naive/time_ms",
                "scaled/scaling_exponent", "matmul_peak_gflops"):
        assert key in run.metrics, key
    assert "additive/gflops" not in run.metrics  # no FLOP count defined for additive
    tracker = tracker_for(runs_dir)
    steps = sorted(s for s, _ in tracker.metric_history(run.run_id, "scaled/time_ms"))
    assert steps == [16, 32]  # metrics are logged with step = T
    artifacts = {a.path for a in tracker.client.list_artifacts(run.run_id, "bench")}
    assert {"bench/bench.png", "bench/results.csv", "bench/table.txt"} <= artifacts


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["bench.seq_lens=[0,16]"], "'bench.seq_lens'"),
        (["bench.repeats=0"], "'bench.repeats' = 0"),
        (["bench.nope=1"], "Unknown key 'bench.nope'. Valid keys in bench: bare, batch"),
        (["attention=nope"], "Unknown attention 'nope'. Valid options: additive"),
        (["attention=multihead", "bench.heads=3"], "divisible by heads=3"),
        (["bench.batch=2,4"], "only 'attention' may take several values"),
    ],
)
def test_bad_settings_get_one_line(cli, runs_dir: Path, args: list[str], expected: str) -> None:
    result = cli("bench", *args, f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert all_runs(runs_dir) == []


def test_cases_that_do_not_fit_are_skipped_with_a_note() -> None:
    plan = compose_plan(["attention=additive", *TINY, "bench.memory=false"])
    plan.settings.mem_fraction = 1e-12  # nothing fits
    result = run_cases(plan)
    assert result.rows and all(r.median_ms is None for r in result.rows)
    assert all(r.note.startswith("skipped:") for r in result.rows), [r.note for r in result.rows]
    assert "GiB available" in result.rows[0].note


def test_settings_schema_matches_conf_bench_yaml() -> None:
    plan = compose_plan([])
    assert plan.settings == BenchSettings()  # the dataclass defaults are conf/bench.yaml's
    assert list(plan.variants) == ["scaled"] and plan.experiment_name == "bench"
    with pytest.raises(ConfigError, match="bench.threads"):
        compose_plan(["bench.threads=-1"])


def test_multihead_is_timed_against_its_sdpa_step_and_its_plain_equivalent() -> None:
    """multihead gets three references: the bare SDPA call on its projected heads (the floor the
    issue's ≤ 1.15× target is about), the variant as plain torch calls, and the naive formula."""
    plan = compose_plan(["attention=multihead", *TINY, "bench.memory=false"])
    result = run_cases(plan)
    labels = [r.label for r in result.rows if r.n == 16]
    assert labels == ["multihead", "multihead_bare", "multihead_plain", "multihead_naive"]
    row = next(r for r in result.rows if r.label == "multihead" and r.n == 32)
    for kind in ("bare", "plain", "naive"):
        x = ratio(result.rows, row, kind)
        assert x is not None and x > 0, kind
    bare = next(r for r in result.rows if r.label == "multihead_bare" and r.n == 32)
    plain = next(r for r in result.rows if r.label == "multihead_plain" and r.n == 32)
    assert bare.gflops is not None and plain.gflops is not None
    # FLOPs: the SDPA step alone vs + 4 projections (2·B·T·D² each), B=8, D=128, T=32
    assert plain.gflops * plain.median_ms / (bare.gflops * bare.median_ms) == pytest.approx(
        1 + 4 * 2 * 128 * 128 / (4 * 32 * 128)
    )

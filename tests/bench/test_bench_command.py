"""`attnbench bench` end to end on tiny sizes: table, PNG plot and one MLflow run holding both;
bad settings (device, dtype included) get one line; cases that would not fit in memory are
skipped with a note; every variant in conf/attention/ is benchable; the crossover vs `scaled`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnbench.bench.measure import run_cases
from attnbench.bench.plan import BenchSettings, compose_plan
from attnbench.bench.results import ratio
from attnbench.config.groups import group_options
from attnbench.errors import ConfigError
from tests.conftest import all_runs, tracker_for
from tests.training.test_device import A100, T4, fake_gpu

TINY = ["bench.seq_lens=[16,32]", "bench.repeats=2", "bench.peak_size=64", "bench.threads=1"]


def test_bench_writes_table_plot_and_one_mlflow_run(cli, runs_dir: Path) -> None:
    result = cli("bench", "attention=scaled,additive", *TINY, f"runs_dir={runs_dir}")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "GFLOP/s",
        "% peak",
        "scaling exponent",
        "scaled_bare",
        "scaled_naive",
        "additive_naive",
        "matmul peak",
    ):
        assert text in out, text
    pngs = list((runs_dir / "bench").glob("*/bench.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = all_runs(runs_dir)
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "FINISHED" and run.tags["attnbench.kind"] == "bench"
    assert run.params["bench.seq_lens"] == "[16, 32]"
    assert run.params["bench.dtype"] == "float32" and run.params["bench.device"] == "auto"
    for key in (
        "scaled/time_ms",
        "scaled/time_iqr_ms",
        "scaled/peak_mem_mb",
        "scaled/gflops",
        "scaled/pct_of_peak",
        "scaled/x_bare",
        "scaled_bare/time_ms",
        "additive/time_ms",
        "additive/peak_mem_mb",
        "additive_naive/time_ms",
        "scaled/scaling_exponent",
        "matmul_peak_gflops",
    ):
        assert key in run.metrics, key
    # torch's FLOP counter counts every variant: additive's matmuls (not its tanh) included
    assert run.metrics["additive/gflops"] > 0
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
        (["bench.dtype=fp8"], "'bench.dtype' = 'fp8' is not valid: choose one of float32, bf16"),
        (["bench.device=tpu"], "'bench.device' = 'tpu' is not valid: choose one of auto, cpu"),
        (["bench.inputs=cross"], "'bench.inputs' = 'cross' is not valid: choose one of self"),
        (["bench.device=cpu", "bench.dtype=float16"], "'bench.dtype' = 'float16' on cpu:"),
        (["bench.window=-1"], "'bench.window' = -1 is out of range"),
    ],
)
def test_bad_settings_get_one_line(cli, runs_dir: Path, args: list[str], expected: str) -> None:
    result = cli("bench", *args, f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert all_runs(runs_dir) == []


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine, as a CPU-only one (whatever it really has)."""
    from attnbench.training import device as training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(training_device, "_mps_available", lambda: False)


@pytest.mark.usefixtures("cpu_only")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_a_missing_device_is_one_line(cli, runs_dir: Path, device: str) -> None:
    result = cli("bench", f"bench.device={device}", f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    kind = "MPS" if device == "mps" else "CUDA"
    assert f"'bench.device' = '{device}': no {kind}" in result.output
    assert "Valid here: auto, cpu" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert all_runs(runs_dir) == []


T4_BF16 = ("'bench.dtype' = 'bf16': Tesla T4 has no native bfloat16 (compute capability 7.5 < "
           "8.0: PyTorch would only emulate it, slowly). Valid here: float32, float16")


def test_bf16_on_a_gpu_that_only_emulates_it_is_one_line(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer's rule (training.device.native_bf16); the CLI in-process, on a faked GPU."""
    from attnbench.bench.device import resolve

    fake_gpu(monkeypatch, *T4)
    with pytest.raises(ConfigError) as err:
        resolve("cuda:0", "bf16")
    assert err.value.one_line() == T4_BF16
    assert resolve("cuda", "float16") == torch.device("cuda")
    result = cli("bench", "bench.device=cuda", "bench.dtype=bf16", f"runs_dir={runs_dir}")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: {T4_BF16}"], result.output
    assert all_runs(runs_dir) == []


def test_bf16_on_a_gpu_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    from attnbench.bench.device import resolve

    fake_gpu(monkeypatch, *A100)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve("auto", "bf16") == torch.device("cuda")
    assert resolve("cuda:0", "bf16") == torch.device("cuda:0")


@pytest.mark.usefixtures("cpu_only")
def test_auto_is_the_cpu_without_accelerators() -> None:
    plan = compose_plan([])
    assert plan.settings.device == "auto" and plan.device == "cpu"


def test_every_variant_is_benchable_in_bf16_on_cpu() -> None:
    """`attention=glob(*)`: all of conf/attention/, at a length beyond lowrank's YAML max_len
    (variant_node raises it), in bfloat16 on the CPU; every case is timed."""
    plan = compose_plan(
        [
            "attention=glob(*)",
            "bench.seq_lens=[16,520]",
            "bench.batch=1",
            "bench.dim=16",
            "bench.repeats=1",
            "bench.warmup=0",
            "bench.peak_size=64",
            "bench.threads=1",
            "bench.memory=false",
            "bench.dtype=bf16",
            "bench.device=cpu",
        ]
    )
    assert sorted(plan.variants) == sorted(group_options("attention"))
    assert plan.variants["lowrank"]["max_len"] == 520
    result = run_cases(plan)
    missing = [(r.label, r.n, r.note) for r in result.rows if r.median_ms is None]
    assert not missing, missing
    labels = {r.label for r in result.rows}
    for label in ("multihead_torch", "linear_naive", "lowrank_naive", "local_naive"):
        assert label in labels, label
    assert set(result.crossovers) == set(plan.variants) - {"scaled"}


def test_crossover_rule_on_hand_made_times() -> None:
    """The shortest T from which a variant is faster at every longer T; a lucky short length
    followed by slower ones does not count; not faster at the longest T = None."""
    from attnbench.bench.results import crossover

    base = {16: 1.0, 32: 2.0, 64: 4.0, 128: 8.0}
    assert crossover({16: 0.5, 32: 1.0, 64: 2.0, 128: 4.0}, base) == 16
    assert crossover({16: 2.0, 32: 3.0, 64: 3.0, 128: 5.0}, base) == 64
    assert crossover({16: 0.5, 32: 3.0, 64: 3.0, 128: 5.0}, base) == 64
    assert crossover({16: 0.5, 32: 1.0, 64: 2.0, 128: 9.0}, base) is None


def test_crossover_against_scaled_is_tabled_and_logged(tmp_path: Path) -> None:
    """A real tiny run, whose measured times are then replaced by fixed ones (timings on a shared
    machine are noise to a unit test): `none` faster than `scaled` at every length has its
    crossover at the shortest length, in the exponent table and as the metric none/crossover_T."""
    from dataclasses import replace

    from rich.console import Console

    from attnbench.bench.output import exponent_table, log_to_mlflow, write_files
    from attnbench.bench.results import crossovers

    runs = tmp_path / "runs"
    plan = compose_plan(["attention=scaled,none", *TINY, "bench.memory=false", f"runs_dir={runs}"])
    result = run_cases(plan)
    fixed = {("scaled", "variant"): 2.0, ("none", "variant"): 1.0}
    result.rows = [replace(r, median_ms=fixed[r.variant, r.kind] * r.n / 16)
                   if (r.variant, r.kind) in fixed else r for r in result.rows]
    result.crossovers = crossovers(result.rows)
    assert result.crossovers == {"none": 16}
    console = Console(width=200, record=True)
    console.print(exponent_table(result))
    text = console.export_text()
    assert "faster than scaled from T" in text
    run_id = log_to_mlflow(result, write_files(result, tmp_path / "out"), text)
    metrics = tracker_for(runs).client.get_run(run_id).data.metrics
    assert metrics["none/crossover_T"] == 16
    assert "scaled/crossover_T" not in metrics


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
    """multihead gets four references: the bare SDPA call on its projected heads (the floor the
    issue's ≤ 1.15× target is about), the variant as plain torch calls, nn.MultiheadAttention
    with the same weights, and the naive formula."""
    plan = compose_plan(["attention=multihead", *TINY, "bench.memory=false"])
    result = run_cases(plan)
    labels = [r.label for r in result.rows if r.n == 16]
    assert labels == [
        "multihead",
        "multihead_bare",
        "multihead_plain",
        "multihead_torch",
        "multihead_naive",
    ]
    row = next(r for r in result.rows if r.label == "multihead" and r.n == 32)
    for kind in ("bare", "plain", "torch", "naive"):
        x = ratio(result.rows, row, kind)
        assert x is not None and x > 0, kind
    bare = next(r for r in result.rows if r.label == "multihead_bare" and r.n == 32)
    plain = next(r for r in result.rows if r.label == "multihead_plain" and r.n == 32)
    assert bare.gflops is not None and plain.gflops is not None
    # FLOPs as torch's FLOP counter counts them, B=8, D=128, T=32: the SDPA step alone
    # (14·B·T²·D: 4 forward, 10 backward with its recomputed scores) vs + 4 projections
    # (6·B·T·D² each: forward and the two gradients)
    assert plain.gflops * plain.median_ms / (bare.gflops * bare.median_ms) == pytest.approx(
        1 + 4 * 6 * 128 * 128 / (14 * 32 * 128)
    )

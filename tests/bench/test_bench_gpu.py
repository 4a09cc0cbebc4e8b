"""`attnbench bench` on CUDA: cases timed with CUDA events, memory from the caching allocator, in
each dtype the GPU has. Marked `gpu`; each test also skips itself without a CUDA device."""

from __future__ import annotations

import pytest
import torch

from attnbench.bench.case_memory import measure_memory_in_process
from attnbench.bench.device import resolve, timer
from attnbench.bench.kernels import build_runner
from attnbench.bench.measure import run_cases
from attnbench.bench.plan import BenchSettings, Case, compose_plan
from attnbench.training.device import native_bf16

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
TINY = ["bench.seq_lens=[64,128]", "bench.repeats=2", "bench.peak_size=256", "bench.threads=1"]


def test_auto_picks_cuda_and_the_cases_run_there() -> None:
    plan = compose_plan(["attention=scaled,multihead", *TINY])
    assert plan.device.startswith("cuda")
    result = run_cases(plan)
    assert all(r.median_ms and r.median_ms > 0 for r in result.rows), result.rows
    assert all(r.peak_mb is not None and r.peak_mb > 0 for r in result.rows), result.rows
    assert result.device_name == torch.cuda.get_device_name(torch.device(plan.device))


@pytest.mark.parametrize("dtype", ["float32", "bf16", "float16"])
def test_each_dtype_runs_on_cuda(dtype: str) -> None:
    if dtype == "bf16" and not native_bf16(torch.device("cuda")):
        pytest.skip("this GPU has no native bfloat16")
    settings = BenchSettings(batch=2, dim=32, seq_lens=[64], device="cuda", dtype=dtype)
    device = str(resolve(settings.device, settings.dtype))
    node = {"name": "multihead", "heads": 4, "dropout": 0.0}
    for kind in ("variant", "torch", "naive"):
        runner = build_runner(Case("multihead", kind, 64), node, settings, device)
        assert all(
            t.is_cuda and t.dtype == getattr(torch, {"bf16": "bfloat16"}.get(dtype, dtype))
            for t in runner.leaves
        )
        assert timer(torch.device(device))(runner) > 0


def test_allocator_peak_tracks_the_materialised_scores() -> None:
    """naive scaled at B=4, T=1024 holds (B, T, T) scores, weights and their gradients: 4 × 16 MiB
    in float32; the fused variant stays O(T)."""
    settings = BenchSettings(batch=4, dim=64, seq_lens=[1024], device="cuda")
    dev = torch.device("cuda")
    node = {"name": "scaled", "dropout": 0.0}
    naive = measure_memory_in_process(
        build_runner(Case("scaled", "naive", 1024), node, settings, "cuda"), dev
    )
    fused = measure_memory_in_process(
        build_runner(Case("scaled", "variant", 1024), node, settings, "cuda"), dev
    )
    assert naive > 40 and fused < naive / 4, (naive, fused)

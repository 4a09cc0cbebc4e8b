"""What the kit runs, in which order, at which sizes and within which time budgets.

One plan, two sizes: on a CUDA GPU (the figures) and ``--dry-run`` on the CPU (toy sizes, the
same stages and commands, so the kit is tested where no GPU is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

STAGES = ("tests", "grid", "sweep", "bench")
# The default sweep of the README's quickstart.
SWEEP_VARIANTS = ("none", "dot", "scaled", "additive", "multihead")
# The bench's peers: which reference of which variant is PyTorch's own kernel or module.
PEERS = {
    "multihead / nn.MultiheadAttention": ("multihead", "torch"),
    "scaled / SDPA": ("scaled", "bare"),
}
# The bench's other modes, one `attnbench bench` call each after the growing forward+backward
# calls (their lengths: Sizes.bench_modes): causal training, and decoding after a prefix.
BENCH_MODES = {
    "causal": ("bench.causal=true",),
    "decode": ("bench.causal=true", "bench.mode=decode"),
}


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between a GPU run and a dry run."""

    device: str  # trainer.device / bench.device
    total_budget_s: float  # the whole kit
    budgets: dict[str, float]  # per stage, seconds
    pytest_workers: int  # pytest-xdist workers for `pytest -m gpu` (0 = in process)
    grid_precisions: tuple[str, ...]  # trainer.precision values the grid trains in
    grid_workers: int  # joblib workers of the grid sweep (1 = Hydra's basic launcher)
    grid_variants: tuple[str, ...] | None  # None = every variant in conf/attention
    sweep_seeds: tuple[int, ...]
    repeat_seeds: tuple[int, ...]  # the cells run twice for the determinism check
    sweep_precisions: tuple[str, ...]
    sweep_overrides: tuple[str, ...]  # trainer size of the default sweep (none = its default)
    bench_chunks: tuple[tuple[int, ...], ...]  # lengths per `attnbench bench` call, growing
    bench_overrides: tuple[str, ...]
    # BENCH_MODES name -> its call's lengths (prefix lengths for decode); run in this order
    bench_modes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    bench_modes_s: float = 0.0  # seconds of the bench stage kept for those calls
    notes: list[str] = field(default_factory=list)


GPU = Sizes(
    device="cuda",
    # <= 8 min in all: a stage stopped at its budget takes up to ~10 s more to stop and be read
    total_budget_s=470,
    budgets={"tests": 130, "grid": 80, "sweep": 150, "bench": 100},
    pytest_workers=6,
    grid_precisions=("32", "bf16", "16"),
    grid_workers=8,
    grid_variants=None,
    sweep_seeds=(0, 1, 2),
    repeat_seeds=(0,),
    sweep_precisions=("32", "bf16"),
    sweep_overrides=(),
    bench_chunks=((128, 256, 512, 1024, 2048), (4096, 8192), (16384,), (32768,), (65536,),
                  (131072,)),
    bench_overrides=("bench.naive=false", "bench.repeats=5", "bench.warmup=2",
                     "bench.budget_s=5"),
    bench_modes={"causal": (1024, 4096), "decode": (1024, 4096, 16384)},
    bench_modes_s=40,
)

DRY = Sizes(
    device="cpu",
    total_budget_s=600,  # generous: this is the plan's plumbing on a shared 2-core machine
    budgets={"tests": 120, "grid": 150, "sweep": 200, "bench": 160},
    pytest_workers=0,
    grid_precisions=("32", "bf16"),  # float16 autocast needs CUDA or MPS
    grid_workers=1,
    grid_variants=("scaled", "additive"),
    sweep_seeds=(0,),
    repeat_seeds=(0,),
    sweep_precisions=("32", "bf16"),
    sweep_overrides=("trainer=smoke",),
    bench_chunks=((16, 32), (64,)),
    bench_overrides=("bench.naive=false", "bench.repeats=1", "bench.warmup=0",
                     "bench.budget_s=5", "bench.batch=2", "bench.dim=16", "bench.peak_size=64",
                     "bench.memory=false", "bench.threads=1"),
    bench_modes={"causal": (16, 32), "decode": (16, 32)},
    bench_modes_s=80,
)


def describe(sizes: Sizes, variants: list[str], backbones: list[str]) -> list[dict[str, object]]:
    """The plan as printed first and stored in the JSON: stage, budget, what it runs."""
    b = sizes.budgets
    seeds = ",".join(map(str, sizes.sweep_seeds))
    trainer = "".join(f", {o}" for o in sizes.sweep_overrides)
    lengths = [n for chunk in sizes.bench_chunks for n in chunk]
    grid_variants = list(sizes.grid_variants or variants)
    return [
        {"stage": "tests", "budget_s": b["tests"],
         "what": f"pytest -m gpu on the test files that mark tests gpu "
                 f"({sizes.pytest_workers or 'no'} xdist workers)"},
        {"stage": "grid", "budget_s": b["grid"],
         "what": f"{len(grid_variants)} variants x {len(backbones)} backbones x precision "
                 f"{'/'.join(sizes.grid_precisions)}, trainer=smoke, one sweep per task side by "
                 f"side ({sizes.grid_workers} joblib workers in all; 1 = Hydra's basic launcher)"},
        {"stage": "sweep", "budget_s": b["sweep"],
         "what": f"attention={','.join(SWEEP_VARIANTS)} seed={seeds} x precision "
                 f"{'/'.join(sizes.sweep_precisions)} (trainer.deterministic=true, "
                 f"hydra/launcher=basic{trainer}), "
                 f"then seed={','.join(map(str, sizes.repeat_seeds))} again: identical numbers?"},
        {"stage": "bench", "budget_s": b["bench"],
         "what": f"attnbench bench, {len(variants)} variants + SDPA and nn.MultiheadAttention, "
                 f"T = {lengths[0]}..{lengths[-1]} in {len(sizes.bench_chunks)} calls, "
                 f"longer T while it fits the memory and the budget"
                 + "".join(f"; then {m} at T = {','.join(map(str, ns))}"
                           for m, ns in sizes.bench_modes.items())
                 + (f" ({sizes.bench_modes_s:.0f} s kept for them)" if sizes.bench_modes
                    else "")},
    ]

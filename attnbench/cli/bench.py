"""`attnbench bench`: speed and memory of attention variants vs sequence length."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug

HYDRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}

BaselineFile = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="Compare with a stored run: the results.json a bench wrote (a folder: the newest "
        "one under it, e.g. runs/bench), or the GPU kit's gpu-figures.json (same device, dtype, "
        "sizes and mode). Exit 1 when a case is slower than --threshold allows.",
        show_default=False,
    ),
]
Threshold = Annotated[
    float,
    typer.Option(
        "--threshold",
        help="With --baseline: the slowdown that fails (0.10 = more than 10% slower at the same "
        "case and length).",
    ),
]


def bench(
    ctx: typer.Context,
    baseline: BaselineFile = None,
    threshold: Threshold = 0.10,
    debug: Debug = False,
) -> None:
    """Time and memory of attention variants vs sequence length: training (forward and
    backward), inference forward, or decoding step by step.

    Arguments are Hydra overrides of conf/bench.yaml, e.g.
    attention=scaled,multihead,additive bench.seq_lens=[128,256,512,1024,2048]
    bench.causal=true (causal masks), bench.mode=train|forward|decode

    Prints a table (median and IQR time, forward and backward times, peak memory measured in a
    fresh process per case or the decoding state, GFLOP/s and % of the measured matmul peak,
    the scaling exponents), writes a PNG plot, and logs both to one MLflow run in the
    experiment 'bench'.
    """
    from attnbench.bench import run_bench

    exit_with(lambda: run_bench(ctx.args, baseline, threshold), debug)

"""`attnbench bench`: speed and memory of attention variants vs sequence length."""

from __future__ import annotations

import typer

from attnbench.cli._errors import exit_with
from attnbench.cli.options import Debug

HYDRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def bench(
    ctx: typer.Context,
    debug: Debug = False,
) -> None:
    """Time and memory of attention variants vs sequence length (forward + backward).

    Arguments are Hydra overrides of conf/bench.yaml, e.g.
    attention=scaled,multihead,additive bench.seq_lens=[128,256,512,1024,2048]

    Prints a table (median and IQR time, peak memory measured in a fresh process per case,
    GFLOP/s and % of the measured matmul peak, the scaling exponent), writes a PNG plot, and
    logs both to one MLflow run in the experiment 'bench'.
    """
    from attnbench.bench import run_bench

    exit_with(lambda: run_bench(ctx.args), debug)

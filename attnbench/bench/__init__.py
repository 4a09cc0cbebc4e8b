"""`attnbench bench`: time and memory of attention variants vs length — training (forward and
backward), inference forward, or decoding step by step.

Notation: B batch, T sequence length (queries = keys = T; decoding: the prefix), D width, H
heads, Dh = D / H per-head width, Hd the additive scorer's hidden width.

``bench.mode`` says what one timed call is, on random (B, T, D) inputs (``bench.inputs``: one
tensor as query, key and value by default, i.e. self-attention; dropout off) on ``bench.device``
in ``bench.dtype`` (inputs and weights cast to it, not autocast):

- ``train`` (default): one forward and one backward, each timed on its own (the fwd and bwd
  columns, each's median) and the time their sum;
- ``forward``: one forward without autograd (``torch.inference_mode``);
- ``decode``: one decoding step (``Attention.decode``, B new positions) after a prefix of T
  positions, with the bytes of the state held there (decode.py); always causal.

``bench.causal=true`` hands every variant the causal (T, T) mask a decoder's self-attention gets
and its references their causal form (``Reference.causal``: SDPA's ``is_causal``); a variant
whose fact ``causal`` is False (lowrank) is skipped with one line in the table. Measured:

- time: median and interquartile range of ``repeats`` calls after ``warmup``. All cases of one
  length are interleaved call by call, so their ratios see the same machine load. CPU:
  ``perf_counter``; CUDA: CUDA events after a synchronize;
- peak memory: on CPU, the peak resident memory above the baseline, measured in a fresh process
  per case (forked from a clean fork server, so no measurement inherits another's heap); on
  CUDA, the caching allocator's peak above what was allocated before the call;
- GFLOP/s and % of the device's peak against a big matmul in the same dtype timed in the same
  run, for every case torch's FLOP counter counts FLOPs in (matmuls and SDPA, on the first
  warm-up call; element-wise work such as additive's tanh is not counted, ``none`` has none);
- the scaling exponent: the log–log slope of time vs T per variant (decoding: also of the
  state's bytes), and the crossover: the shortest T from which a variant is faster than
  ``scaled`` at every longer T measured.

Each variant may be joined by the references it declares (``Attention.references``) at the same
T, built from the variant's own weights:

- ``naive``: the textbook formula with every intermediate materialised (softmax(QKᵀ)V; the
  (B, T, T, Hd) broadcast of additive attention; linear's normalised φ(Q)φ(K)ᵀ; local's full
  (T, T) band-masked softmax; lowrank's materialised E, F projections);
- ``bare``: one bare SDPA call on the tensors the variant's fused path hands it (dot/scaled: the
  inputs; multihead: its projected (B, H, T, Dh) heads, made once), the floor of the fast path;
- ``plain`` (multihead): the whole variant as plain torch calls: four projections + one SDPA;
- ``torch`` (multihead): ``torch.nn.MultiheadAttention`` with the same width, heads and weights.

A case whose estimated memory exceeds ``mem_fraction`` of the available memory is skipped with a
note, as is a case that runs out of memory anyway. Results print as a table, a PNG plot of time
and memory vs T, and one MLflow run holding the metrics (step = T), the table and the plot.
``--baseline FILE.json`` compares the times with a stored run's and fails past ``--threshold``.

The package, one job per module: `plan` (settings, cases, composition and validation; no torch),
`device` (bench.device and bench.dtype checked against the machine, its clock and free memory),
`kernels` (the variant and its references as runners), `decode` (decoding cases and their
state), `measure` (memory estimates from the variants' facts, FLOP counts, timing, the whole
measurement), `memory` (peak memory per case), `results` (rows, exponents, crossovers, ratios),
`output` (tables, plot, files, MLflow), `baseline` (the comparison with a stored run). This
module wires them; it imports none of them (nor torch) until called.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnbench.bench.baseline import Baseline, Comparison
    from attnbench.bench.plan import BenchPlan
    from attnbench.bench.results import BenchResult


def bench(plan: BenchPlan, log: Callable[[str], None] = lambda _msg: None,
          baseline: Baseline | None = None, threshold: float = 0.10
          ) -> tuple[BenchResult, Comparison | None]:
    """Measure, then write the table, plot and files (and the comparison with `baseline`, when
    given) and log them as one MLflow run."""
    from rich.console import Console

    from attnbench.bench import baseline as base
    from attnbench.bench.measure import run_cases
    from attnbench.bench.output import exponent_table, log_to_mlflow, results_table, write_files
    from attnbench.console import console

    result = run_cases(plan, log)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    result.out_dir = Path(plan.runs_dir) / "bench" / stamp
    files = write_files(result, result.out_dir)
    result.png = files["png"]
    tables: list[object] = [results_table(result), exponent_table(result)]
    cmp = None
    if baseline is not None:
        cmp = base.compare(baseline, result.rows, threshold)
        tables += [base.comparison_table(cmp), *base.one_sided(cmp)]
        files["comparison"] = result.out_dir / "comparison.json"
        files["comparison"].write_text(json.dumps(base.summary(cmp), indent=2), encoding="utf-8")
    for table in tables:
        console.print(table, highlight=False, markup=False)
    text_console = Console(width=200, record=True, file=io.StringIO())
    for table in tables:
        text_console.print(table, highlight=False, markup=False)
    table_text = text_console.export_text()
    (result.out_dir / "table.txt").write_text(table_text, encoding="utf-8")
    result.run_id = log_to_mlflow(result, files, table_text)
    console.print(
        f"plot: {result.png}\nMLflow run: {result.run_id} (experiment '{plan.experiment_name}')",
        highlight=False,
        markup=False,
    )
    return result, cmp


def run_bench(args: Sequence[str], baseline: Path | None = None, threshold: float = 0.10) -> int:
    """`attnbench bench ARGS [--baseline FILE.json --threshold X]`: compose, validate (the
    baseline too: before anything is measured), measure, report, compare. Returns the exit code;
    raises `baseline.Regressed` (exit 1) when a case is slower than the baseline past the
    threshold."""
    from rich.markup import escape

    from attnbench.bench import baseline as base
    from attnbench.bench.fits import check_fits
    from attnbench.bench.plan import compose_plan
    from attnbench.console import err_console
    from attnbench.errors import ConfigError

    if threshold < 0:
        raise ConfigError(f"--threshold {threshold:g} is out of range: must be >= 0 (0.10 = "
                          "fail when a case is more than 10% slower than the baseline)")
    plan = compose_plan(args)
    stored = None
    if baseline is not None:
        import torch

        from attnbench.bench.device import describe

        s = plan.settings
        stored = base.load(baseline, s.mode, s.causal)
        base.check_same(stored, plan.device, describe(torch.device(plan.device)), s.dtype,
                        {k: getattr(s, k) for k in base.SIZES})
    check_fits(plan)  # every case skipped for memory: one line, not an empty run

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        err_console.print(
            f"[dim]bench {time.perf_counter() - t0:6.1f}s:[/] {escape(msg)}", highlight=False
        )

    _, cmp = bench(plan, log, stored, threshold)
    if cmp is not None and cmp.regressed:
        raise base.Regressed(cmp.verdict())
    return 0

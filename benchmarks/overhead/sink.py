"""Section ``logging``: the cost of metric logging to training, with the MLflow sink writing in the
background (the default), synchronously, or not at all (a null sink)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.overhead.common import Report, compose, log, runs_dir_from


class NullSink:
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass


class TimedSink:
    """Wraps a sink; adds up the time the training thread spends in its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        t0 = time.perf_counter()
        self.inner.log_metrics(metrics, step)
        self.seconds += time.perf_counter() - t0
        self.calls += 1


def section_logging(report: Report, work: Path, template: Path, quick: bool, repeats: int) -> None:
    """Two figures: the time the training thread spends in the sink (steady, direct) and the
    training time with each sink vs a null sink, interleaved (includes the writer thread's
    indirect cost, but noisy on a shared machine)."""
    import torch

    from attnbench.config.build import build
    from attnbench.config.validate import validate
    from attnbench.store.tracker import Tracker
    from attnbench.training.loop import fit
    from attnbench.training.seeding import set_threads

    steps = 75 if quick else 125
    cfg = compose(
        ["task.n_train=8000", f"trainer.max_steps={steps}", "trainer.epochs=1",
         "trainer.limit_eval_batches=1"]
    )
    threads = set_threads(0, 1)
    tracker = Tracker(None, runs_dir_from(template, work / "logging"))
    exp = tracker.experiment_id("logging")
    built = build(validate(cfg))
    state = {k: v.clone() for k, v in built.model.state_dict().items()}
    kinds = ("null", "background", "synchronous")
    train_s: dict[str, list[float]] = {k: [] for k in kinds}
    in_sink: dict[str, list[float]] = {k: [] for k in kinds}
    calls = 0
    for i in range(repeats):
        for kind in kinds:
            built.model.load_state_dict(state)
            torch.manual_seed(cfg["seed"])
            run_id = None
            if kind != "null":
                run_id = tracker.start_run(exp, f"{kind}-{i}", {})
            inner = NullSink() if run_id is None else tracker.sink(run_id, kind == "background")
            sink = TimedSink(inner)
            result = fit(built.model, built.data, built.trainer, cfg["seed"], sink)
            if run_id is not None:
                tracker.end_run(run_id)  # waits for the background writes
            calls = sink.calls
            train_s[kind].append(result.cost["train_s"])
            in_sink[kind].append(sink.seconds)
            log(
                f"logging {i}: {kind} sink, training {result.cost['train_s']:.2f} s, "
                f"{sink.seconds * 1e3:.1f} ms in {sink.calls} sink calls"
            )
    null = statistics.median(train_s["null"])
    note = (
        f"{steps} steps, {threads} thread(s), log_every={built.trainer.log_every}: {calls} "
        "sink calls per run"
    )
    report.add("logging", "training time, null sink", null, "s", note=note)
    for kind in ("background", "synchronous"):
        direct = statistics.median(s / t for s, t in zip(in_sink[kind], train_s[kind], strict=True))
        report.add(
            "logging",
            f"training thread blocked in the {kind} sink",
            100 * direct,
            "% of training",
            "<= 3 %" if kind == "background" else "",
            direct <= 0.03 if kind == "background" else None,
            f"{statistics.median(in_sink[kind]) * 1e3:.1f} ms per run, median of {repeats}",
        )
    for kind in ("background", "synchronous"):
        pairs = [s / n - 1 for s, n in zip(train_s[kind], train_s["null"], strict=True)]
        report.add(
            "logging",
            f"training time with the {kind} sink vs null",
            100 * statistics.median(pairs),
            "% (A/B)",
            note=f"interleaved runs: {', '.join(f'{100 * p:+.1f}' for p in pairs)} %; "
            "includes the writer thread's CPU, and the machine's noise",
        )

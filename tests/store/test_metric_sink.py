"""The training loop's MLflow sink: writes happen off the training thread, none is lost, and a
run that cannot be opened stops training with a one-line error."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from attnbench.errors import TrackingError
from tests.conftest import SMOKE, tracker_for


def test_background_sink_writes_every_metric_before_the_run_ends(runs_dir: Path) -> None:
    tracker = tracker_for(runs_dir)
    run_id = tracker.start_run(tracker.experiment_id("sink"), "sink", {})
    sink = tracker.sink(run_id)
    t0 = time.time()
    for step in range(1, 201):
        sink.log_metrics({"train/loss": 1.0 / step}, step)
    tracker.end_run(run_id)  # waits for the queued writes
    history = tracker.metric_history(run_id, "train/loss")
    assert [s for s, _ in history] == list(range(1, 201))
    assert history[-1][1] == pytest.approx(1 / 200)
    stamps = [m.timestamp for m in tracker.client.get_metric_history(run_id, "train/loss")]
    assert min(stamps) >= int(t0 * 1000) - 1  # the time of the call, not of the write
    assert tracker.get_run(run_id).status == "FINISHED"


def test_a_run_that_cannot_open_stops_the_sink(runs_dir: Path) -> None:
    tracker = tracker_for(runs_dir)
    go = threading.Event()

    def fail() -> str:
        go.wait(10)
        raise TrackingError("Cannot use the MLflow store: disk full")

    opening = tracker.open_run(fail)
    sink = tracker.sink(opening)
    sink.log_metrics({"train/loss": 1.0}, 1)  # queued; starts the opening thread
    go.set()
    with pytest.raises(TrackingError, match="disk full"):
        opening.result()
    with pytest.raises(TrackingError, match="disk full"):
        sink.log_metrics({"train/loss": 0.5}, 2)


def test_run_experiment_reports_an_unusable_store_in_one_line(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from attnbench.config.compose import hydra_compose
    from attnbench.config.validate import validate
    from attnbench.run.experiment import run_experiment

    blocked = tmp_path / "runs"
    with hydra_compose() as compose:
        cfg = OmegaConf.to_container(
            compose("config", overrides=[*SMOKE, f"runs_dir={blocked}"]), resolve=True
        )
    checked = validate(cfg)  # validation refuses a runs_dir that is a file: block it after
    blocked.write_text("a file where the runs folder should be")
    with pytest.raises(TrackingError) as err:
        run_experiment(checked)
    assert "Cannot use the MLflow store" in err.value.one_line()


def test_a_pending_run_opens_at_its_first_metric_or_by_its_deadline() -> None:
    """run_experiment opens the MLflow run after the first training step (its first metric), so
    MLflow's import does not compete with torch.optim's for the GIL before that step; a job that
    takes longer to get there still opens its run by the deadline."""
    from attnbench.store.sink import PendingRun

    opened: list[float] = []

    def open_fn() -> str:
        opened.append(time.monotonic())
        return "run"

    t0 = time.monotonic()
    late = PendingRun(open_fn)
    late.start_by(0.3)
    time.sleep(0.15)
    assert opened == []  # not before the deadline...
    assert late.result() == "run"  # ...unless asked for: result() starts it at once
    assert opened[0] - t0 < 0.25
    on_time = PendingRun(open_fn)
    on_time.start_by(0.2)
    deadline = time.monotonic() + 5
    while len(opened) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(opened) == 2 and opened[1] - t0 >= 0.2  # the timer opened it
    assert on_time.result() == "run" and len(opened) == 2  # once
    cancelled = PendingRun(open_fn)
    cancelled.start_by(0.1)
    cancelled.cancel_timer()  # run_experiment: the data is loaded, fit opens it after a step
    time.sleep(0.3)
    assert len(opened) == 2 and not cancelled.done()
    assert cancelled.result() == "run" and len(opened) == 3

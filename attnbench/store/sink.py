"""Writing while training runs: the run opened on a thread (`PendingRun`) and the background
metric sink (`RunSink`) the training loop logs into."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from attnbench.errors import TrackingError

if TYPE_CHECKING:
    from attnbench.store.tracker import Tracker


class PendingRun:
    """A run opened on a background thread once training has started.

    Importing MLflow, creating or migrating the store, creating the run and logging its params
    and config cost 2-4 s of CPU, about half of a small run's start-up, and training needs none
    of it before its first metric. The thread starts at the first `start()` (or when the
    `start_by` deadline passes, unless `cancel_timer` came first), and `result()` starts it if
    need be, waits for it and returns the run id, or raises its error. Meanwhile metrics wait
    in the sink's queue, and writes that need the run id (`then`) run on the thread once the
    run exists.
    """

    def __init__(self, open_fn: Callable[[], str], background: bool = True) -> None:
        self._open_fn = open_fn
        self._run_id: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._then: list[Callable[[str], object]] = []
        self._opened = False  # the run exists and every queued `then` ran
        self._timer: threading.Timer | None = None
        if not background:
            self.start()
            self.result()

    def start_by(self, seconds: float) -> None:
        """Start opening the run at the latest `seconds` from now (sooner if `start()` or
        `result()` is called first): a job whose data takes long to load still shows up as
        RUNNING within seconds, while a quick job imports MLflow after its first step."""
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        timer.name = "attnbench-open-run-timer"
        timer.start()
        self._timer = timer

    def cancel_timer(self) -> None:
        """Forget `start_by`'s deadline (a run already opening goes on)."""
        if self._timer is not None:
            self._timer.cancel()

    def start(self) -> None:
        """Start opening the run (idempotent)."""
        with self._started:
            if self._timer is not None and self._timer is not threading.current_thread():
                self._timer.cancel()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._open, name="attnbench-open-run", daemon=True
                )
                self._thread.start()

    def _open(self) -> None:
        try:
            self._run_id = self._open_fn()
            while True:
                with self._started:
                    if not self._then:
                        self._opened = True
                        return
                    follow = self._then.pop(0)
                follow(self._run_id)
        except BaseException as err:  # noqa: BLE001 - re-raised by result()
            self._error = err

    def then(self, fn: Callable[[str], object]) -> None:
        """Call `fn(run_id)` once the run exists: on the opening thread if it is still at work,
        else now. An error is raised by the next `result()`."""
        with self._started:
            if not self._opened:
                self._then.append(fn)
                return
        fn(self.result())

    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def result(self) -> str:
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._run_id is not None
        return self._run_id


class RunSink:
    """MetricSink for the training loop: logs `split/metric` values with their step.

    With `background` (the default) a write never blocks a training step: values are queued with
    the time of the call and written by one thread per sink, queued batches merged into one
    write, once the run exists (`run` may be a `PendingRun`). A SQLite commit costs 5-30 ms,
    1-4 % of a small model's training time at log_every=25, and the thread spends it waiting on
    the disk, not holding the GIL. Writes keep the tracker's retry on a locked SQLite store, so
    parallel jobs lose no metrics. `flush()` (called by `Tracker.end_run`) waits for every
    value; a failed write (or a run that could not be opened) is raised by the next
    `log_metrics` or by `flush`.
    """

    def __init__(self, tracker: Tracker, run: str | PendingRun, background: bool = True) -> None:
        self.tracker = tracker
        self.run = run
        self.background = background
        self._queue: queue.SimpleQueue[tuple[dict[str, float], int, int] | None]
        self._queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def run_id(self) -> str:
        return self.run if isinstance(self.run, str) else self.run.result()

    def resolved_run_id(self) -> str | None:
        """The run id if the run is open, else None (never waits)."""
        if isinstance(self.run, str):
            return self.run
        if not self.run.done():
            return None
        try:
            return self.run.result()
        except BaseException:  # noqa: BLE001 - the run could not be opened
            return None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if not self.background:
            self.tracker.log_metrics(self.run_id(), metrics, step)
            return
        self._raise_error()
        if isinstance(self.run, PendingRun):
            self.run.start()
            if self.run.done():
                self.run.result()  # a run that could not be opened stops training here
        self._queue.put((dict(metrics), int(step), int(time.time() * 1000)))
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._write, name="attnbench-metrics", daemon=True
            )
            self._thread.start()

    def _write(self) -> None:
        done = False
        while not done:
            batch = [self._queue.get()]
            while not self._queue.empty():  # everything queued meanwhile goes in one write
                batch.append(self._queue.get())
            done = batch[-1] is None
            items = [b for b in batch if b is not None]
            if items and self._error is None:
                try:
                    self.tracker.log_metric_batches(self.run_id(), items)
                except BaseException as err:  # noqa: BLE001 - raised in the training thread
                    self._error = err

    def _raise_error(self) -> None:
        if self._error is None:
            return
        if isinstance(self._error, TrackingError):
            raise self._error
        raise TrackingError(f"Cannot write metrics to {self.tracker.uri}: {self._error}")

    def flush(self) -> None:
        """Wait until every queued value is written; raise if a write failed."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise_error()


class Heartbeat:
    """Sets the run's heartbeat tag now and every `every_s` seconds until stopped (a daemon
    thread: a killed process simply stops beating, which is the point)."""

    def __init__(self, tracker: Tracker, run_id: str, every_s: float) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="attnbench-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        from attnbench.store.names import HEARTBEAT_TAG

        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried at the next one
                self.tracker.set_tags(self.run_id, {HEARTBEAT_TAG: str(int(time.time()))})
            if self._stop.wait(self.every_s):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

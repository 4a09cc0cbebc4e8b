"""The only module that talks to MLflow.

Default store: SQLite at ``<runs_dir>/mlflow.db`` with artifacts under ``<runs_dir>/artifacts``;
``tracking.uri`` points at a server (or any MLflow backend URI) instead. The store is created and
migrated once, under a file lock, before anything writes to it: several processes initialising
a fresh SQLite file at the same time would otherwise lose runs and corrupt the file.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from attnbench.errors import TrackingError

MAX_PARAM_LEN = 6000
SQLITE_RETRIES = 8
# Which process owns a RUNNING run: a run whose process is gone is stale (killed with SIGKILL,
# power loss) and is marked FAILED by the next sweep (or `compare`).
PID_TAG = "attnbench.pid"
HOST_TAG = "attnbench.host"
ERROR_TAG = "attnbench.error"
# Where a training process keeps its last-epoch weights (a local file, logged as
# checkpoints/last.pt only if the run does not finish; see `Tracker.keep_last_checkpoint`).
LAST_FILE_TAG = "attnbench.last_checkpoint_file"
LAST_EPOCH_TAG = "attnbench.last_epoch"


def process_tags() -> dict[str, str]:
    """Tags naming this process, set on every run at start (see `Tracker.mark_stale_runs`)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _process_start_ms(pid: int) -> int | None:
    """When process `pid` started (ms since the epoch), from /proc on Linux; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                    if ln.startswith("btime "))
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if fields[0] in ("Z", "X"):  # zombie / dead: exited, only waiting to be reaped
            return -1
        return int((boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")) * 1000)
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def process_alive(pid: int, since_ms: int | None = None) -> bool:
    """Is `pid` a live process (that started no later than `since_ms`, when given)?

    The start-time check catches a recycled pid: a process that started after the run did
    cannot be the run's process.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    started = _process_start_ms(pid)
    if started == -1:
        return False
    # /proc's boot time has a 1 s resolution: allow 2 s before calling the pid recycled
    return started is None or since_ms is None or started <= since_ms + 2000



def _quiet_libraries() -> None:
    for name in ("alembic", "mlflow", "sqlalchemy", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class RunInfo:
    run_id: str
    name: str
    status: str
    experiment_id: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    start_time: int
    end_time: int | None


class Tracker:
    """A handle on one MLflow store."""

    def __init__(self, uri: str | None, runs_dir: str | Path) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.local = uri is None
        self.uri = uri or f"sqlite:///{self.runs_dir / 'mlflow.db'}"
        self._client: Any = None
        self._lock: FileLock | None = None
        self._sinks: list[RunSink] = []

    # -- store ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self.connect()
        return self._client

    def artifact_root(self) -> str | None:
        return (self.runs_dir / "artifacts").as_uri() if self.local else None

    @contextmanager
    def lock(self):  # noqa: ANN201 - a context manager
        if self.uri.startswith("sqlite:"):
            if self._lock is None:  # one reentrant lock per tracker
                self.runs_dir.mkdir(parents=True, exist_ok=True)
                self._lock = FileLock(str(self.runs_dir / ".mlflow.db.lock"), timeout=300)
            with self._lock:
                yield
        else:
            yield

    def connect(self) -> None:
        """Create/migrate the store under the lock, or check the server answers (fail fast)."""
        if self.uri.startswith(("http://", "https://")):
            self._check_server()
        from mlflow import MlflowClient

        _quiet_libraries()  # after the import: mlflow sets its own log level when imported

        try:
            with self.lock():
                client = MlflowClient(tracking_uri=self.uri)
                client.search_experiments(max_results=1)  # creates + migrates the store
        except Exception as err:  # noqa: BLE001 - any backend failure becomes one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TrackingError(f"Cannot use the MLflow store {self.uri}: {first}") from err
        self._client = client

    def _check_server(self) -> None:
        import urllib.error
        import urllib.request

        url = self.uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - http(s) only
                if resp.status != 200:
                    raise TrackingError(
                        f"MLflow server at {self.uri} answered {resp.status} on /health"
                    )
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingError(
                f"Cannot reach the MLflow server at {self.uri} ({reason}): "
                "start it or fix tracking.uri"
            ) from err

    def preflight(self) -> None:
        """Fail fast, before any training: a server URI must answer (a store is created later)."""
        if self.uri.startswith(("http://", "https://")):
            self._check_server()

    # -- writing -------------------------------------------------------------------------
    def _retry(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """SQLite allows one writer at a time; parallel jobs retry briefly instead of failing."""
        for attempt in range(SQLITE_RETRIES):
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001
                if "locked" not in str(err).lower() or attempt == SQLITE_RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        return None

    def experiment_id(self, name: str) -> str:
        """Get or create the experiment `name` (under the lock, so parallel jobs agree)."""
        client = self.client
        with self.lock():
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            return client.create_experiment(name, artifact_location=self._artifact_location(name))

    def _artifact_location(self, name: str) -> str | None:
        root = self.artifact_root()
        if root is None:
            return None
        from attnbench.naming import safe_name

        return f"{root}/{safe_name(name)}"

    def start_run(
        self, experiment_id: str, name: str, tags: Mapping[str, Any],
        parent_run_id: str | None = None,
    ) -> str:
        all_tags = {k: str(v) for k, v in tags.items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self._retry(self.client.create_run, experiment_id, run_name=name, tags=all_tags)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._retry(self.client.log_batch, run_id, params=items[i : i + 100])

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int, timestamp_ms: int | None = None
    ) -> None:
        self.log_metric_batches(run_id, [(metrics, step, timestamp_ms or int(time.time() * 1000))])

    def log_metric_batches(
        self, run_id: str, batches: Iterable[tuple[Mapping[str, float], int, int]]
    ) -> None:
        """Several (metrics, step, timestamp ms) at once: one write (<= 1000 values) per call."""
        from mlflow.entities import Metric

        items = [Metric(k, float(v), int(ts), int(step)) for metrics, step, ts in batches
                 for k, v in metrics.items()]
        for i in range(0, len(items), 1000):  # MLflow's log_batch limit
            self._retry(self.client.log_batch, run_id, metrics=items[i : i + 1000])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        self._retry(self.client.log_batch, run_id, tags=items)

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        # retried too: MLflow reads the run's artifact location from the store first
        self._retry(self.client.log_artifact, run_id, str(path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._retry(self.client.log_text, run_id, text, artifact_file)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Terminate the run once its training metrics are written (see `RunSink.flush`).

        If they cannot be written, a FINISHED run is not marked FINISHED: the error propagates
        (the caller then ends the run FAILED); a run ending otherwise ends regardless.
        """
        for sink in [s for s in self._sinks if s.resolved_run_id() == run_id]:
            self._sinks.remove(sink)
            try:
                sink.flush()
            except Exception:
                if status == "FINISHED":
                    raise
                logging.getLogger(__name__).warning("metrics of run %s lost", run_id, exc_info=True)
        self._retry(self.client.set_terminated, run_id, status)

    def sink(self, run: str | PendingRun, background: bool = True) -> RunSink:
        """The training loop's metric sink for `run` (an id, or a run still opening), flushed by
        `end_run`."""
        sink = RunSink(self, run, background)
        self._sinks.append(sink)
        return sink

    def open_run(self, open_fn: Callable[[], str], background: bool = True) -> PendingRun:
        """Run `open_fn` (connect, create the run, log its config; returns the run id) on a
        thread, so training can start meanwhile; see `PendingRun`."""
        return PendingRun(open_fn, background)

    # -- reading -------------------------------------------------------------------------
    def mark_stale_runs(self, experiment_ids: Iterable[str] | None = None) -> list[str]:
        """Mark FAILED the RUNNING runs whose process is gone; returns their ids.

        A run is stale when it was started on this host (tag `attnbench.host`) by a process
        (tag `attnbench.pid`) that no longer exists, e.g. one killed with SIGKILL. Runs from
        other hosts, or without these tags, are left alone: they may still be training.
        `experiment_ids` None = every experiment.
        """
        if experiment_ids is None:
            experiment_ids = [e.experiment_id for e in self.client.search_experiments()]
        experiment_ids = list(experiment_ids)
        if not experiment_ids:
            return []
        host = socket.gethostname()
        stale: list[str] = []
        for run in self.search(experiment_ids, "attributes.status = 'RUNNING'"):
            pid = run.tags.get(PID_TAG, "")
            if run.tags.get(HOST_TAG) != host or not pid.isdigit():
                continue
            if process_alive(int(pid), run.start_time):
                continue
            reason = f"stale: its process {pid} on {host} ended without closing the run (killed?)"
            self.set_tags(run.run_id, {ERROR_TAG: reason})
            self.keep_last_checkpoint(run)
            self.end_run(run.run_id, "FAILED")
            stale.append(run.run_id)
        return stale

    def keep_last_checkpoint(self, run: RunInfo) -> bool:
        """Log the last-epoch weights a dead process left on this host as checkpoints/last.pt
        (then delete its scratch folder). True if there was one to keep."""
        import shutil
        import tempfile

        path = Path(run.tags.get(LAST_FILE_TAG, ""))
        scratch = path.parent
        ours = (path.name == "last.pt" and scratch.name.startswith("attnbench-")
                and scratch.parent == Path(tempfile.gettempdir()))  # never a path a store names
        if run.tags.get(HOST_TAG) != socket.gethostname() or not ours or not path.is_file():
            return False
        try:
            self.log_artifact(run.run_id, path, "checkpoints")
            epoch = path.with_suffix(".epoch")
            if epoch.is_file():
                self.set_tags(run.run_id, {LAST_EPOCH_TAG: epoch.read_text().strip()})
        except Exception:  # noqa: BLE001 - closing the run matters more than its weights
            return False
        shutil.rmtree(scratch, ignore_errors=True)
        return True

    def get_run(self, run_id: str) -> RunInfo:
        try:
            return _info(self.client.get_run(run_id))
        except Exception as err:  # noqa: BLE001 - MlflowException for an unknown id
            raise TrackingError(f"No run with id {run_id!r} in {self.uri}") from err

    def search(
        self, experiment_ids: Iterable[str], filter_string: str = "",
        order_by: list[str] | None = None,
    ) -> list[RunInfo]:
        from mlflow.entities import ViewType

        runs = self.client.search_runs(
            list(experiment_ids), filter_string, ViewType.ACTIVE_ONLY, max_results=50000,
            order_by=order_by,
        )
        return [_info(r) for r in runs]

    def children(self, parent: RunInfo | str) -> list[RunInfo]:
        parent = self.get_run(parent) if isinstance(parent, str) else parent
        return self.search(
            [parent.experiment_id], f"tags.mlflow.parentRunId = '{parent.run_id}'",
            order_by=["attributes.start_time ASC"],
        )

    def download_artifact(self, run_id: str, path: str, dst: str | Path) -> Path:
        import os

        # MLflow draws a tqdm bar per download on stderr unless told otherwise (read per call).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        return Path(self.client.download_artifacts(run_id, path, str(dst)))

    def experiments(self) -> dict[str, str]:
        """Active experiments as {id: name} (reading only: nothing is created)."""
        return {e.experiment_id: e.name for e in self.client.search_experiments()}

    def find_experiment(self, name: str) -> str | None:
        """The id of experiment `name`, or None (unlike `experiment_id`, never creates it)."""
        exp = self.client.get_experiment_by_name(name)
        return exp.experiment_id if exp is not None and exp.lifecycle_stage == "active" else None

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every logged (step, value) of one metric of one run, in step order."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))


class PendingRun:
    """A run opened on a background thread once training has started.

    Importing MLflow, creating or migrating the store, creating the run and logging its params
    and config cost 2-4 s of CPU, about half of a small run's start-up, and training needs none
    of it before its first metric. The thread starts at the first `start()` (the sink calls it
    with the first metric, after the optimiser's own imports, so the two do not compete for the
    GIL; torch kernels release it) and `result()` waits for it and returns the run id, or raises
    its error. Meanwhile metrics wait in the sink's queue.
    """

    def __init__(self, open_fn: Callable[[], str], background: bool = True) -> None:
        self._open_fn = open_fn
        self._run_id: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        if not background:
            self.start()
            self.result()

    def start(self) -> None:
        """Start opening the run (idempotent)."""
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._open, name="attnbench-open-run", daemon=True
                )
                self._thread.start()

    def _open(self) -> None:
        try:
            self._run_id = self._open_fn()
        except BaseException as err:  # noqa: BLE001 - re-raised by result()
            self._error = err

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


def _info(run: Any) -> RunInfo:
    return RunInfo(
        run_id=run.info.run_id,
        name=run.info.run_name,
        status=run.info.status,
        experiment_id=run.info.experiment_id,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        start_time=run.info.start_time,
        end_time=run.info.end_time,
    )


# -- serving the MLflow UI / tracking server ---------------------------------------------------
def local_store_uri(runs_dir: str | Path) -> str:
    """The SQLite URI of the local store under `runs_dir` (what `Tracker(None, runs_dir)` uses)."""
    return Tracker(None, runs_dir).uri


def server_command(
    backend_store_uri: str,
    artifacts_destination: str | Path,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    allowed_hosts: str | None = None,
) -> list[str]:
    """The `mlflow server` command line (UI + REST API) for a backend store.

    Artifacts are served through the server (MLflow's default `--serve-artifacts`) from
    `artifacts_destination`; experiments created by a local attnbench store keep their own
    `file://` artifact locations, which the server reads directly.
    """
    import sys

    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts_destination),
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    return cmd


def bind_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port (None: it can), checked before starting it."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"Port {port} on {host} is in use: pick another with --port"
            return f"Cannot listen on {host}:{port} ({err.strerror or err}): check --host"
    return None


def wait_healthy(url: str, timeout: float = 120.0, alive: Any = None) -> None:
    """Poll `url`/health until it answers 200; `alive()` False (the server died) stops early."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise TrackingError(f"The MLflow server for {url} exited before it answered")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TrackingError(f"The MLflow server at {url} did not answer /health within {timeout:.0f} s")


# MLflow 3's server also starts a GenAI job runner (several huey worker processes) that the UI
# of training runs does not use, and sends usage telemetry: both off for the servers attnbench
# starts.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def serve(cmd: list[str], url: str, on_ready: Any = None, ready_timeout: float = 120.0) -> int:
    """Run an MLflow server command until it exits or this process is interrupted/terminated.

    The server runs in its own process group (mlflow starts uvicorn workers); on Ctrl-C or
    SIGTERM the whole group is stopped, so nothing is left listening. Returns the exit code.
    """
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, **SERVER_ENV})

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        wait_healthy(url, ready_timeout, alive=lambda: proc.poll() is None)
        if on_ready is not None:
            on_ready()
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            stop_process_group(proc.pid)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_process_group(proc.pid, signal.SIGKILL)
                proc.wait()


def stop_process_group(pid: int, sig: int | None = None) -> None:
    """Signal the process group led by `pid` (a process this program started with its own
    session): the server and the workers it forked, nothing else."""
    import contextlib
    import os
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig if sig is not None else signal.SIGTERM)

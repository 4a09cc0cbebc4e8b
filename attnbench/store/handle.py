"""The store handle: the one class that calls MLflow's client (`Tracker`), and the queries
the run pipeline and the analysis share.

Default store: SQLite at ``<runs_dir>/mlflow.db`` with artifacts under ``<runs_dir>/artifacts``;
``tracking.uri`` points at a server (or any MLflow backend URI) instead. The store is created and
migrated once, under a file lock, before anything writes to it: several processes initialising
a fresh SQLite file at the same time would otherwise lose runs and corrupt the file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from attnbench.errors import TrackingError
from attnbench.store import sqlite_file
from attnbench.store.schema import (
    HEARTBEAT_S,
    PARENT_RUN_TAG,
)
from attnbench.store.sink import Heartbeat, PendingRun, RunSink

MAX_PARAM_LEN = 6000
SQLITE_RETRIES = 8


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
        self._heartbeats: list[Heartbeat] = []

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
        """Create/migrate the store under the lock, or check the server answers (fail fast). A
        new SQLite store is built aside and moved into place; an existing one is checked before
        MLflow opens it (`sqlite_file`)."""
        if self.uri.startswith(("http://", "https://")):
            self._check_server()
        from mlflow import MlflowClient

        _quiet_libraries()  # after the import: mlflow sets its own log level when imported

        db = sqlite_file.sqlite_path(self.uri)
        try:
            with self.lock():
                if db is not None and sqlite_file.is_fresh(db):
                    sqlite_file.create(db, sqlite_file.make_mlflow_store)
                elif db is not None:
                    sqlite_file.check(db, sqlite_file.schema_head())
                client = MlflowClient(tracking_uri=self.uri)
                client.search_experiments(max_results=1)  # creates + migrates a server's store
        except TrackingError:
            raise
        except Exception as err:  # noqa: BLE001 - any backend failure becomes one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TrackingError(f"Cannot use the MLflow store {self.uri}: {first}") from err
        self._client = client

    def check_local(self) -> None:
        """Fail fast, without MLflow: an existing SQLite store file must be usable."""
        db = sqlite_file.sqlite_path(self.uri)
        if db is not None:
            sqlite_file.check(db, None)

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
        parent_run_id: str | None = None, start_time_ms: int | None = None,
    ) -> str:
        """Create a run; MLflow's context tags (user, source name and type) are added the way
        its fluent `mlflow.start_run` adds them, `tags` win. `start_time_ms`: when the work began
        (the run may be created later, on a thread), so durations in the UI are the job's."""
        from mlflow.tracking.context.registry import resolve_tags

        all_tags = resolve_tags({k: str(v) for k, v in tags.items()})
        if parent_run_id:
            all_tags[PARENT_RUN_TAG] = parent_run_id
        run = self._retry(self.client.create_run, experiment_id, start_time=start_time_ms,
                          run_name=name, tags=all_tags)
        return run.info.run_id

    def log_dataset(self, run_id: str, name: str, source: str | Mapping[str, str], digest: str,
                    context: str = "train") -> None:
        """Record the run's data as an MLflow dataset input: `source` a file path (or URI) or,
        for generated data, a mapping that says how it was generated."""
        import warnings

        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local file
            warnings.simplefilter("ignore", UserWarning)
            src = (CodeDatasetSource(dict(source)) if isinstance(source, Mapping)
                   else resolve_dataset_source(str(source)))
        dataset = MetaDataset(src, name=name, digest=digest[:36])
        item = DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", context)])
        self._retry(self.client.log_inputs, run_id, [item])

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

    def forget_artifact_locations(self) -> None:
        """Drop MLflow's in-process cache of each run's artifact repository (keyed by run id):
        after a store's artifact paths were rewritten (`sqlite_file.relocate_artifacts`), a run
        id this process saw before must resolve to its new folder."""
        from mlflow.tracking._tracking_service import utils

        utils._artifact_repos_cache.clear()

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
        for beat in [b for b in self._heartbeats if b.run_id == run_id]:
            self._heartbeats.remove(beat)
            beat.stop()
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
        """Mark FAILED the RUNNING runs whose process is gone (`store.stale`); their ids."""
        from attnbench.store.stale import mark_stale_runs

        return mark_stale_runs(self, experiment_ids)

    def keep_last_checkpoint(self, run: RunInfo) -> bool:
        """Log the last checkpoint a dead process left on this host (`store.stale`)."""
        from attnbench.store.stale import keep_last_checkpoint

        return keep_last_checkpoint(self, run)

    def heartbeat(self, run_id: str, every_s: float = HEARTBEAT_S) -> None:
        """Refresh the run's heartbeat tag every `every_s` seconds until `end_run`."""
        beat = Heartbeat(self, run_id, every_s)
        self._heartbeats.append(beat)
        beat.start()

    @contextmanager
    def claim(self, key: str) -> Iterator[None]:
        """Hold the claim on `key` (e.g. a sweep cell's config hash) across processes sharing this
        local store, so two `--resume` runs never train the same cell. A server store has no
        file to lock: there, a RUNNING run with a fresh heartbeat is the claim."""
        if not self.uri.startswith("sqlite:"):
            yield
            return
        folder = self.runs_dir / ".claims"
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f"{safe_key(key)}.lock"), timeout=600):
            yield

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
            [parent.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent.run_id}'",
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




def safe_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in key)[:120]

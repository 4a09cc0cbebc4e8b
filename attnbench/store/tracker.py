"""The store handle: the one class that calls MLflow's client (`Tracker`), and the queries
the run pipeline and the analysis share.

Default store: SQLite at ``<runs_dir>/mlflow.db`` with artifacts under ``<runs_dir>/artifacts``;
``tracking.uri`` points at a server (or any MLflow backend URI) instead. The store is created and
migrated once, under a file lock, before anything writes to it: several processes initialising
a fresh SQLite file at the same time would otherwise lose runs and corrupt the file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from attnbench.errors import TrackingError
from attnbench.store import sqlite_file
from attnbench.store.names import (
    ERROR_TAG,
    EXPERIMENT_KIND_TAG,
    HEARTBEAT_S,
    LAST_EPOCH_TAG,
    PARENT_RUN_TAG,
    TRAINING_KIND,
)
from attnbench.store.records import RunInfo, run_info
from attnbench.store.server import check_server
from attnbench.store.sink import Heartbeat, PendingRun, RunSink

MAX_PARAM_LEN = 6000
SQLITE_RETRIES = 8


def _quiet_libraries() -> None:
    """MLflow's INFO log and "View run at" links stay off the terminal unless `-v`."""
    from attnbench.console import verbose

    if verbose():
        return
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("alembic", "mlflow", "sqlalchemy", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Tracker:
    """A handle on one MLflow store."""

    def __init__(self, uri: str | None, runs_dir: str | Path) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.local = uri is None
        self.uri = uri or sqlite_file.local_uri(self.runs_dir)
        self._client: Any = None
        self._lock: FileLock | None = None
        self._sinks: list[RunSink] = []
        self._heartbeats: list[Heartbeat] = []
        self.relocated: list[str] = []  # notes: a copied store's paths pointed at this folder
        self._logged: dict[str, dict[str, int]] = {}  # continued runs: last step per metric
        self._artifact_uris: dict[str, str] = {}

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
        MLflow opens it (`sqlite_file`), and kept inside its folder (`confine`)."""
        if self.uri.startswith(("http://", "https://")):
            check_server(self.uri)
        from mlflow import MlflowClient

        _quiet_libraries()  # after the import: mlflow sets its own log level when imported

        db = sqlite_file.sqlite_path(self.uri)
        try:
            with self.lock():
                if db is not None and sqlite_file.is_fresh(db):
                    sqlite_file.create(db, sqlite_file.make_mlflow_store)
                elif db is not None:
                    sqlite_file.check(db, sqlite_file.schema_head())
                self._confine(db)
                if self.local:  # MLflow caches a run's artifact folder by run id, in-process:
                    self.forget_artifact_locations()  # a copy's run ids are the original's
                client = MlflowClient(tracking_uri=self.uri)
                client.search_experiments(max_results=1)  # creates + migrates a server's store
        except TrackingError:
            raise
        except Exception as err:  # noqa: BLE001 - any backend failure becomes one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TrackingError(f"Cannot use the MLflow store {self.uri}: {first}") from err
        self._client = client

    def check_local(self) -> None:
        """Fail fast, without MLflow: an existing SQLite store file must be usable, and keep its
        artifacts inside its folder (a copied one is relocated; `confine`)."""
        db = sqlite_file.sqlite_path(self.uri)
        if db is not None:
            sqlite_file.check(db, None)
            if db.is_file() and not sqlite_file.is_fresh(db):
                with self.lock():
                    self._confine(db)

    def _confine(self, db: Path | None) -> None:
        """The local store's artifacts stay under runs_dir (`confine`); notes in `relocated`."""
        if self.local and db is not None and db.is_file() and not sqlite_file.is_fresh(db):
            from attnbench.store.confine import confine

            moved = confine(db, self.runs_dir)
            self.relocated += moved
            if moved:
                self.forget_artifact_locations()

    def preflight(self) -> None:
        """Fail fast, before any training: a server URI must answer (a store is created later)."""
        if self.uri.startswith(("http://", "https://")):
            check_server(self.uri)

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
                if self.local:  # a run made here writes its artifacts under this location
                    from attnbench.store.confine import location_problem

                    problem = location_problem(exp.artifact_location, self.runs_dir,
                                               f"experiment '{name}'")
                    if problem:
                        raise TrackingError(problem)
                return exp.experiment_id
            return client.create_experiment(name, artifact_location=self._artifact_location(name),
                                            tags={EXPERIMENT_KIND_TAG: TRAINING_KIND})

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
        """Record the run's data as an MLflow dataset input (`datasets.dataset_input`)."""
        from attnbench.store.datasets import dataset_input

        self._retry(self.client.log_inputs, run_id, [dataset_input(name, source, digest, context)])

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

        seen = self._logged.get(run_id, {})  # a continued run: steps it already has are kept
        items = [Metric(k, float(v), int(ts), int(step)) for metrics, step, ts in batches
                 for k, v in metrics.items() if k not in seen or int(step) > seen[k]]
        for i in range(0, len(items), 1000):  # MLflow's log_batch limit
            self._retry(self.client.log_batch, run_id, metrics=items[i : i + 1000])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        self._retry(self.client.log_batch, run_id, tags=items)

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self._check_inside(run_id, f"{artifact_path or ''}/{Path(path).name}")
        # retried too: MLflow reads the run's artifact location from the store first
        self._retry(self.client.log_artifact, run_id, str(path), artifact_path)

    def _check_inside(self, run_id: str, artifact_path: str) -> None:
        """A local store reads and writes a run's artifacts only under runs_dir: the run's folder
        and `artifact_path` in it, symbolic links followed (`confine`)."""
        if not self.local:
            return
        from attnbench.store.confine import location_problem

        if run_id not in self._artifact_uris:
            self._artifact_uris[run_id] = self.client.get_run(run_id).info.artifact_uri
        target = f"{self._artifact_uris[run_id].rstrip('/')}/{artifact_path.strip('/')}"
        problem = location_problem(target, self.runs_dir, f"run {run_id[:8]}")
        if problem:
            raise TrackingError(problem)

    def delete_artifact(self, run_id: str, artifact_path: str) -> None:
        """Remove one artifact (file or folder) of a run, e.g. a continued run's old last.pt."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        self._check_inside(run_id, artifact_path)
        get_artifact_repository(self.client.get_run(run_id).info.artifact_uri).delete_artifacts(
            artifact_path)

    def forget_artifact_locations(self) -> None:
        """Drop MLflow's in-process cache of each run's artifact repository (keyed by run id):
        after a store's artifact paths were rewritten (`sqlite_file.relocate_artifacts`), a run
        id this process saw before must resolve to its new folder."""
        from mlflow.tracking._tracking_service import utils

        utils._artifact_repos_cache.clear()
        self._artifact_uris.clear()

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._check_inside(run_id, artifact_file)
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
        """The run `run_id`: its full id or a unique prefix of 6+ characters (`run_ids`)."""
        from attnbench.store.run_ids import resolve

        full = resolve(self.client, run_id, self.uri)
        try:
            return run_info(self.client.get_run(full))
        except Exception as err:  # noqa: BLE001 - MlflowException for an unknown id
            raise TrackingError(f"No run with id {run_id!r} in {self.uri}") from err

    def continue_run(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Reopen an ended run, as MLflow's `start_run(run_id=...)` does: RUNNING again, with
        `tags` (the new process's), its error and last-epoch tags dropped. What it logged stays;
        a value this tracker logs later at a step the run already has for that metric (a
        resumed run trains again from its last checkpoint) is dropped: no duplicate steps."""
        run = self.get_run(run_id)
        self._logged[run_id] = {key: max(step for step, _ in self.metric_history(run_id, key))
                                for key in run.metrics}
        self._retry(self.client.update_run, run_id, "RUNNING")
        for key in (ERROR_TAG, LAST_EPOCH_TAG):
            if key in run.tags:
                self._retry(self.client.delete_tag, run_id, key)
        self.set_tags(run_id, tags)

    def search(
        self, experiment_ids: Iterable[str], filter_string: str = "",
        order_by: list[str] | None = None, limit: int = 50000,
    ) -> list[RunInfo]:
        from mlflow.entities import ViewType

        runs = self.client.search_runs(
            list(experiment_ids), filter_string, ViewType.ACTIVE_ONLY, max_results=limit,
            order_by=order_by,
        )
        return [run_info(r) for r in runs]

    def children(self, parent: RunInfo | str) -> list[RunInfo]:
        parent = self.get_run(parent) if isinstance(parent, str) else parent
        return self.search(
            [parent.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent.run_id}'",
            order_by=["attributes.start_time ASC"],
        )

    def download_artifact(self, run_id: str, path: str, dst: str | Path) -> Path:
        # MLflow draws a tqdm bar per download on stderr unless told otherwise (read per call).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self._check_inside(run_id, path)
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


def safe_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in key)[:120]

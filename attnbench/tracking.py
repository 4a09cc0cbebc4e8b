"""The only module that talks to MLflow.

Default store: SQLite at ``<runs_dir>/mlflow.db`` with artifacts under ``<runs_dir>/artifacts``;
``tracking.uri`` points at a server (or any MLflow backend URI) instead. The store is created and
migrated once, under a file lock, before anything writes to it: several processes initialising
a fresh SQLite file at the same time would otherwise lose runs and corrupt the file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from attnbench.errors import TrackingError

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
                    raise TrackingError(f"MLflow server at {self.uri} answered {resp.status} on /health")
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingError(
                f"Cannot reach the MLflow server at {self.uri} ({reason}): start it or fix tracking.uri"
            ) from err

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
        self, experiment_id: str, name: str, tags: Mapping[str, Any], parent_run_id: str | None = None
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

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        self._retry(self.client.log_batch, run_id, metrics=items)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        self._retry(self.client.log_batch, run_id, tags=items)

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._retry(self.client.set_terminated, run_id, status)

    def sink(self, run_id: str) -> RunSink:
        return RunSink(self, run_id)

    # -- reading -------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunInfo:
        try:
            return _info(self.client.get_run(run_id))
        except Exception as err:  # noqa: BLE001 - MlflowException for an unknown id
            raise TrackingError(f"No run with id {run_id!r} in {self.uri}") from err

    def search(
        self, experiment_ids: Iterable[str], filter_string: str = "", order_by: list[str] | None = None
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
        return Path(self.client.download_artifacts(run_id, path, str(dst)))


class RunSink:
    """MetricSink for the training loop: logs `split/metric` values with their step."""

    def __init__(self, tracker: Tracker, run_id: str) -> None:
        self.tracker = tracker
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.tracker.log_metrics(self.run_id, metrics, step)


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

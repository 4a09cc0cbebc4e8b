"""The store: the only code that talks to MLflow.

- `schema`: every tag, param, metric and artifact name, the run identity, `RunResult`,
  `config_hash`, metric directions (imports nothing heavy; safe anywhere);
- `handle`: `Tracker`, the handle on one store (SQLite under `runs_dir`, or a server);
- `sqlite_file`: creating a local store atomically, and recognising a broken one;
- `queries`: open an existing store, runs by content hash, runs a resumed sweep reused;
- `sink`: the run opened on a thread, the background metric sink, the heartbeat;
- `stale`, `liveness`, `scratch`: RUNNING runs whose process is gone, and the private folder a
  training process keeps its last checkpoint in;
- `server`: `mlflow server` for `attnbench ui`.
"""

"""The store: the only code that talks to MLflow.

- `names`: every tag, param, metric and artifact name, the run identity, `RunResult`,
  `config_hash`, metric directions (imports nothing heavy; safe anywhere);
- `tracker`: `Tracker`, the handle on one store (SQLite under `runs_dir`, or a server); `records`:
  `RunInfo`, a run read back; `datasets`: a run's data as an MLflow dataset input;
- `sqlite_file`: creating a local store atomically, and recognising a broken one;
- `confine`: a local store reads and writes artifacts only under its own folder (a copied one is
  relocated, one pointing elsewhere refused);
- `run_ids`: a unique id prefix (6+ characters) wherever a run id is taken;
- `queries`: open an existing store, runs by content hash, runs a resumed sweep reused, the
  experiment the UI opens on;
- `sink`: the run opened on a thread, the background metric sink, the heartbeat;
- `stale`, `liveness`, `scratch`: RUNNING runs whose process is gone, and the private folder a
  training process keeps its last checkpoint in;
- `server`: `mlflow server` for `attnbench ui`.
"""

"""The store: the only code that talks to MLflow.

- `schema`: every tag, param, metric and artifact name, the run identity, `RunResult`,
  `config_hash` (imports nothing heavy; safe anywhere);
- `handle`: `Tracker`, the handle on one store (SQLite under `runs_dir`, or a server), and the
  queries shared by the run pipeline and the analysis;
- `sink`: the run opened on a thread and the background metric sink the training loop logs into;
- `liveness`: which process owns a RUNNING run (stale-run detection);
- `server`: `mlflow server` for `attnbench ui`.
"""

"""A local store stays inside its own folder: every artifact it reads or writes lies under its
`runs_dir`.

MLflow keeps absolute artifact paths in the store (each experiment's `artifact_location`, each
run's `artifact_uri`), so a `runs/` folder copied elsewhere still names the original's
`artifacts/`, and an edited or planted store can name any folder (a report logged there, a file
read from there and served by the UI). Nothing from a store is trusted to name a path:

- `relocate` points a copied store at its own folder: each root ``<old>/artifacts`` of an
  attnbench experiment (``<old>/artifacts/<name>``) outside `runs_dir` is rewritten to
  ``<runs_dir>/artifacts`` in the experiments' and runs' paths (what attnbench made, moved
  with the folder);
- `outside` lists what still points elsewhere after that: a run or an experiment with runs whose
  path, symbolic links followed, is not under `runs_dir`, or is not a local path at all;
- `confine` does both (under the caller's store lock) and refuses such a store in one line naming
  the runs. `Tracker.connect` and `Tracker.check_local` call it: every command on a local store
  (`run`, `sweep`, `compare`, `evaluate`, `reproduce`, `ui`) passes through it before MLflow
  reads or writes an artifact.

sqlite3 only (no MLflow import): milliseconds for thousands of runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from attnbench.errors import TrackingError
from attnbench.store.sqlite_file import open_rw

SHOWN = 3  # runs named in the refusal; the rest are counted


def local_path(location: str) -> str | None:
    """The folder an artifact location names on this machine (None: not a local path)."""
    location = str(location or "")
    if location.startswith("file:"):
        parsed = urlparse(location)
        path = unquote(parsed.path) if parsed.netloc in ("", "localhost") else ""
    else:
        path = location if "://" not in location and not location.startswith("mlflow-") else ""
    return path if os.path.isabs(path) else None


def is_inside(location: str, runs_dir: Path, follow_links: bool = True) -> bool:
    """Does `location` name a folder under `runs_dir`? With `follow_links`, symbolic links on
    the way are followed (a link from inside to elsewhere is outside); without, a path written
    under `runs_dir` is taken as it reads (no system call: the per-run check of a whole store)."""
    return _inside(location, os.path.realpath(runs_dir), follow_links)


def _inside(location: str, root: str, follow_links: bool) -> bool:
    """`is_inside` with the store's folder already resolved (`root`, no trailing separator)."""
    path = local_path(location)
    if path is None:
        return False
    if not follow_links and _under(os.path.normpath(path), root):
        return True
    return _under(os.path.realpath(path), root)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def location_problem(location: str, runs_dir: Path, what: str) -> str | None:
    """One line when `location` (of `what`, e.g. "experiment 'reverse'") is outside runs_dir."""
    if is_inside(location, runs_dir):
        return None
    return (f"The store in {runs_dir} has {what} keeping its artifacts outside it ({location}): "
            "attnbench reads and writes artifacts only under the store's own folder")


def relocate(db: Path, runs_dir: Path) -> list[tuple[str, str]]:
    """Point a copied store's attnbench artifact paths at ``<runs_dir>/artifacts``; returns the
    (old root, new root) pairs rewritten (none: nothing to do). Call under the store lock."""
    root = Path(os.path.realpath(runs_dir))
    new = root / "artifacts"
    conn = open_rw(db)
    try:
        olds: set[str] = set()
        for (location,) in conn.execute("SELECT artifact_location FROM experiments"):
            found = local_path(location)
            if found is None or _inside(found, str(root), follow_links=False):
                continue
            path = Path(found)
            if path.parent.name == "artifacts" and path.name:  # attnbench's <old>/artifacts/<name>
                olds.add(str(path.parent))
        with conn:
            for old in sorted(olds):
                for before, after in ((Path(old).as_uri(), new.as_uri()), (old, str(new))):
                    for table, column in (("experiments", "artifact_location"),
                                          ("runs", "artifact_uri")):
                        conn.execute(
                            f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608
                            f"WHERE substr({column}, 1, ?) = ?",
                            (after, len(before) + 1, len(before) + 1, before + "/"),
                        )
    finally:
        conn.close()
    return [(old, str(new)) for old in sorted(olds)]


def outside(db: Path, runs_dir: Path, follow_links: bool = False) -> list[str]:
    """What keeps artifacts outside `runs_dir`: runs (``<id8> '<name>'``) and experiments that
    have runs (``experiment '<name>'``). Experiments without runs (MLflow's `Default`) are
    checked when a run is created in them (`Tracker.experiment_id`). Without `follow_links`
    the paths are read as written (0.3 s for 5000 runs with, milliseconds without): a symbolic
    link out of the store is then caught where an artifact is read or written
    (`Tracker._check_inside`); the UI, whose server reads artifacts itself, follows them."""
    conn = open_rw(db)
    try:
        experiments = conn.execute(
            "SELECT name, artifact_location FROM experiments WHERE EXISTS "
            "(SELECT 1 FROM runs r WHERE r.experiment_id = experiments.experiment_id)"
        ).fetchall()
        runs = conn.execute("SELECT run_uuid, name, artifact_uri FROM runs").fetchall()
    finally:
        conn.close()
    root = os.path.realpath(runs_dir)
    found = [f"experiment '{name}' -> {loc}" for name, loc in experiments
             if not _inside(loc, root, follow_links)]
    found += [f"run {run_id[:8]} '{name}' -> {uri}" for run_id, name, uri in runs
              if not _inside(uri, root, follow_links)]
    return found


def confine(db: Path, runs_dir: Path, follow_links: bool = False) -> list[str]:
    """Relocate a copied store, then refuse one that still points outside `runs_dir`
    (TrackingError, one line; `outside`). Returns notes saying what was relocated. Call under
    the lock."""
    moved = relocate(db, runs_dir)
    found = outside(db, runs_dir, follow_links)
    if found:
        more = f"; {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise TrackingError(
            f"The store {db} keeps artifacts outside {runs_dir} ({'; '.join(found[:SHOWN])}{more}):"
            " refused, attnbench reads and writes artifacts only under the store's own folder "
            "(delete those runs, or use the store where it was made)"
        )
    return [f"this store was copied from {Path(old).parent}: its artifact paths now point into "
            f"{new}" for old, new in moved]

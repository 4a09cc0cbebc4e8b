"""The local store's SQLite file: checked before MLflow opens it, created so that a kill at any
instant leaves either no store or a complete one.

MLflow creates and migrates a new SQLite store in place, in dozens of schema steps that SQLite
commits one by one: a process killed meanwhile leaves a half-migrated file that every later
command trips over. `create` instead lets MLflow build the store in a temporary file beside the
real one and moves it into place with one `os.replace` (atomic on POSIX), all under the
caller's store lock; temporary files a killed creator left are removed by the next one.

`problem` reads an existing file with the standard library's sqlite3 only (milliseconds, no
MLflow import): a folder, a file that is not SQLite, or one a schema migration left half done is
one line naming the file and the command that fixes it, instead of MLflow's retries (about
100 s of them for a file that is not a database) and a multi-line error.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"
TMP_GLOB = ".{name}.*.tmp*"  # the temporary store and its journal


def local_uri(runs_dir: Path) -> str:
    """The URI of the local store under `runs_dir` (its mlflow.db)."""
    return f"sqlite:///{runs_dir / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///...` URI (None for other URIs and in-memory databases)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?")[0]
    if not path or path == ":memory:":
        return None
    return Path(os.path.abspath(path))  # not resolved: a symbolic link is checked as such


def _move_aside(db: Path) -> str:
    return f"mv {shlex.quote(str(db))} {shlex.quote(str(db) + '.broken')}"


def is_fresh(db: Path) -> bool:
    """No store yet: no file, an empty file, or an SQLite file without any table."""
    if not db.exists():
        return not db.is_symlink()  # a dangling link is reported, not replaced
    if not db.is_file():
        return False
    if db.stat().st_size == 0:
        return True
    try:
        return not _tables(db)
    except sqlite3.Error:
        return False


def problem(db: Path, head: str | None = None) -> str | None:
    """Why the existing file `db` cannot be used as an MLflow store (None: it can, or there is no
    file yet). `head`: MLflow's latest schema revision, when the caller knows it."""
    if not db.exists() and not db.is_symlink():
        return None
    if db.is_symlink() and not db.exists():
        return (f"The MLflow store {db} is a broken symbolic link: remove it "
                f"(rm {shlex.quote(str(db))})")
    if db.is_dir():
        return (f"The MLflow store {db} is a folder, not an SQLite file: move it aside "
                f"({_move_aside(db)}) and run again to start a new store")
    if not db.is_file():
        return f"The MLflow store {db} is not a regular file: point runs_dir elsewhere"
    if not os.access(db, os.R_OK | os.W_OK):
        return f"The MLflow store {db} is not readable and writable by you: fix its permissions"
    if is_fresh(db):
        return None
    with db.open("rb") as fh:
        magic = fh.read(len(SQLITE_MAGIC))
    if magic != SQLITE_MAGIC:
        return (f"The MLflow store {db} is not an SQLite database: move it aside "
                f"({_move_aside(db)}) and run again to start a new store")
    try:
        tables = _tables(db)
        version = _alembic_version(db, tables)
        runs = _count(db, "runs") if "runs" in tables else 0
    except sqlite3.Error as err:
        return (f"The MLflow store {db} cannot be read ({err}): move it aside "
                f"({_move_aside(db)}) and run again to start a new store")
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    if leftovers or "experiments" not in tables or version is None:
        what = (f"an interrupted schema migration left table {leftovers[0]}" if leftovers
                else "it has no MLflow schema version" if version is None
                else "it has no experiments table")
        fix = _move_aside(db) if runs == 0 else (
            f"restore it from a backup, or {_move_aside(db)} to start a new store")
        return (f"The MLflow store {db} is half-migrated ({what}; it holds {runs} runs): "
                f"{fix}")
    if head is not None and version != head:
        if runs == 0:
            fix = _move_aside(db)
        else:
            fix = (f"cp {shlex.quote(str(db))} {shlex.quote(str(db) + '.bak')} && "
                   f"mlflow db upgrade sqlite:///{db}")
        return (f"The MLflow store {db} has schema version {version}, not this MLflow's {head} "
                f"(a migration did not finish, or another MLflow version wrote it): {fix}")
    return None


def check(db: Path, head: str | None) -> None:
    """TrackingError naming the file and the command that fixes it (see `problem`)."""
    from attnbench.errors import TrackingError

    found = problem(db, head)
    if found:
        raise TrackingError(found)


def schema_head() -> str | None:
    """MLflow's latest store schema revision (None if this MLflow does not say)."""
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision
    except ImportError:  # pragma: no cover - depends on the installed MLflow
        return None
    return str(_get_latest_schema_revision())


def make_mlflow_store(uri: str) -> None:
    """Create and migrate an MLflow SQLite store at `uri`, then let go of its file."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)
    engine = getattr(getattr(client._tracking_client, "store", None), "engine", None)  # noqa: SLF001
    if engine is not None:
        engine.dispose()


def create(db: Path, make_store: Any) -> None:
    """Create the store `db` atomically: `make_store(uri)` creates and migrates an MLflow store at
    `uri` (a temporary file in the same folder), which then replaces `db` in one step. Call under
    the store lock (temporary files found here are a killed creator's)."""
    folder = db.parent
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(TMP_GLOB.format(name=db.name)):
        stale.unlink(missing_ok=True)
    tmp = folder / f".{db.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        make_store(f"sqlite:///{tmp}")
        _fsync(tmp)
        os.replace(tmp, db)
        _fsync(folder)
    finally:
        for leftover in folder.glob(f"{tmp.name}*"):
            leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_rw(db: Path) -> sqlite3.Connection:
    """An existing SQLite file, read-write (never created)."""
    # read-write (never create): a hot journal a killed writer left is rolled back, as by MLflow
    return sqlite3.connect(f"{db.as_uri()}?mode=rw", uri=True, timeout=30)


def _tables(db: Path) -> set[str]:
    conn = open_rw(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def _alembic_version(db: Path, tables: set[str]) -> str | None:
    if "alembic_version" not in tables:
        return None
    conn = open_rw(db)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else None


def _count(db: Path, table: str) -> int:
    conn = open_rw(db)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    finally:
        conn.close()

"""The local store's SQLite file (attnbench.store.sqlite_file): checked with sqlite3 before MLflow
opens it, created atomically."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from attnbench.errors import TrackingError
from attnbench.store import sqlite_file
from attnbench.store.tracker import Tracker


def _db(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "mlflow.db"


def test_no_file_and_empty_files_are_fresh(tmp_path: Path) -> None:
    db = _db(tmp_path / "a")
    assert sqlite_file.is_fresh(db) and sqlite_file.problem(db) is None
    db.touch()
    assert sqlite_file.is_fresh(db) and sqlite_file.problem(db) is None
    sqlite3.connect(db).close()  # an SQLite file without tables
    assert sqlite_file.is_fresh(db)


def test_a_migrated_store_is_fine(empty_store: Path) -> None:
    from mlflow.store.db.utils import _get_latest_schema_revision

    assert not sqlite_file.is_fresh(empty_store)
    assert sqlite_file.problem(empty_store, _get_latest_schema_revision()) is None


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda db: db.mkdir(), "is a folder, not an SQLite file"),
        (lambda db: db.write_bytes(b"x" * 5000), "is not an SQLite database"),
        (lambda db: db.symlink_to(db.parent / "nowhere"), "broken symbolic link"),
    ],
    ids=["folder", "garbage", "dangling-link"],
)
def test_unusable_files_are_one_line_at_once(tmp_path: Path, make, says: str) -> None:  # noqa: ANN001
    db = _db(tmp_path / "runs")
    make(db)
    start = time.perf_counter()
    with pytest.raises(TrackingError, match=says) as err:
        Tracker(None, tmp_path / "runs").check_local()
    assert "\n" not in err.value.one_line()
    with pytest.raises(TrackingError, match=says):
        Tracker(None, tmp_path / "runs").connect()  # the same line, no SQLAlchemy retries
    assert time.perf_counter() - start < 60


def test_half_migrated_file_names_the_command_that_fixes_it(tmp_path: Path,
                                                           empty_store: Path) -> None:
    db = _db(tmp_path / "runs")
    shutil.copy(empty_store, db)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE _alembic_tmp_runs (run_uuid VARCHAR(32))")
    found = sqlite_file.problem(db)
    assert found and "half-migrated" in found and "_alembic_tmp_runs" in found
    assert f"mv {db} {db}.broken" in found


def test_an_old_schema_version_names_mlflow_db_upgrade_when_it_holds_runs(
    tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlflow db upgrade` finishes a store whose migrations stopped between two steps (tried on
    such a file: it reaches head); with no runs, starting a new store is simpler."""
    db = _db(tmp_path / "runs")
    shutil.copy(empty_store, db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'bda7b8c39065'")
    found = sqlite_file.problem(db, head="dc11669786a5")
    assert found and "schema version bda7b8c39065" in found and f"mv {db}" in found
    monkeypatch.setattr(sqlite_file, "_count", lambda db, table: 3)
    found = sqlite_file.problem(db, head="dc11669786a5")
    assert found and f"mlflow db upgrade sqlite:///{db}" in found and ".bak" in found
    assert sqlite_file.problem(db, head=None) is None  # the check needs MLflow's head


def test_create_replaces_in_one_step_and_cleans_a_killed_creators_files(tmp_path: Path) -> None:
    db = _db(tmp_path / "runs")
    leftover = db.parent / ".mlflow.db.123.deadbeef.tmp"
    leftover.write_bytes(b"half a store")
    (db.parent / ".mlflow.db.123.deadbeef.tmp-journal").write_bytes(b"journal")
    made = []

    def make_store(uri: str) -> None:
        path = Path(uri.removeprefix("sqlite:///"))
        assert path.parent == db.parent and path.name.startswith(".mlflow.db.")
        assert not db.exists()  # never built in place
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE experiments (experiment_id INTEGER)")
        made.append(path)

    sqlite_file.create(db, make_store)
    assert made and db.is_file() and not sqlite_file.is_fresh(db)
    assert sorted(p.name for p in db.parent.iterdir()) == ["mlflow.db"]


def test_a_failed_creation_leaves_no_store(tmp_path: Path) -> None:
    db = _db(tmp_path / "runs")

    def boom(uri: str) -> None:
        Path(uri.removeprefix("sqlite:///")).write_bytes(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        sqlite_file.create(db, boom)
    assert list(db.parent.iterdir()) == []

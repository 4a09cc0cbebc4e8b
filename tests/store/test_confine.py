"""A local store reads and writes artifacts only under its own folder (`store.confine`).

A copied runs/ folder is pointed at its own artifacts/ (MLflow keeps absolute paths) and never
writes into the original; a store whose runs keep their artifacts elsewhere (an edited
`artifact_uri`, a planted experiment, a symbolic link out of artifacts/) is refused in one line
by every command, and nothing is written or read there.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from attnbench.errors import TrackingError
from attnbench.store import confine
from attnbench.store.tracker import Tracker
from tests.analysis.test_compare import fill_store
from tests.conftest import all_runs, tracker_for


def one_line(result) -> str:  # noqa: ANN001 - click Result
    """The one error line (compare may warn about the groups first, on its own lines)."""
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "Traceback" not in result.output
    return errors[0]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> tuple[Path, str, list]:
    """A fake sweep (tests.analysis.test_compare), filled once; tests copy its database (the
    copy is relocated into the test's runs/ when opened)."""
    root = tmp_path_factory.mktemp("filled")
    shutil.copy(empty_store, root / "mlflow.db")
    parent, ids = fill_store(root)
    return root / "mlflow.db", parent, ids


@pytest.fixture
def sweep_store(runs_dir: Path, filled: tuple[Path, str, list]) -> tuple[Path, str, list[str]]:
    db, parent, ids = filled
    shutil.copy(db, runs_dir / "mlflow.db")
    return runs_dir, parent, ids


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    return folder


def plant(runs_dir: Path, run_id: str, folder: Path) -> None:
    """What an edited or planted store does: the run's artifacts 'live' in `folder`."""
    with sqlite3.connect(runs_dir / "mlflow.db") as conn:
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?",
                     (folder.as_uri(), run_id))


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_compare_refuses_a_run_whose_artifacts_are_elsewhere(
    cli, sweep_store: tuple[Path, str, list[str]], outside: Path
) -> None:
    runs_dir, parent, _ = sweep_store
    plant(runs_dir, parent, outside)
    before = tree(outside)
    result = cli("compare", "--no-plots", "--runs-dir", str(runs_dir))
    line = one_line(result)
    assert result.output.strip() == line  # refused when the store is opened: nothing else said
    assert f"run {parent[:8]} 'sweep-toy' -> {outside.as_uri()}" in line and "refused" in line
    assert tree(outside) == before  # nothing written there (6 report files before the fix)
    assert not (runs_dir / "reports").exists()


@pytest.mark.parametrize("command", ["evaluate", "reproduce"])
def test_evaluate_and_reproduce_refuse_it_too(
    cli, sweep_store: tuple[Path, str, list[str]], outside: Path, command: str
) -> None:
    runs_dir, _, ids = sweep_store
    plant(runs_dir, ids[0], outside)
    line = one_line(cli(command, ids[0][:8], "--runs-dir", str(runs_dir)))
    assert f"run {ids[0][:8]}" in line and str(outside) in line
    with sqlite3.connect(runs_dir / "mlflow.db") as conn:  # (a Tracker would refuse it too)
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == len(ids) + 2  # no new run


def test_a_symbolic_link_out_of_artifacts_is_refused(
    cli, sweep_store: tuple[Path, str, list[str]], outside: Path
) -> None:
    """The run's own folder is inside, but its report/ links to a folder outside."""
    runs_dir, parent, _ = sweep_store
    uri = tracker_for(runs_dir).client.get_run(parent).info.artifact_uri
    folder = Path(confine.local_path(uri))
    folder.mkdir(parents=True)
    (folder / "report").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    line = one_line(cli("compare", "--no-plots", "--runs-dir", str(runs_dir)))
    assert f"run {parent[:8]}" in line and "outside it" in line
    assert tree(outside) == before


def test_a_planted_experiment_takes_no_new_run(runs_dir: Path, outside: Path) -> None:
    """An experiment with no runs yet, whose artifact location is elsewhere: a run made in it
    would write there, so `run` (Tracker.experiment_id) refuses it."""
    tracker = tracker_for(runs_dir)
    tracker.client.create_experiment("reverse", artifact_location=outside.as_uri())
    with pytest.raises(TrackingError, match="experiment 'reverse' keeping its artifacts outside"):
        tracker.experiment_id("reverse")


def test_a_copied_store_is_relocated_once_and_writes_into_the_copy(
    tmp_path: Path, empty_store: Path
) -> None:
    original = tmp_path / "orig"
    original.mkdir()
    shutil.copy(empty_store, original / "mlflow.db")
    tracker = Tracker(None, original)
    exp = tracker.experiment_id("copy me")
    run = tracker.start_run(exp, "r", {})
    tracker.log_text(run, "before", "notes/a.txt")
    tracker.end_run(run)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = tree(original)

    moved = confine.relocate(copy / "mlflow.db", copy)
    assert moved == [(str((original / "artifacts").resolve()), str((copy / "artifacts").resolve()))]
    assert confine.relocate(copy / "mlflow.db", copy) == []  # idempotent
    assert confine.outside(copy / "mlflow.db", copy) == []
    copied = Tracker(None, copy)
    assert copied.client.get_run(run).info.artifact_uri.startswith(
        (copy / "artifacts").resolve().as_uri())
    copied.log_text(run, "after", "notes/b.txt")
    new = copied.start_run(copied.experiment_id("copy me"), "s", {})
    copied.log_text(new, "new", "notes/c.txt")
    assert (copy / "artifacts" / "copy-me" / run / "artifacts" / "notes" / "b.txt").is_file()
    assert tree(original) == before  # the original store and its artifacts are untouched


def test_opening_a_copy_through_any_command_relocates_it(tmp_path: Path, empty_store: Path) -> None:
    """`Tracker.check_local` (run's pre-flight, no MLflow) and `connect` both relocate."""
    original = tmp_path / "orig"
    original.mkdir()
    shutil.copy(empty_store, original / "mlflow.db")
    tracker = Tracker(None, original)
    tracker.end_run(tracker.start_run(tracker.experiment_id("e"), "r", {}))
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    checked = Tracker(None, copy)
    checked.check_local()
    assert checked.relocated == [f"this store was copied from {original.resolve()}: its "
                                 f"artifact paths now point into {(copy / 'artifacts').resolve()}"]
    assert confine.outside(copy / "mlflow.db", copy) == []


@pytest.mark.slow  # trains: a sweep, then run, sweep --resume, reproduce in the copy
def test_no_command_in_a_copied_runs_folder_writes_into_the_original(
    cli, runs_dir: Path, tmp_path: Path
) -> None:
    assert cli("sweep", "attention=dot,none").exit_code == 0
    job = next(r for r in all_runs(runs_dir) if r.tags.get("attention") == "dot")
    copy = tmp_path / "elsewhere" / "runs"
    shutil.copytree(runs_dir, copy)
    before = tree(runs_dir)
    smoke = ["trainer=smoke", f"runs_dir={copy}"]
    for args in (("run", "attention=scaled", *smoke),
                 ("sweep", "attention=dot,none", "--resume", *smoke),
                 ("sweep", "attention=dot,scaled", *smoke),
                 ("reproduce", job.run_id[:8], "--runs-dir", str(copy)),
                 ("evaluate", job.run_id[:8], "--runs-dir", str(copy)),
                 ("compare", "--runs-dir", str(copy))):
        result = cli(*args, smoke=False)
        assert result.exit_code == 0, (args, result.output)
    assert tree(runs_dir) == before, "the original runs/ changed"
    assert confine.outside(copy / "mlflow.db", copy) == []
    # run, the resumed sweep (the same parent, nothing to train), a new sweep (parent, scaled,
    # dot trained again: no --resume), reproduce, evaluate
    assert len(all_runs(copy)) == len(all_runs(runs_dir)) + 6

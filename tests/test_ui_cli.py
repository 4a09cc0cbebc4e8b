"""`attnbench ui` without a browser: the server command it builds, the 127.0.0.1 default, the
0.0.0.0 warning, the page it opens (the latest sweep's experiment), its quiet request log, one-line
errors for a missing, empty, broken or planted store or a busy port, and a real server stopped
by SIGHUP/SIGTERM. (The real server in a real browser: tests/e2e/test_ui_browser.py.)"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import attnbench_cmd, tracker_for
from tests.e2e.servers import Started, alive, descendants, free_port, wait_http


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace the server start by a recorder that reports the server ready at once."""
    started: list[list[str]] = []

    def fake_serve(cmd: list[str], url: str, on_ready=None, ready_timeout: float = 0,  # noqa: ANN001
                   quiet: bool = False) -> int:
        started.append(cmd)
        if on_ready is not None:
            on_ready()
        return 0

    monkeypatch.setattr("attnbench.store.server.serve", fake_serve)
    return started


def test_ui_binds_loopback_by_default_and_prints_url(cli, runs_dir: Path, no_server) -> None:
    port = free_port()
    result = cli("ui", "--port", str(port), "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    assert f"MLflow UI: http://127.0.0.1:{port}" in result.output
    assert "warning" not in result.output.lower()
    (cmd,) = no_server
    flags = cmd[cmd.index("server") + 1 :]
    args = dict(zip(flags[::2], flags[1::2], strict=True))
    assert args["--host"] == "127.0.0.1" and args["--port"] == str(port)
    assert args["--backend-store-uri"] == f"sqlite:///{runs_dir.resolve() / 'mlflow.db'}"
    assert args["--artifacts-destination"] == str(runs_dir.resolve() / "artifacts")
    assert args["--uvicorn-opts"] == "--no-access-log --log-level warning"  # no request log


def test_ui_warns_when_bound_to_all_interfaces(cli, runs_dir: Path, no_server) -> None:
    result = cli("ui", "--host", "0.0.0.0", "--port", str(free_port()), "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "0.0.0.0" in result.output
    assert no_server[0][no_server[0].index("--host") + 1] == "0.0.0.0"


def test_ui_without_a_store_is_one_line_exit_2(cli, tmp_path: Path, no_server) -> None:
    result = cli("ui", "--runs-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "nowhere" in result.output and "attnbench run" in result.output
    assert no_server == []


def test_ui_on_a_busy_port_is_one_line_exit_2(cli, runs_dir: Path, no_server) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("ui", "--port", str(port), "--runs-dir", str(runs_dir))
    assert result.exit_code == 2
    assert f"Port {port}" in result.output and "--port" in result.output
    assert no_server == []


def test_ui_on_a_host_it_cannot_bind_says_so(cli, runs_dir: Path, no_server) -> None:
    result = cli("ui", "--host", "203.0.113.7", "--runs-dir", str(runs_dir))  # TEST-NET: not ours
    assert result.exit_code == 2
    assert "Cannot listen on 203.0.113.7" in result.output and "--host" in result.output
    assert no_server == []


def test_ui_on_a_server_store_points_at_its_ui(cli, no_server) -> None:
    result = cli("ui", "--tracking-uri", "http://127.0.0.1:5999")
    assert result.exit_code == 0
    assert "http://127.0.0.1:5999" in result.output
    assert no_server == []


def test_ui_opens_the_latest_sweeps_experiment_or_the_named_one(
    cli, runs_dir: Path, no_server
) -> None:
    tracker = tracker_for(runs_dir)
    older = tracker.experiment_id("reverse")
    tracker.end_run(tracker.start_run(older, "sweep-1", {"attnbench.kind": "sweep"}))
    latest = tracker.experiment_id("copy")
    tracker.end_run(tracker.start_run(latest, "sweep-2", {"attnbench.kind": "sweep"}))
    tracker.end_run(tracker.start_run(older, "a-single-run", {}))  # newer, but not a sweep
    port = free_port()
    result = cli("ui", "--port", str(port), "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    url = f"http://127.0.0.1:{port}/#/experiments/{latest}/runs?workflowType=machine_learning"
    assert f"MLflow UI: {url}" in result.output
    assert "experiment 'copy', the latest sweep's" in result.output
    named = cli("ui", "--port", str(port), "-e", "reverse", "--runs-dir", str(runs_dir))
    assert f"/#/experiments/{older}/runs" in named.output
    assert tracker.client.get_experiment(latest).tags["mlflow.experimentKind"] == (
        "custom_model_development")  # the UI shows its training view, not the GenAI one
    unknown = cli("ui", "--port", str(port), "-e", "nope", "--runs-dir", str(runs_dir))
    assert unknown.exit_code == 2 and "Unknown experiment 'nope'" in unknown.output
    assert "copy, reverse" in unknown.output and len(no_server) == 2


def test_ui_verbose_brings_the_request_log_back(cli, runs_dir: Path, no_server) -> None:
    result = cli("ui", "-v", "--port", str(free_port()), "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    assert "--uvicorn-opts" not in no_server[0]


def _half_migrated(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE _alembic_tmp_runs (x INTEGER)")


@pytest.mark.parametrize(("make", "says"), [
    (lambda db: db.write_bytes(b""), "is empty"),
    (lambda db: db.write_bytes(b"not a database at all" * 50), "is not an SQLite database"),
    (_half_migrated, "is half-migrated"),
], ids=["zero-bytes", "not-sqlite", "half-migrated"])
def test_ui_refuses_an_empty_or_broken_store_and_leaves_it_alone(
    cli, runs_dir: Path, no_server, make, says: str
) -> None:
    db = runs_dir / "mlflow.db"
    make(db)
    before = db.read_bytes()
    result = cli("ui", "--port", str(free_port()), "--runs-dir", str(runs_dir))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert says in lines[0] and str(db) in lines[0]
    assert db.read_bytes() == before and no_server == []  # no server, no migration in place
    assert sorted(p.name for p in runs_dir.iterdir()) == ["mlflow.db"]


def test_ui_refuses_a_store_whose_runs_keep_artifacts_elsewhere(
    cli, runs_dir: Path, tmp_path: Path, no_server
) -> None:
    tracker = tracker_for(runs_dir)
    run = tracker.start_run(tracker.experiment_id("reverse"), "planted", {})
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_rsa").write_text("secret")
    with sqlite3.connect(runs_dir / "mlflow.db") as conn:
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?",
                     ((tmp_path / "keys").as_uri(), run))
    result = cli("ui", "--port", str(free_port()), "--runs-dir", str(runs_dir))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"run {run[:8]} 'planted'" in lines[0] and no_server == []


def test_ui_refuses_a_run_folder_linked_out_of_the_store(
    cli, runs_dir: Path, tmp_path: Path, no_server
) -> None:
    """The store's paths are inside, but the run's folder is a symbolic link to elsewhere: the
    server would serve what is there, so the UI does not start."""
    tracker = tracker_for(runs_dir)
    run = tracker.start_run(tracker.experiment_id("reverse"), "linked", {})
    folder = runs_dir / "artifacts" / "reverse" / run
    folder.parent.mkdir(parents=True)
    (tmp_path / "keys").mkdir()
    folder.symlink_to(tmp_path / "keys", target_is_directory=True)
    result = cli("ui", "--port", str(free_port()), "--runs-dir", str(runs_dir))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"run {run[:8]} 'linked'" in lines[0] and no_server == []


@pytest.mark.parametrize("sig", [  # each starts the real MLflow server (~10 s)
    signal.SIGHUP, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGHUP", "SIGTERM"])
def test_closing_the_terminal_stops_the_server(runs_dir: Path, tmp_path: Path, sig: int) -> None:
    port = free_port()
    ui = Started([*attnbench_cmd(), "ui", "--port", str(port), "--runs-dir", str(runs_dir)],
                 tmp_path / "ui.log", cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", ui)
        deadline = time.monotonic() + 30
        while "MLflow UI:" not in ui.text() and time.monotonic() < deadline:
            time.sleep(0.2)  # the URL is printed (and flushed) once the server answers
        ui.remember_children()
        server = descendants(ui.pid)
        assert server, "the MLflow server runs as a child of attnbench ui"
        os.kill(ui.pid, sig)  # what closing the terminal (SIGHUP) or `kill` sends it
        ui.proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in server if alive(pid)], "the server outlived attnbench ui"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
        log = ui.text()
        assert "MLflow UI: http://127.0.0.1:" in log and "GET /" not in log  # no request log
    finally:
        ui.stop()

"""`attnbench ui` without a browser: the server command it builds, the 127.0.0.1 default, the
0.0.0.0 warning, and one-line errors for a missing store or a busy port. (The real server in a
real browser: tests/e2e/test_ui_browser.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.e2e.servers import free_port


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace the server start by a recorder that reports the server ready at once."""
    started: list[list[str]] = []

    def fake_serve(cmd: list[str], url: str, on_ready=None, ready_timeout: float = 0) -> int:  # noqa: ANN001
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

"""The team setup from the README, for real: a private PostgreSQL cluster (Debian's package),
`mlflow server` on it bound to 127.0.0.1 with an artifact destination, a 2-job sweep with
`tracking=server`, and the runs read back through the server and straight from PostgreSQL.

Every process is started by this test in its own session and stopped by its PID at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import attnbench_cmd
from tests.e2e.servers import Started, as_user, free_port, missing, need_module, wait_http
from tests.launchers.checks import check_sweep

pytestmark = pytest.mark.e2e

PG_USER = "attnbench"  # the database role initdb creates (trust auth, 127.0.0.1 only)


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        missing("PostgreSQL", "apt-get install postgresql")
    return found[-1]


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[str]:
    """A private PostgreSQL on 127.0.0.1:<free port> with a database `mlflow`; yields its URI."""
    psycopg = need_module("psycopg", "pip install 'attnbench[server]'")

    initdb, postgres_bin, pg_ctl = pg_bin("initdb"), pg_bin("postgres"), pg_bin("pg_ctl")
    # PostgreSQL refuses to run as root: as root, the cluster belongs to Debian's `postgres` user.
    os_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="attnbench-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os_user:
        shutil.chown(root, os_user, os_user)
        shutil.chown(sockets, os_user, os_user)
    server: Started | None = None
    try:
        subprocess.run([initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                        "--no-locale"], check=True, capture_output=True, timeout=300,
                       **as_user(os_user))
        port = free_port()
        server = Started([postgres_bin, "-D", str(data), "-p", str(port), "-k", str(sockets),
                          "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                         tmp_path / "postgres.log", user=os_user)
        uri = f"postgresql://{PG_USER}@127.0.0.1:{port}"
        _wait_for_postgres(uri + "/postgres", server)
        with psycopg.connect(uri + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE mlflow")
        yield uri + "/mlflow"
    finally:
        if server is not None:
            subprocess.run([pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w"],
                           capture_output=True, timeout=120, **as_user(os_user))
            server.stop()  # the postmaster this fixture started, by its PID, if still there
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_postgres(uri: str, server: Started, timeout: float = 120.0) -> None:
    import time

    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"postgres exited:\n{server.text()[-3000:]}")
        try:
            psycopg.connect(uri, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.5)
    raise AssertionError(f"postgres did not accept connections:\n{server.text()[-3000:]}")


def test_sweep_through_mlflow_server_on_postgres(postgres: str, tmp_path: Path) -> None:
    import psycopg

    from attnbench.store.server import SERVER_ENV, server_command
    from attnbench.store.tracker import Tracker

    port = free_port()
    artifacts = tmp_path / "artifacts"
    # The README's team recipe: mlflow server, PostgreSQL backend, artifact destination, loopback.
    cmd = server_command(postgres, artifacts, host="127.0.0.1", port=port, workers=1)
    mlflow_server = Started(cmd, tmp_path / "mlflow-server.log", env=SERVER_ENV)
    url = f"http://127.0.0.1:{port}"
    runs_dir = tmp_path / "runs"
    try:
        wait_http(f"{url}/health", mlflow_server, timeout=300)
        sweep = [*attnbench_cmd(), "sweep", "attention=dot,scaled", "tracking=server",
                 f"tracking.uri={url}", "trainer=smoke", f"runs_dir={runs_dir}"]
        proc = subprocess.run(sweep, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

        # Read back through the server: parent, named children, config artifacts (proxied).
        children = check_sweep(Tracker(url, runs_dir), ["dot", "scaled"], tmp_path / "dl")
        # ... and straight from PostgreSQL: the runs live there, not in a local SQLite file.
        with psycopg.connect(postgres) as conn:
            stored = dict(conn.execute("SELECT name, status FROM runs").fetchall())
        assert {r.name for r in children} <= set(stored)
        assert stored[children[0].name] == "FINISHED"
        assert not (runs_dir / "mlflow.db").exists()
        assert list(artifacts.rglob("config.yaml")), "artifacts went to the server's destination"
    finally:
        mlflow_server.stop()

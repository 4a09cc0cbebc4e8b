"""Serving the MLflow UI / a tracking server on a store (`attnbench ui`, the e2e tests)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from attnbench.errors import TrackingError


def local_store_uri(runs_dir: str | Path) -> str:
    """The SQLite URI of the local store under `runs_dir` (what `Tracker(None, runs_dir)` uses)."""
    from attnbench.store.handle import Tracker

    return Tracker(None, runs_dir).uri


def server_command(
    backend_store_uri: str,
    artifacts_destination: str | Path,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    allowed_hosts: str | None = None,
) -> list[str]:
    """The `mlflow server` command line (UI + REST API) for a backend store.

    Artifacts are served through the server (MLflow's default `--serve-artifacts`) from
    `artifacts_destination`; experiments created by a local attnbench store keep their own
    `file://` artifact locations, which the server reads directly.
    """
    import sys

    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts_destination),
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    return cmd


def bind_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port (None: it can), checked before starting it."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"Port {port} on {host} is in use: pick another with --port"
            return f"Cannot listen on {host}:{port} ({err.strerror or err}): check --host"
    return None


def wait_healthy(url: str, timeout: float = 120.0, alive: Any = None) -> None:
    """Poll `url`/health until it answers 200; `alive()` False (the server died) stops early."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise TrackingError(f"The MLflow server for {url} exited before it answered")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TrackingError(f"The MLflow server at {url} did not answer /health within {timeout:.0f} s")


# MLflow 3's server also starts a GenAI job runner (several huey worker processes) that the UI
# of training runs does not use, and sends usage telemetry: both off for the servers attnbench
# starts.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def serve(cmd: list[str], url: str, on_ready: Any = None, ready_timeout: float = 120.0) -> int:
    """Run an MLflow server command until it exits or this process is interrupted/terminated.

    The server runs in its own process group (mlflow starts uvicorn workers); on Ctrl-C or
    SIGTERM the whole group is stopped, so nothing is left listening. Returns the exit code.
    """
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, **SERVER_ENV})

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        wait_healthy(url, ready_timeout, alive=lambda: proc.poll() is None)
        if on_ready is not None:
            on_ready()
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            stop_process_group(proc.pid)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_process_group(proc.pid, signal.SIGKILL)
                proc.wait()


def stop_process_group(pid: int, sig: int | None = None) -> None:
    """Signal the process group led by `pid` (a process this program started with its own
    session): the server and the workers it forked, nothing else."""
    import contextlib
    import os
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig if sig is not None else signal.SIGTERM)

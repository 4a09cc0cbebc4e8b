"""Serving the MLflow UI / a tracking server on a store (`attnbench ui`, the e2e tests)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from attnbench.errors import TrackingError


def local_store_uri(runs_dir: str | Path) -> str:
    """The SQLite URI of the local store under `runs_dir` (what `Tracker(None, runs_dir)` uses)."""
    from attnbench.store.sqlite_file import local_uri

    return local_uri(Path(runs_dir).resolve())


def check_server(uri: str) -> None:
    """TrackingError (one line) unless the MLflow server at `uri` answers 200 on /health."""
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - http(s) only
            if resp.status != 200:
                raise TrackingError(f"MLflow server at {uri} answered {resp.status} on /health")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"Cannot reach the MLflow server at {uri} ({reason}): start it or fix tracking.uri"
        ) from err


def server_command(
    backend_store_uri: str,
    artifacts_destination: str | Path,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    allowed_hosts: str | None = None,
    quiet: bool = False,
) -> list[str]:
    """The `mlflow server` command line (UI + REST API) for a backend store.

    Artifacts are served through the server (MLflow's default `--serve-artifacts`) from
    `artifacts_destination`; experiments created by a local attnbench store keep their own
    `file://` artifact locations, which the server reads directly (`attnbench ui` checks first
    that they lie under the store's folder: `confine`). `quiet`: uvicorn logs warnings only (no
    line per request).
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
    if quiet:
        cmd += ["--uvicorn-opts", "--no-access-log --log-level warning"]
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


def serve(cmd: list[str], url: str, on_ready: Any = None, ready_timeout: float = 120.0,
          quiet: bool = False) -> int:
    """Run an MLflow server command until it exits or this process is interrupted/terminated.

    The server runs in its own process group (mlflow starts uvicorn workers), which a closed
    terminal's SIGHUP does not reach: on Ctrl-C, SIGTERM or SIGHUP this process stops the whole
    group, so nothing is left listening. `quiet`: the server's own output (start-up notes,
    warnings) goes to a temporary file, whose last line is shown if the server fails to start.
    Returns the exit code.
    """
    import os
    import signal
    import subprocess
    import tempfile

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    # before the server starts: a signal in between would leave it running
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGHUP)}
    proc = None
    log = tempfile.TemporaryFile() if quiet else None  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, **SERVER_ENV},
                                stdout=log, stderr=subprocess.STDOUT if quiet else None)
        try:
            wait_healthy(url, ready_timeout, alive=lambda: proc.poll() is None)
        except TrackingError as err:
            raise TrackingError(f"{err}{_last_line(log)}") from None
        if on_ready is not None:
            on_ready()
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc is not None and proc.poll() is None:
            stop_process_group(proc.pid)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_process_group(proc.pid, signal.SIGKILL)
                proc.wait()
        if log is not None:
            log.close()


def _last_line(log: Any) -> str:
    """': <the last line the server wrote>' from its log file (empty without one)."""
    if log is None:
        return ""
    log.seek(0)
    lines = [ln.strip() for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
    return f": {lines[-1]}" if lines else ""


def stop_process_group(pid: int, sig: int | None = None) -> None:
    """Signal the process group led by `pid` (a process this program started with its own
    session): the server and the workers it forked, nothing else."""
    import contextlib
    import os
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig if sig is not None else signal.SIGTERM)

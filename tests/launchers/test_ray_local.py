"""Hydra's Ray launcher against a real local Ray instance that this test starts (`ray start
--head`, on 127.0.0.1): the jobs run in Ray worker processes whose working directory is not the
sweep's, and still land under one parent in the same store."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import attnbench_cmd, tracker_for
from tests.e2e.servers import Started, free_port, need_module
from tests.launchers.checks import check_sweep

pytestmark = pytest.mark.e2e

# Ray binds the machine's network address unless told it runs on one host: keep it on loopback.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def test_ray_cluster_two_jobs_land_in_one_sweep(runs_dir: Path, tmp_path: Path) -> None:
    need_module("hydra_plugins.hydra_ray_launcher", "pip install 'attnbench[ray]'")
    ray_cwd = tmp_path / "ray_head"  # the raylet's (and so the workers') working directory
    ray_cwd.mkdir()
    # Ray's socket paths must stay short (< 108 bytes): a short temp dir, removed afterwards.
    with tempfile.TemporaryDirectory(prefix="rt", dir="/tmp") as ray_tmp:
        port = free_port()
        head = Started(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
             f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={ray_tmp}",
             f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}"],
            tmp_path / "ray.log", cwd=ray_cwd, env=LOOPBACK,
        )
        try:
            _wait_for_ray(head)
            sweep_cwd = tmp_path / "project"
            sweep_cwd.mkdir()
            runs_dir.rename(sweep_cwd / "runs")  # a relative runs_dir, as a user would give it
            cmd = [*attnbench_cmd(), "sweep", "attention=dot,scaled", "hydra/launcher=ray_cluster",
                   f"hydra.launcher.ray.init.address=127.0.0.1:{port}", "trainer=smoke",
                   "trainer.threads=0", "runs_dir=runs"]  # threads: the CPUs Ray gives a job
            proc = subprocess.run(cmd, cwd=sweep_cwd, capture_output=True, text=True, timeout=600,
                                  env={**os.environ, **LOOPBACK})
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
            assert "Connecting to existing Ray cluster" in proc.stderr + proc.stdout
        finally:
            head.stop(timeout=30)
    store = sweep_cwd / "runs"
    children = check_sweep(tracker_for(store), ["dot", "scaled"], tmp_path / "dl")
    assert len(children) == 2
    # ray_cluster reserves 1 CPU per job: each job's torch uses 1 thread, not every core
    assert {r.tags["attnbench.threads"] for r in children} == {"1"}
    assert not list(ray_cwd.rglob("mlflow.db")), "a job wrote a second store in Ray's cwd"
    assert "2 jobs, 0 failed" in proc.stdout


def _wait_for_ray(head: Started, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head.remember_children()
        if "Ray runtime started" in head.text():
            return
        if head.proc.poll() is not None:
            raise AssertionError(f"ray start exited:\n{head.text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"ray did not start within {timeout:.0f} s:\n{head.text()[-3000:]}")

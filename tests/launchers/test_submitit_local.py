"""Hydra's submitit launcher (the SLURM code path) on this machine, through `submitit_local`:
each job runs in a process of its own, and all land under one parent in the same store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import attnbench_cmd, tracker_for
from tests.e2e.servers import need_module
from tests.launchers.checks import check_sweep


@pytest.mark.e2e
def test_submitit_local_two_jobs_land_in_one_sweep(runs_dir: Path, tmp_path: Path) -> None:
    need_module("hydra_plugins.hydra_submitit_launcher", "pip install 'attnbench[slurm]'")
    cmd = [*attnbench_cmd(), "sweep", "attention=dot,scaled", "hydra/launcher=submitit_local",
           "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1",
           "trainer=smoke", f"runs_dir={runs_dir}"]
    with subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    children = check_sweep(tracker_for(runs_dir), ["dot", "scaled"], tmp_path / "dl")
    # Each job ran in a process of its own (submitit's), not in the sweep's process.
    pids = {r.tags.get("attnbench.pid") for r in children}
    if None not in pids:  # the tag comes with stale-run detection
        assert len(pids) == 2 and str(proc.pid) not in pids
    assert list((runs_dir / "multirun").glob("*/.submitit/*")), "submitit's job folders"
